#!/usr/bin/env bash
# bt-sample: a compressor as a generative model. The same seed gives the same
# bytes; each step's distribution sums to 1 (gzip's through rho(b|x), and a bt
# model's own); greedy sampling is top-k 1; bad arguments exit 1.
source "$(dirname "$0")/lib.sh"
S="$BUILD/bt-sample"
text_slice 2000 > "$WORK/prompt"
M="$SRC/checkpoints/bt-200K.h5"
for c in gzip bzip2 "$M"; do
  "$S" --compressor "$c" --bytes 30 --seed 7 "$WORK/prompt" > "$WORK/a" || bad "$c: sampling failed"
  "$S" --compressor "$c" --bytes 30 --seed 7 "$WORK/prompt" > "$WORK/b"
  "$S" --compressor "$c" --bytes 30 --seed 8 "$WORK/prompt" > "$WORK/c"
  [ "$(stat -c %s "$WORK/a")" = 30 ] && cmp -s "$WORK/a" "$WORK/b" && ok || bad "$c: the same seed gives other bytes"
  cmp -s "$WORK/a" "$WORK/c" && bad "$c: seeds 7 and 8 give the same 30 bytes" || ok
  "$S" --compressor "$c" --bytes 5 --seed 7 --dist "$WORK/prompt" 2>"$WORK/dist" >/dev/null
  /usr/bin/python3 - "$WORK/dist" <<'PY' && ok || bad "$c: a step's probabilities do not sum to 1"
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
assert len(rows) == 5 and all(len(r) == 256 for r in rows), len(rows)
assert all(abs(sum(r) - 1) < 1e-9 and min(r) >= 0 for r in rows), [sum(r) for r in rows]
PY
  "$S" --compressor "$c" --bytes 20 --temperature 0 "$WORK/prompt" > "$WORK/g0"
  "$S" --compressor "$c" --bytes 20 --top-k 1 --seed 3 "$WORK/prompt" > "$WORK/g1"
  cmp -s "$WORK/g0" "$WORK/g1" && ok || bad "$c: temperature 0 and top-k 1 differ"
done
# The model's samples are bit-portable: every ISA path gives the same bytes.
"$S" --compressor "$M" --bytes 40 --seed 5 "$WORK/prompt" > "$WORK/m"
BT_ISA=scalar "$S" --compressor "$M" --bytes 40 --seed 5 "$WORK/prompt" | cmp -s - "$WORK/m" && ok ||
  bad "the scalar path samples other bytes"
rc=0; "$S" --compressor nope "$WORK/prompt" 2>/dev/null || rc=$?
[ $rc = 1 ] && ok || bad "an unknown compressor exits $rc"
rc=0; "$S" --compressor gzip 2>/dev/null || rc=$?
[ $rc = 1 ] && ok || bad "a missing prompt exits $rc"
summary
