#!/usr/bin/env bash
# tools/tokenization-study --quick: tiny presets over bytes and two BPE
# vocabularies, trained at equal FLOPs, coded and tabulated; the plan is
# printed before any training; a rerun redoes nothing; the table, CSV and
# plot are made.
source "$(dirname "$0")/lib.sh"
OUT="$WORK/tok"
"$SRC/tools/tokenization-study" "$BUILD" --quick -T 2 --out "$OUT" > "$WORK/log" 2>&1 || bad "the quick study failed: $(tail -5 "$WORK/log")"
grep -n "expected to take about" "$WORK/log" | head -1 | grep -q . && ok || bad "no time estimate"
# the estimate comes before the first training
e=$(grep -n "expected to take" "$WORK/log" | head -1 | cut -d: -f1); t=$(grep -En -- "-(bytes|[0-9]+): training " "$WORK/log" | head -1 | cut -d: -f1)
[ -n "$e" ] && [ -n "$t" ] && [ "$e" -lt "$t" ] && ok || bad "the estimate is not printed up front"
/usr/bin/python3 - "$OUT/tokenization.csv" "$BUILD" "$OUT" <<'PY' && ok || bad "tokenization.csv is wrong: $(cat "$OUT/tokenization.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 6, len(rows)
for p in ("q4K", "q12K"):
    r = [x for x in rows if x["preset"] == p]
    f = [float(x["flops"]) for x in r]
    assert max(f) / min(f) < 1.1, f          # equal training FLOPs within a step
    assert all(0 < float(x["raw_rate"]) < 1 and float(x["adjusted_rate"]) > float(x["raw_rate"]) for x in r), r
    assert sorted(int(x["vocab"]) for x in r) == [256, 300, 600]
    big = [x for x in r if int(x["vocab"]) == 600][0]
    assert int(big["embed_head_params"]) == 2 * 600 * (16 if p == "q4K" else 32) + 600, big
for x in rows:  # the parameter count is bt's own (bt-ckpt info of the trained model)
    name = f"{x['preset']}-{'bytes' if x['vocab'] == '256' else x['vocab']}"
    import re, subprocess
    info = subprocess.run([sys.argv[2] + "/bt-ckpt", "info", f"{sys.argv[3]}/models/{name}.h5"], capture_output=True, text=True).stdout
    assert int(re.search(r"params\s+(\d+)", info).group(1)) == int(x["params"]), (name, info)
PY
[ -s "$OUT/tokenization.md" ] && grep -q "| bytes |" "$OUT/tokenization.md" && ok || bad "no table"
if command -v gnuplot >/dev/null; then [ -s "$OUT/tokenization.png" ] && ok || bad "no plot"; fi
"$SRC/tools/tokenization-study" "$BUILD" --quick -T 2 --out "$OUT" > "$WORK/log2" 2>&1 || bad "the rerun failed"
grep -Eq -- "-(bytes|[0-9]+): (training|coding|resuming) |training the tokenizers" "$WORK/log2" &&
  bad "the rerun trained or coded again: $(grep -E -- '-(bytes|[0-9]+): ' "$WORK/log2" | head -2)" || ok
# Kept rows carry the study across machines: with --keep, a run in a new
# results folder (a new machine) trains only what is not kept, and its table
# is the same as the one made where the rows were trained.
KEEP="$WORK/keep"
"$SRC/tools/tokenization-study" "$BUILD" --quick -T 2 --out "$OUT" --keep "$KEEP" > "$WORK/log3" 2>&1 || bad "the run that keeps failed"
[ "$(ls "$KEEP"/*.json 2>/dev/null | wc -l)" = 6 ] && ok || bad "kept rows: $(ls "$KEEP" 2>&1)"
rm "$KEEP"/q12K-600-*.json
"$SRC/tools/tokenization-study" "$BUILD" --quick -T 2 --out "$WORK/tok2" --keep "$KEEP" > "$WORK/log4" 2>&1 || bad "the run from kept rows failed"
trained=$(grep -Eo -- "q[0-9]+K-(bytes|[0-9]+): training" "$WORK/log4" | tr '\n' ' ')
[ "$trained" = "q12K-600: training " ] && ok || bad "from kept rows it trained: '$trained' (want only q12K-600)"
grep -q "kept in $KEEP, not trained again: q4K-bytes" "$WORK/log4" && ok || bad "no note of the kept rows: $(head -3 "$WORK/log4")"
[ "$(ls "$KEEP"/*.json | wc -l)" = 6 ] && ok || bad "the retrained row was not kept again"
# the same table but for the retrained row's training time
/usr/bin/python3 - "$OUT/tokenization.csv" "$WORK/tok2/tokenization.csv" <<'PY' && ok || bad "the table from kept rows differs: $(diff "$OUT/tokenization.csv" "$WORK/tok2/tokenization.csv")"
import csv, sys
a, b = ([{k: v for k, v in r.items() if k != "train_s"} for r in csv.DictReader(open(f))] for f in sys.argv[1:])
assert a == b and len(a) == 6, (a, b)
PY
# a kept row of another plan (another budget) is not taken
"$SRC/tools/tokenization-study" "$BUILD" --quick -T 2 --base-tokens 30K --out "$WORK/tok3" --keep "$KEEP" --estimate > "$WORK/log5" 2>&1 || bad "the estimate failed"
grep -q "not trained again" "$WORK/log5" && bad "a row of another budget was taken as kept" || ok
summary
