#!/usr/bin/env python3
"""test_recipe_pairs.py BUILD SRC - tools/recipe-study's curve comparison
(curve_pairs) on logs whose answer is known: a recipe 0.01 bpb above shipped
at every step from 100 on gives mean +0.0100 and largest 0.0100 at seed 1;
steps before 100 and steps only one log holds are left out; two seeds 0.05
apart give a spread of 0.0500; fewer than 5 common steps give no row.
keep(): a finished run's log is kept thinned, and a kept log is never
replaced by a shorter copy (a kept log passed through keep again).
"""
import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile

from checks import SRC, Tally  # noqa: E402

check = Tally("test_recipe_pairs")


def load_tool():
    path = os.path.join(SRC, "tools", "recipe-study")
    loader = importlib.machinery.SourceFileLoader("recipe_study", path)
    spec = importlib.util.spec_from_loader("recipe_study", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def write_log(path, steps, bpb):
    with open(path, "w") as f:
        for s in steps:
            f.write(json.dumps({"step": s, "tokens": s * 16384, "train_bpb": bpb(s), "val_bpb": None}) + "\n")
        f.write("not json: a torn last line\n")


def row(md, first):
    return [line for line in md.splitlines() if line.startswith(first)]


def main():
    rs = load_tool()
    with tempfile.TemporaryDirectory() as d:
        params = "pairs-test"  # no kept logs under docs/recipe-runs/ by that name
        base = lambda s: 3.0 - 0.001 * s
        write_log(os.path.join(d, "shipped-s1.h5.log.jsonl"), range(10, 400, 10), base)
        # bf16: +0.01 from step 100, far off before it (must be left out), and
        # steps shipped lacks (must be left out too)
        write_log(os.path.join(d, "bf16-s1.h5.log.jsonl"), list(range(10, 400, 10)) + [405, 415],
                  lambda s: base(s) + (0.01 if s >= 100 else 1.0) + (5.0 if s > 400 else 0.0))
        write_log(os.path.join(d, "bf16-s2.h5.log.jsonl"), range(10, 400, 10), lambda s: base(s) + 0.06)
        # wd0: only 3 steps in common with shipped: no row
        write_log(os.path.join(d, "wd0-s1.h5.log.jsonl"), [100, 110, 120], base)
        md = rs.curve_pairs(d, params, [1, 2])
    print(md)
    r = row(md, "| bf16 | 1 |")
    check(r == ["| bf16 | 1 | 30 | +0.0100 | 0.0100 |"], f"bf16 against shipped at seed 1: {r}")
    r = row(md, "| bf16 | 1 − 2 |")
    check(r == ["| bf16 | 1 − 2 | 30 | 0.0500 | 0.0500 |"], f"bf16's two seeds: {r}")
    check(not row(md, "| wd0 |"), "a recipe with 3 steps in common got a row")
    check(not row(md, "| shipped |"), "shipped against itself got a row")
    check(not row(md, "| bf16 | 2 |"), "bf16 seed 2 has no shipped seed 2 to compare with")
    test_keep(rs)
    return check.report()


def test_keep(rs):
    with tempfile.TemporaryDirectory() as d:
        kept = os.path.join(d, "kept", "bf16-s1.log.jsonl")
        rs.kept_log = lambda params, name, seed: kept  # keep() writes here, not into docs/
        log = os.path.join(d, "bf16-s1.h5.log.jsonl")
        with open(log, "w") as f:
            for s in range(10, 1010, 10):
                f.write(json.dumps({"step": s, "tokens": s * 16384, "train_bpb": 2.0,
                                    "val_bpb": 1.9 if s == 1000 else None},
                                   separators=(",", ":")) + "\n")  # bt-train's compact form
        rs.keep(log, "pairs-test", "bf16", 1)
        n = len(open(kept).read().splitlines()) if os.path.exists(kept) else 0
        check(n == 11, f"a 100-record log kept as {n} records, not 11 (every 10th and the last)")
        again = os.path.join(d, "again.h5.log.jsonl")
        with open(again, "w") as f:
            f.write(open(kept).read())
        rs.keep(again, "pairs-test", "bf16", 1)
        m = len(open(kept).read().splitlines())
        check(m == n, f"keeping a kept log again left {m} records of {n}")


if __name__ == "__main__":
    sys.exit(main())
