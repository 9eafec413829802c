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
summary
