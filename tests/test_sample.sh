#!/usr/bin/env bash
# bt-sample: a compressor as a generative model. The same seed gives the same
# bytes; each step's distribution sums to 1 (gzip's through rho(b|x), and a bt
# model's own, over bytes or a BPE model's tokens); greedy sampling is top-k
# 1; bad arguments exit 1.
source "$(dirname "$0")/lib.sh"
S="$BUILD/bt-sample"
text_slice 2000 > "$WORK/prompt"
M="$SRC/checkpoints/bt-200K.h5"
# A small BPE model of 300 tokens, trained for a few steps.
text_slice 200000 > "$WORK/text"
"$BUILD/bt-tokenize" train --vocab 300 -o "$WORK/tok-300" "$WORK/text" >/dev/null 2>&1 &&
  "$BUILD/bt-train" --recipe v1 --layers 1 --dim 32 --heads 2 --ctx 64 --batch 4 --steps 30 --val-split 0.05 -q -T 2 \
    --tokenizer "$WORK/tok-300.btok" -o "$WORK/bpe.h5" "$WORK/text" || bad "training a BPE model failed"
for c in gzip bzip2 "$M" "$WORK/bpe.h5"; do
  V=256; [ "$c" = "$WORK/bpe.h5" ] && V=300
  "$S" --compressor "$c" --bytes 30 --seed 7 "$WORK/prompt" > "$WORK/a" || bad "$c: sampling failed"
  "$S" --compressor "$c" --bytes 30 --seed 7 "$WORK/prompt" > "$WORK/b"
  "$S" --compressor "$c" --bytes 30 --seed 8 "$WORK/prompt" > "$WORK/c"
  [ "$(stat -c %s "$WORK/a")" = 30 ] && cmp -s "$WORK/a" "$WORK/b" && ok || bad "$c: the same seed gives other bytes"
  cmp -s "$WORK/a" "$WORK/c" && bad "$c: seeds 7 and 8 give the same 30 bytes" || ok
  "$S" --compressor "$c" --bytes 5 --seed 7 --dist "$WORK/prompt" 2>"$WORK/dist" >/dev/null
  /usr/bin/python3 - "$WORK/dist" $V <<'PY' && ok || bad "$c: a step's probabilities do not sum to 1"
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
V = int(sys.argv[2])
# one row per byte, or per token of a BPE model (a token is one byte or more)
assert 1 <= len(rows) <= 5 and (V > 256 or len(rows) == 5) and all(len(r) == V for r in rows), len(rows)
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
"$S" --compressor "$WORK/bpe.h5" --bytes 40 --seed 5 "$WORK/prompt" > "$WORK/t"
BT_ISA=scalar "$S" --compressor "$WORK/bpe.h5" --bytes 40 --seed 5 "$WORK/prompt" | cmp -s - "$WORK/t" && ok ||
  bad "the scalar path samples other bytes from a BPE model"
# the model that samples also compresses (test_bpe_codec tests that path)
"$BUILD/bt-compress" --ckpt "$WORK/bpe.h5" -c "$WORK/prompt" | "$BUILD/bt-decompress" --ckpt "$WORK/bpe.h5" -c |
  cmp -s - "$WORK/prompt" && ok || bad "the BPE model does not round-trip the prompt"
rc=0; "$S" --compressor nope "$WORK/prompt" 2>/dev/null || rc=$?
[ $rc = 1 ] && ok || bad "an unknown compressor exits $rc"
rc=0; "$S" --compressor gzip 2>/dev/null || rc=$?
[ $rc = 1 ] && ok || bad "a missing prompt exits $rc"
summary
