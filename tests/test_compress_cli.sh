#!/usr/bin/env bash
# bt-compress / bt-decompress: round trips in every mode, bit-exact decoding
# across thread counts and SIMD paths, the stored fallback's size bound, and
# clean failures on bad input.
source "$(dirname "$0")/lib.sh"
C="$BUILD/bt-compress"; D="$BUILD/bt-decompress"; TRAIN="$BUILD/bt-train"
text_slice 120000 > "$WORK/text"
# A small trained model (ctx 256 < chunk 2048 exercises the windowed path too).
"$TRAIN" --recipe v1 --layers 2 --dim 32 --heads 2 --ctx 256 --batch 4 --steps 60 -T 2 -q -o "$WORK/m.h5" "$WORK/text" || bad "training the test model failed"
"$TRAIN" --recipe v1 --layers 1 --dim 32 --heads 2 --ctx 256 --batch 4 --steps 5 -T 2 -q -o "$WORK/other.h5" "$WORK/text" || bad "training the second model failed"
K=(--ckpt "$WORK/m.h5")
head -c 50000 "$WORK/text" > "$WORK/t50k"
head -c 3000 /dev/urandom > "$WORK/rand"
: > "$WORK/empty"
printf 'a' > "$WORK/one"

roundtrip() { # FILE CHUNK: compress, decompress in a fresh process, compare
  local f=$1 chunk=$2
  "$C" "${K[@]}" --chunk "$chunk" -c "$f" > "$WORK/rt.bt" || { bad "compress $f chunk $chunk"; return; }
  "$D" "${K[@]}" -c "$WORK/rt.bt" > "$WORK/rt.out" || { bad "decompress $f chunk $chunk"; return; }
  cmp -s "$f" "$WORK/rt.out" && ok || bad "round trip $f chunk $chunk differs"
}
for chunk in 2048 256 100 1 0; do roundtrip "$WORK/t50k" $chunk; done
roundtrip "$WORK/t50k" 5000     # chunks longer than the context: windows
roundtrip "$WORK/rand" 2048
roundtrip "$WORK/empty" 2048
roundtrip "$WORK/one" 2048
roundtrip "$WORK/one" 0

# ---- determinism: same bytes twice; decode with other threads and ISAs ----
# (a stream, --chunk 0, over 12 KB: far past the model's context, so
# windowed; the chunk-mode checks below code 6 chunks. 12 KB, since the
# scalar path codes this model at about 2 kB/s. Adaptive coding, the
# default, has the same checks below on 6 KB.)
S=(--chunk 0)
head -c 12000 "$WORK/text" > "$WORK/t12k"
"$C" "${K[@]}" "${S[@]}" -c "$WORK/t12k" > "$WORK/a.bt"; "$C" "${K[@]}" "${S[@]}" -T 1 -c "$WORK/t12k" > "$WORK/b.bt"
cmp -s "$WORK/a.bt" "$WORK/b.bt" && ok || bad "compressing twice (2 vs 1 threads) differs"
for isa in scalar avx2 avx512; do
  BT_ISA=$isa "$C" "${K[@]}" "${S[@]}" -c "$WORK/t12k" > "$WORK/isa.bt" 2>/dev/null || { echo "skip $isa"; continue; }
  cmp -s "$WORK/a.bt" "$WORK/isa.bt" && ok || bad "compressing with BT_ISA=$isa differs"
  for t in 1 2; do
    BT_ISA=$isa "$D" "${K[@]}" -T $t -c "$WORK/a.bt" > "$WORK/d.out" && cmp -s "$WORK/d.out" "$WORK/t12k" && ok \
      || bad "decode with BT_ISA=$isa -T $t differs"
  done
done
# The other compiler's build, when the test runner made one (tools/run-tests).
if [ -n "${BT_OTHER_BUILD:-}" ] && [ -x "$BT_OTHER_BUILD/bt-decompress" ]; then
  "$BT_OTHER_BUILD/bt-decompress" "${K[@]}" -c "$WORK/a.bt" > "$WORK/o.out" && cmp -s "$WORK/o.out" "$WORK/t12k" && ok \
    || bad "decode with the other compiler's build differs"
  "$BT_OTHER_BUILD/bt-compress" "${K[@]}" "${S[@]}" -c "$WORK/t12k" | cmp -s - "$WORK/a.bt" && ok \
    || bad "the other compiler's build compresses differently"
