#!/usr/bin/env bash
# make_codec_corpus.sh BUILD - adds to tests/corpus/codec: the seeds of
# tests/fuzz_codec.c and golden files of the container versions, made with
# the shipped checkpoints. Names: see fuzz_codec.c. Files already there are
# never replaced: they are golden files of a landed release (ok-v2-*:
# version 2; ok-* and bad-*: version 3, made with the first 200K, now in
# checkpoints/retired/; ok-v4-*: version 4, the int8 KV cache, made with
# recipe v2's 200K, also in checkpoints/retired/ since 2026-12-06). Run it
# to add files for a new version.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
DEST="$SRC/tests/corpus/codec"
OUT=$(mktemp -d); trap 'rm -rf "$OUT" "$T"' EXIT
DATA=${BT_DATA:-$SRC/../shared/data}
C=("$BUILD/bt-compress" --ckpt "$SRC/checkpoints/bt-200K.h5" -q --kv bf16) # version 3
mkdir -p "$DEST"; cd "$OUT"
T=$(mktemp -d)
{ xz -dc "$DATA/text/wiki-valid10m.txt.xz" || true; } | head -c 20000 | tail -c 3000 > "$T/text"
# Small seeds, so the fuzzer decodes them within its size limit; one
# stream past the model's context, for the windowed path.
head -c 400 "$T/text" > "$T/t400"
"${C[@]}" --chunk 2048 -c "$T/t400" > ok-chunk.bt
head -c 450 "$T/text" | "${C[@]}" --chunk 150 > ok-chunks.bt
head -c 300 "$T/text" | "${C[@]}" --chunk 0 > ok-stream.bt
"${C[@]}" --chunk 0 -c "$T/text" > ok-stream-windows.bt
head -c 100 /dev/urandom > "$T/rand"; "${C[@]}" --chunk 2048 -c "$T/rand" > ok-stored.bt
: | "${C[@]}" --chunk 2048 > ok-empty.bt
cat ok-chunk.bt ok-empty.bt ok-stored.bt > ok-three-members.bt
# Adaptive files: one stream past a window (so a training step runs), and
# segments. Small, so the fuzzer's seeds stay quick.
head -c 1500 "$T/text" | "${C[@]}" --adapt --chunk 0 --adapt-window 512 > ok-adapt-stream.bt
head -c 700 "$T/text" | "${C[@]}" > ok-default.bt # the default mode
head -c 1200 "$T/text" | "${C[@]}" --adapt --adapt-window 256 --segment 500 > ok-adapt-segments.bt
head -c 600 "$T/text" | "${C[@]}" --adapt --chunk 0 --adapt-parts none > ok-adapt-transformer-only.bt
cat ok-adapt-stream.bt ok-chunk.bt > ok-adapt-then-plain.bt
"$BUILD/bt-compress" --ckpt "$SRC/checkpoints/bt-800K.h5" -q --chunk 2048 -c "$T/t400" > bad-mismatch-800K.bt
{ cat ok-chunk.bt; printf 'JUNK'; } > bad-corrupt-trailing.bt
cat ok-chunk.bt bad-mismatch-800K.bt > bad-mismatch-second-member.bt
python3 - <<'PY'
import struct, zlib
d = bytearray(open("ok-chunk.bt", "rb").read())
d[170] ^= 0x10  # a payload byte: decodes to other bytes, caught by the CRC-32
open("bad-checksum-payload.bt", "wb").write(bytes(d))
s = bytearray(open("ok-stream-windows.bt", "rb").read())
s[50:56] = (27600000).to_bytes(6, "little")
s[108:112] = struct.pack("<I", zlib.crc32(bytes(s[:108]) + bytes(s[112:116])))
open("bad-limit-forged-size.bt", "wb").write(bytes(s))
PY
# Version 4: the int8 KV cache (bt-compress --kv int8).
C4=("$BUILD/bt-compress" --ckpt "$SRC/checkpoints/bt-200K.h5" -q --kv int8)
"${C4[@]}" --chunk 2048 -c "$T/t400" > ok-v4-chunk.bt
head -c 450 "$T/text" | "${C4[@]}" --chunk 150 > ok-v4-chunks.bt
"${C4[@]}" --chunk 0 -c "$T/text" > ok-v4-stream-windows.bt
head -c 1500 "$T/text" | "${C4[@]}" --adapt --chunk 0 --adapt-window 512 > ok-v4-adapt-stream.bt
head -c 700 "$T/text" | "${C4[@]}" > ok-v4-default.bt
cat ok-v4-chunk.bt ok-chunk.bt > ok-v4-then-v3.bt
cp -n -- * "$DEST"/
ls -l "$DEST"
