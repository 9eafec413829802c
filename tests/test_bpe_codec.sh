#!/usr/bin/env bash
# The coder over a BPE model's tokens (issue 21): a model of a 1K vocabulary
# round-trips text, random bytes and every byte value through bt-compress and
# bt-decompress, with the same file on every ISA path and thread count;
# text compresses, random data is stored (never expanded past the header);
# chunks longer than the context, stream mode and adaptive coding are refused
# with one line; a damaged payload never decodes to wrong bytes (the golden
# file and its damaged copies are test_bpe_golden's).
source "$(dirname "$0")/lib.sh"
C="$BUILD/bt-compress"
D="$BUILD/bt-decompress"
text_slice 400000 > "$WORK/text"
head -c 60000 "$WORK/text" > "$WORK/in.txt"
"$BUILD/bt-tokenize" train --vocab 1000 -o "$WORK/tok-1000" "$WORK/text" >/dev/null 2>&1 || bad "bt-tokenize train failed"
"$BUILD/bt-train" --recipe v1 --layers 2 --dim 32 --heads 2 --ctx 256 --batch 4 --steps 150 --val-split 0.05 --val-every 0 \
  -q -T 2 --tokenizer "$WORK/tok-1000.btok" -o "$WORK/m.h5" "$WORK/text" || bad "training the 1K model failed"
M="$WORK/m.h5"
head -c 20000 /dev/urandom > "$WORK/in.rand"
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 9)' > "$WORK/in.all"
: > "$WORK/in.empty"
for f in in.txt in.rand in.all in.empty; do
  "$C" --ckpt "$M" --chunk 256 -c "$WORK/$f" > "$WORK/$f.bt" || bad "$f: compress failed"
  "$D" --ckpt "$M" -c "$WORK/$f.bt" | cmp -s - "$WORK/$f" && ok || bad "$f: the round trip differs"
done
# text compresses (the model is tiny and briefly trained: below 70% is enough)
n=$(stat -c %s "$WORK/in.txt"); z=$(stat -c %s "$WORK/in.txt.bt")
[ $((z * 100)) -lt $((n * 70)) ] && ok || bad "text codes to $z of $n bytes"
# random data: stored chunks, so the file is the input plus the header and table
n=$(stat -c %s "$WORK/in.rand"); z=$(stat -c %s "$WORK/in.rand.bt")
[ "$z" -le $((n + 112 + 4 * (n / 256 + 1))) ] && ok || bad "random data expands to $z of $n bytes"
# the bits do not depend on the path or the threads
for env in "BT_ISA=scalar" "BT_ISA=avx2" "OMP_NUM_THREADS=1"; do
  if [ "$env" = "BT_ISA=avx2" ] && ! grep -qw avx2 /proc/cpuinfo; then continue; fi
  env $env "$C" --ckpt "$M" --chunk 256 -c "$WORK/in.txt" | cmp -s - "$WORK/in.txt.bt" && ok ||
    bad "$env: another file"
  env $env "$D" --ckpt "$M" -c "$WORK/in.txt.bt" | cmp -s - "$WORK/in.txt" && ok || bad "$env: decodes wrong"
done
# ... nor on the compiler: the other build (clang, in CI) writes the same file and decodes it
if [ -n "${BT_OTHER_BUILD:-}" ] && [ -x "$BT_OTHER_BUILD/bt-compress" ]; then
  "$BT_OTHER_BUILD/bt-compress" --ckpt "$M" --chunk 256 -c "$WORK/in.txt" | cmp -s - "$WORK/in.txt.bt" && ok ||
    bad "the other compiler's build writes another file"
  "$BT_OTHER_BUILD/bt-decompress" --ckpt "$M" -c "$WORK/in.txt.bt" | cmp -s - "$WORK/in.txt" && ok ||
    bad "the other compiler's build decodes wrong"
fi
expect 1 "BPE tokens codes chunks of at most its context" "a chunk past the context" -- \
  "$C" --ckpt "$M" --chunk 2048 -c "$WORK/in.txt"
expect 1 "BPE tokens codes chunks" "stream mode" -- "$C" --ckpt "$M" --chunk 0 -c "$WORK/in.txt"
expect 1 "BPE tokens codes chunks" "adaptive coding" -- "$C" --ckpt "$M" --adapt -c "$WORK/in.txt"
# with no mode given, a BPE model codes chunks of its context (256 bytes here): the same file as --chunk 256
"$C" --ckpt "$M" -c "$WORK/in.txt" | cmp -s - "$WORK/in.txt.bt" && ok || bad "the default mode of a BPE model is not --chunk 256"
# damage: a flipped payload byte is caught (CRC or an impossible stream), never wrong output
cp "$WORK/in.txt.bt" "$WORK/bad.bt"
printf '\x55' | dd of="$WORK/bad.bt" bs=1 seek=5000 conv=notrunc 2>/dev/null
rc=0; "$D" --ckpt "$M" -c "$WORK/bad.bt" > "$WORK/bad.out" 2>/dev/null || rc=$?
[ "$rc" = 1 ] && ok || bad "a damaged file exits $rc"
# (the golden BPE file and damaged copies of it: test_bpe_golden.sh, also under the sanitizers)
summary