fi

# ---- both KV caches in chunk mode: bfloat16 (--kv bf16, container version
# 3) and int8 (--kv int8, version 4, what --kv auto, the default, picks for
# chunks): the same bytes on every path, thread count and compiler, and the
# two differ (the flag is not a no-op) ----
for kv in int8 bf16; do
  "$C" "${K[@]}" --chunk 2048 --kv $kv -c "$WORK/t12k" > "$WORK/kv-$kv.bt" || bad "compress --kv $kv"
  [ "$(od -An -tu1 -j4 -N1 "$WORK/kv-$kv.bt" | tr -d ' ')" = "$([ $kv = int8 ] && echo 4 || echo 3)" ] && ok \
    || bad "--kv $kv wrote container version $(od -An -tu1 -j4 -N1 "$WORK/kv-$kv.bt")"
  for isa in scalar avx2 avx512; do
    BT_ISA=$isa "$C" "${K[@]}" --chunk 2048 --kv $kv -T 1 -c "$WORK/t12k" > "$WORK/kvi.bt" 2>/dev/null || continue
    cmp -s "$WORK/kv-$kv.bt" "$WORK/kvi.bt" && ok || bad "--kv $kv: compressing with BT_ISA=$isa -T 1 differs"
    BT_ISA=$isa "$D" "${K[@]}" -T 2 -c "$WORK/kv-$kv.bt" | cmp -s - "$WORK/t12k" && ok \
      || bad "--kv $kv: decode with BT_ISA=$isa differs"
  done
  if [ -n "${BT_OTHER_BUILD:-}" ] && [ -x "$BT_OTHER_BUILD/bt-decompress" ]; then
    "$BT_OTHER_BUILD/bt-decompress" "${K[@]}" -c "$WORK/kv-$kv.bt" | cmp -s - "$WORK/t12k" && ok \
      || bad "--kv $kv: decode with the other compiler's build differs"
  fi
done
cmp -s "$WORK/kv-int8.bt" "$WORK/kv-bf16.bt" && bad "--kv int8 and bf16 wrote the same file" || ok
expect 1 "invalid --kv" "--kv fp8 is refused" -- "$C" "${K[@]}" --kv fp8 -c "$WORK/t50k"
# auto (the default): int8 for chunks and streams, bfloat16 (version 3) for adaptive coding
"$C" "${K[@]}" --chunk 2048 -c "$WORK/t12k" | cmp -s - "$WORK/kv-int8.bt" && ok || bad "--chunk 2048 alone is not --kv int8"
"$C" "${K[@]}" --chunk 2048 --kv auto -c "$WORK/t12k" | cmp -s - "$WORK/kv-int8.bt" && ok || bad "--kv auto with chunks is not int8"
head -c 5000 "$WORK/t50k" > "$WORK/t5k"
for m in "--chunk 0" "--adapt --chunk 0"; do
  want=$([ "$m" = "--chunk 0" ] && echo 4 || echo 3)
  "$C" "${K[@]}" $m -c "$WORK/t5k" > "$WORK/auto.bt" && [ "$(od -An -tu1 -j4 -N1 "$WORK/auto.bt" | tr -d ' ')" = "$want" ] &&
    "$D" "${K[@]}" -c "$WORK/auto.bt" | cmp -s - "$WORK/t5k" && ok ||
    bad "$m with the default --kv: version $(od -An -tu1 -j4 -N1 "$WORK/auto.bt"), not $want, or does not decode"
done

# ---- adaptive files: the model learns while coding, and every decoder
# replays the same training steps (BT_ISA x threads x the other compiler) ----
head -c 6000 "$WORK/text" > "$WORK/t6k"
"$C" "${K[@]}" --adapt --chunk 0 --adapt-window 128 --adapt-lr 1e-3 -c "$WORK/t6k" > "$WORK/ad.bt" || bad "adaptive compress"
"$C" "${K[@]}" --adapt --adapt-window 128 --adapt-lr 1e-3 --segment 2500 -c "$WORK/t6k" > "$WORK/ads.bt" || bad "adaptive segments"
"$C" "${K[@]}" --adapt --chunk 0 --adapt-window 128 --adapt-lr 1e-3 -T 1 -c "$WORK/t6k" | cmp -s - "$WORK/ad.bt" && ok \
  || bad "adaptive compression with 1 thread differs"
