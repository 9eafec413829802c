#!/usr/bin/env python3
"""test_curve_trend.py BUILD SRC - tools/curve-trend against curves whose
answer is known: validation points on L(D) = 1 + 40 D^-0.25 must give back,
at the floor 1.00, the tokens that reach a target exactly; a rate target is
rate x 8 bits, lowered by --gap; too few points and an empty log fail; with
fewer than 4 validation points the training bpb is used; a target the curve
already reached is reported as reached. --wsd: a warmup-stable-decay log
whose stable phase is on the law and whose decay gains 0.1 bpb must give
back the tokens where the law less 0.1 meets the target, and a log whose
decay has not ended is refused.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from checks import SRC, Tally  # noqa: E402

TOOL = os.path.join(SRC, "tools", "curve-trend")
check = Tally("test_curve_trend")


def law(d):
    return 1.0 + 40.0 * d ** -0.25


def write_log(path, val_steps, train=True):
    """A bt-train log of 16,384-token steps: training bpb every 10 steps (on
    the law, plus 0.05), validation bpb at val_steps."""
    with open(path, "w") as f:
        f.write("not json\n")  # a torn line is skipped, as in a killed run's log
        for step in range(10, 2001, 10):
            tok = step * 16384
            r = {"step": step, "tokens": tok, "lr": 1e-3}
            if train:
                r["train_bpb"] = law(tok) + 0.05
            if step in val_steps:
                r["val_bpb"] = law(tok)
            f.write(json.dumps(r) + "\n")


def write_wsd_log(path, end_step, gain=0.1):
    """Steps of 16,384 tokens to end_step, lr 1e-3 for the first 80%, then
    a linear decay to 0; validation every 100 steps: the law in the stable
    phase, then the law less gain x the decay's progress (and a point at the
    last step)."""
    start = int(end_step * 0.8)
    with open(path, "w") as f:
        for step in range(10, end_step + 1, 10):
            tok = step * 16384
            prog = max(0.0, (step - start) / (end_step - start))
            r = {"step": step, "tokens": tok, "lr": 1e-3 * (1 - prog), "train_bpb": law(tok) + 0.05}
            if step % 100 == 0 or step == end_step:
                r["val_bpb"] = law(tok) - gain * prog
            f.write(json.dumps(r) + "\n")


def run(*args):
    p = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def tokens_at(out, floor):
    m = re.search(r"floor %s[^:]*:.*: ([0-9.e+]+) tokens" % re.escape(floor), out)
    return float(m.group(1)) if m else None


def main():
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "run.log.jsonl")
        write_log(log, set(range(500, 2001, 100)))
        last = 2000 * 16384

        # the target at 4x the last tokens, in bits per byte
        want = 4 * last
        rc, out, err = run(log, "%.6f" % law(want))
        got = tokens_at(out, "1.00")
        check(rc == 0 and got is not None, f"a bpb target: rc {rc}, {out!r} {err!r}")
        check(got is not None and abs(got / want - 1) < 0.01,
              f"floor 1.00 gives {got} tokens, the law {want}")
        check("15 validation points" in out, f"the points past 0.3 x the last tokens: {out!r}")

        # a rate target is rate x 8 bits; --gap lowers it by the gap
        rate = law(want) / 8 * 100
        rc, out, _ = run(log, "%.6f%%" % rate)
        got = tokens_at(out, "1.00")
        check(got is not None and abs(got / want - 1) < 0.01, f"a rate target: {got} against {want}")
        gap = law(want) - law(2 * want)
        rc, out, _ = run(log, "%.6f%%" % rate, "--gap", "%.6f" % gap)
        got = tokens_at(out, "1.00")
        check(got is not None and abs(got / (2 * want) - 1) < 0.01,
              f"--gap {gap:.4f} moves the target to {2 * want} tokens: {got}")
        check("less the gap" in out, f"--gap is named: {out!r}")

        # a target the curve has already reached: where, not a fit
        reached = law(1000 * 16384) + 1e-7  # just above step 1,000's point, below step 900's
        rc, out, _ = run(log, "%.9f" % reached)
        check(rc == 0 and "already reached: validation" in out and "16,384,000 tokens" in out
              and "floor" not in out, f"a target already reached: {out!r}")

        # a target at or below a floor is never reached
        rc, out, _ = run(log, "1.0")
        check(rc == 0 and "floor 1.00: at or above the target, never reached" in out,
              f"a target at the floor: {out!r}")

        # fewer than 4 validation points: the training bpb, in 20 spans
        write_log(log, {1000, 2000})
        rc, out, _ = run(log, "%.6f" % (law(want) + 0.05))
        check(rc == 0 and "training (20 spans)" in out, f"falls back to the training bpb: {out!r}")

        # --wsd: the stable phase's law, plus the decay's gain of 0.1
        write_wsd_log(log, 2000)
        want = 4 * last
        rc, out, err = run(log, "%.6f" % (law(want) - 0.1), "--wsd")
        got = tokens_at(out, "1.00")
        check(rc == 0 and got is not None and abs(got / want - 1) < 0.01,
              f"--wsd, floor 1.00: {got} tokens against {want}: rc {rc} {out!r} {err!r}")
        check("decay gain 0.1000 bpb" in out, f"--wsd measures the decay's gain: {out!r}")
        check("11 validation points of the stable phase" in out,
              f"--wsd fits only the points at the peak rate past 0.3 x the last tokens: {out!r}")
        # without --wsd the decay's points bend the fit: a different answer
        rc, out, _ = run(log, "%.6f" % (law(want) - 0.1))
        got = tokens_at(out, "1.00")
        check(got is None or abs(got / want - 1) > 0.05, f"the decayed points change the plain fit: {got}")
        # a run still in its decay is refused
        with open(log) as f:
            rows = f.readlines()
        with open(log, "w") as f:
            f.writelines(rows[:170])  # to step 1,700: lr 0.75e-3, a quarter of the decay done
        rc, _, err = run(log, "1.5", "--wsd")
        check(rc != 0 and "has the run ended" in err, f"--wsd mid-decay is refused: rc {rc} {err!r}")

        # nothing to fit
        write_log(log, set(), train=False)
        rc, _, err = run(log, "2.0")
        check(rc != 0 and err.startswith("curve-trend: no bits per byte in ") and "Traceback" not in err,
              f"a log with no bpb fails with a message: rc {rc} {err!r}")
        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "w").close()
        rc, _, err = run(empty, "2.0")
        check(rc != 0 and "no records" in err, f"an empty log fails with a message: rc {rc} {err!r}")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