[ "$(stat -c %s "$WORK/ad.bt")" -lt 6000 ] && ok || bad "the adaptive file did not shrink"
"$D" -l -v "$WORK/ad.bt" | grep -q "adaptive stream" && ok || bad "-l does not show the adaptive mode"
"$D" -l -v "$WORK/ads.bt" | grep -q "adaptive segment 2500, 3 chunks" && ok || bad "-l does not show the segments"
# The default mode is adaptive (1 MiB segments); --chunk alone is plain coding.
"$C" "${K[@]}" -c "$WORK/t6k" > "$WORK/def.bt" && "$D" -l -v "$WORK/def.bt" | grep -q "adaptive segment 1048576" && ok \
  || bad "the default mode is not adaptive segments of 1 MiB"
"$C" "${K[@]}" --chunk 2048 -c "$WORK/t6k" > "$WORK/pl.bt" && "$D" -l -v "$WORK/pl.bt" | grep -q "member 1: chunk 2048" && ok \
  || bad "--chunk 2048 is not plain coding"
"$D" "${K[@]}" -c "$WORK/def.bt" | cmp -s - "$WORK/t6k" && ok || bad "the default mode does not round-trip"
for isa in scalar avx2 avx512; do
  BT_ISA=$isa "$C" "${K[@]}" --adapt --chunk 0 --adapt-window 128 --adapt-lr 1e-3 -c "$WORK/t6k" > "$WORK/adi.bt" 2>/dev/null \
    || { echo "skip $isa"; continue; }
  cmp -s "$WORK/adi.bt" "$WORK/ad.bt" && ok || bad "adaptive compression with BT_ISA=$isa differs"
  for t in 1 2; do
    for f in ad ads; do
      BT_ISA=$isa "$D" "${K[@]}" -T $t -c "$WORK/$f.bt" > "$WORK/d.out" && cmp -s "$WORK/d.out" "$WORK/t6k" && ok \
        || bad "adaptive decode ($f) with BT_ISA=$isa -T $t differs"
    done
  done
done
if [ -n "${BT_OTHER_BUILD:-}" ] && [ -x "$BT_OTHER_BUILD/bt-decompress" ]; then
  for f in ad ads; do
    "$BT_OTHER_BUILD/bt-decompress" "${K[@]}" -c "$WORK/$f.bt" > "$WORK/o.out" && cmp -s "$WORK/o.out" "$WORK/t6k" && ok \
      || bad "adaptive decode ($f) with the other compiler's build differs"
  done
  "$BT_OTHER_BUILD/bt-compress" "${K[@]}" --adapt --chunk 0 --adapt-window 128 --adapt-lr 1e-3 -c "$WORK/t6k" | cmp -s - "$WORK/ad.bt" && ok \
    || bad "the other compiler's build compresses adaptively differently"
fi
# Damage: truncation and a flipped byte fail with status 1, never a crash.
head -c $(( $(stat -c %s "$WORK/ad.bt") - 3 )) "$WORK/ad.bt" > "$WORK/adt.bt"
expect 1 "" "truncated adaptive file" -- "$D" "${K[@]}" -c "$WORK/adt.bt"
python3 -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[len(d)//2]^=4; open(sys.argv[2],'wb').write(d)" "$WORK/ad.bt" "$WORK/adf.bt"
expect 1 "" "adaptive file with a flipped byte" -- "$D" "${K[@]}" -c "$WORK/adf.bt"
expect 1 "another checkpoint" "adaptive file, wrong model" -- "$D" --ckpt "$WORK/other.h5" -c "$WORK/ad.bt"

# ---- the stored fallback bounds the output: input + 112 + 4 per chunk ----
head -c 20000 /dev/urandom > "$WORK/r20k"
"$C" "${K[@]}" -c "$WORK/r20k" > "$WORK/r.bt"
sz=$(stat -c %s "$WORK/r.bt"); bound=$((20000 + 112 + 4 * 10))
[ "$sz" -le "$bound" ] && ok || bad "random data grew to $sz > $bound"
[ "$sz" -le $((bound + 1)) ] && [ "$sz" -gt 20000 ] && ok || bad "random data size $sz not as expected"

# ---- CLI conventions ----
# The CLI's behaviour, in the default mode (adaptive), on 6 KB.
cp "$WORK/t6k" "$WORK/f"
expect 0 "" "compress to FILE.bt" -- "$C" "${K[@]}" "$WORK/f"
[ -s "$WORK/f.bt" ] && [ -s "$WORK/f" ] && ok || bad "FILE.bt missing or input removed without --rm"
expect 1 "already exists" "no overwrite without -f" -- "$C" "${K[@]}" "$WORK/f"
expect 0 "" "overwrite with -f" -- "$C" "${K[@]}" -f "$WORK/f"
mv "$WORK/f" "$WORK/f.orig"
expect 0 "" "decompress FILE.bt" -- "$D" "${K[@]}" "$WORK/f.bt"
cmp -s "$WORK/f" "$WORK/f.orig" && ok || bad "decompressed FILE differs"
expect 0 "" "-t tests integrity" -- "$C" "${K[@]}" -t "$WORK/f.bt"
expect 0 "" "-l lists" -- "$C" -l "$WORK/f.bt"
grep -q "Chunks" "$WORK/stdout" && ok || bad "-l output lacks the chunk count"
expect 0 "" "stdin to stdout" -- sh -c "'$C' --ckpt '$WORK/m.h5' < '$WORK/t6k' | '$D' --ckpt '$WORK/m.h5' | cmp -s - '$WORK/t6k'"
rm -f "$WORK/f.bt"; cp "$WORK/f.orig" "$WORK/g"
expect 0 "" "--rm after verify" -- "$C" "${K[@]}" --rm "$WORK/g"
[ ! -e "$WORK/g" ] && [ -s "$WORK/g.bt" ] && ok || bad "--rm did not remove the input, or lost the output"
expect 0 "" "-v reports rates" -- "$C" "${K[@]}" -v -c "$WORK/t6k"
grep -q "adjusted rate" "$WORK/stderr" && grep -q "log-loss" "$WORK/stderr" && ok || bad "-v lacks rates"
expect 0 "" "--version" -- "$C" -V
expect 0 "" "--help" -- "$C" -h
expect 1 "unknown option" "bad flag" -- "$C" --frobnicate
expect 1 "invalid --chunk" "bad chunk" -- "$C" "${K[@]}" --chunk -5 "$WORK/t50k"

# ---- bad input: exit 1, one clear line, no crash ----
"$C" "${K[@]}" --chunk 2048 -c "$WORK/t50k" > "$WORK/good.bt"
head -c 1000 "$WORK/good.bt" > "$WORK/trunc.bt"
expect 1 "corrupt" "truncated file" -- "$D" "${K[@]}" -c "$WORK/trunc.bt"
for off in 10 70 300 2000 9000; do
  cp "$WORK/good.bt" "$WORK/flip.bt"
  printf '\xa5' | dd of="$WORK/flip.bt" bs=1 seek=$off conv=notrunc status=none
  expect 1 "corrupt|checksum|format|another checkpoint" "bit flip at $off" -- "$D" "${K[@]}" -c "$WORK/flip.bt"
done
head -c 5000 /dev/urandom > "$WORK/garbage"
expect 1 "format|corrupt" "garbage" -- "$D" "${K[@]}" -c "$WORK/garbage"
expect 1 "empty" "empty input to the decoder" -- "$D" "${K[@]}" -c "$WORK/empty"
expect 1 "another checkpoint.*sha256 [0-9a-f]{64}" "another checkpoint" -- "$D" --ckpt "$WORK/other.h5" -c "$WORK/good.bt"
expect 2 "unknown suffix" "decompress without .bt (a skip)" -- "$D" "${K[@]}" "$WORK/t50k"
# Without --ckpt the shipped checkpoints/bt-200K.h5 is the default...
if [ -r "$SRC/checkpoints/bt-200K.h5" ]; then
  expect 0 "" "default checkpoint" -- env BT_CKPT= "$C" -f -o "$WORK/def.bt" "$WORK/one"
  want=$("$BUILD/bt-ckpt" info "$SRC/checkpoints/bt-200K.h5" | sed -n 's/.*sha256 //p')
  "$C" -lv "$WORK/def.bt" | grep -q "$want" && ok || bad "the default checkpoint is not the shipped one"
  # a file made with another shipped model decodes with no flag: it is found by its weights hash
  head -c 3000 "$WORK/t50k" > "$WORK/t3k"
  if [ -r "$SRC/checkpoints/bt-800K.h5" ]; then
    "$C" --ckpt "$SRC/checkpoints/bt-800K.h5" -c "$WORK/t3k" > "$WORK/t3k.bt"
    expect 0 "" "a bt-800K file without --ckpt" -- sh -c "env BT_CKPT= '$D' -c '$WORK/t3k.bt' | cmp -s - '$WORK/t3k'"
    "$C" -l "$WORK/t3k.bt" | grep -q " bt-800K " && ok || bad "-l does not name bt-800K"
    expect 1 "another checkpoint" "an explicit --ckpt is not second-guessed" -- "$D" --ckpt "$SRC/checkpoints/bt-200K.h5" -c "$WORK/t3k.bt"
    "$C" -m 800K -c "$WORK/t3k" | cmp -s - "$WORK/t3k.bt" && ok || bad "-m 800K is not the shipped bt-800K"
  fi
  expect 0 "" "--list-models" -- "$C" --list-models
  grep -q "^bt-200K .* $want " "$WORK/stdout" && ok || bad "--list-models lacks bt-200K and its hash: $(cat "$WORK/stdout")"
  expect 1 "no model 'nope'" "-m with an unknown name" -- "$C" -m nope -c "$WORK/one"
  # $BT_MODEL_PATH: a model of the user's, by name and, when decoding, by hash
  mkdir -p "$WORK/models" && cp "$WORK/m.h5" "$WORK/models/mine.h5"
  expect 0 "" "-m NAME from \$BT_MODEL_PATH" -- sh -c "BT_MODEL_PATH='$WORK/models' '$C' -m mine -c '$WORK/t3k' > '$WORK/mine.bt'"
  expect 0 "" "decoding finds it by hash" -- sh -c "env BT_CKPT= BT_MODEL_PATH='$WORK/models' '$D' -c '$WORK/mine.bt' | cmp -s - '$WORK/t3k'"
fi
# ...and a program with none beside it and no BT_CKPT says so.
mkdir -p "$WORK/bin" && cp "$C" "$WORK/bin/bt-compress"
expect 1 "no model checkpoint" "no checkpoint" -- sh -c "cd '$WORK' && env BT_CKPT= '$WORK/bin/bt-compress' -c '$WORK/t50k'"
expect 1 "cannot load checkpoint" "bad checkpoint" -- "$C" --ckpt "$WORK/t50k" -c "$WORK/t50k"
expect 1 "No such file" "missing input" -- "$C" "${K[@]}" "$WORK/nope"
expect 1 "cannot write" "unwritable folder" -- "$C" "${K[@]}" -o "$WORK/t50k/x.bt" "$WORK/t50k"
expect 1 "BT_ISA" "bad BT_ISA" -- env BT_ISA=sse9 "$C" "${K[@]}" -c "$WORK/t50k"
# ---- multi-row decoding: a lone stream decoded K rows a pass (guesses that
# fail are rewound) gives the same bytes for every K, plain and adaptive, on
# every ISA path ----
"$C" "${K[@]}" --chunk 0 -c "$WORK/t6k" > "$WORK/st.bt"
isas=scalar; grep -qw avx2 /proc/cpuinfo && isas+=" avx2"; grep -qw avx512f /proc/cpuinfo && isas+=" avx512"
for k in 1 2 5 16; do
  for isa in $isas; do
    BT_SPEC_K=$k BT_ISA=$isa "$D" "${K[@]}" -c "$WORK/st.bt" > "$WORK/d.out" && cmp -s "$WORK/d.out" "$WORK/t6k" && ok ||
      bad "stream decode with BT_SPEC_K=$k BT_ISA=$isa differs"
  done
  BT_SPEC_K=$k "$D" "${K[@]}" -c "$WORK/ad.bt" | cmp -s - "$WORK/t6k" && ok || bad "adaptive decode with BT_SPEC_K=$k differs"
done

summary
