#!/usr/bin/env bash
# A BPE model's .bt files as hostile input (run under the sanitizers too): the
# golden file of the first version that coded tokens decodes to its text, and
# 80 damaged copies of it (a byte flipped in its payload, or cut short) each
# exit 0 with the right bytes or 1 with one line: never a crash, a sanitizer
# report, a hang, or wrong bytes.
source "$(dirname "$0")/lib.sh"
D="$BUILD/bt-decompress"
M="$SRC/tests/corpus/ckpt/ok-train-v5-bpe.h5"
G="$SRC/tests/corpus/codec-bpe/ok-v3-chunk32-wiki3000.bt"
text_slice 3000 > "$WORK/want"
"$D" --ckpt "$M" -c "$G" | cmp -s - "$WORK/want" && ok || bad "the golden BPE file does not decode to its text"
n=$(stat -c %s "$G")
/usr/bin/python3 - "$G" "$WORK" <<'PY'
import random, sys
src, work = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
rng = random.Random(21)
for i in range(80):
    b = bytearray(data)
    if i % 4 == 3:
        b = b[: rng.randrange(1, len(b))]
    else:  # past the header and chunk table, in the payloads
        at = rng.randrange(112 + 4 * 94, len(b))
        b[at] ^= 1 << rng.randrange(8)
    open(f"{work}/m{i}.bt", "wb").write(bytes(b))
PY
wrong=0; crash=0
for i in $(seq 0 79); do
  rc=0; timeout "$(tlimit 60)" "$D" --ckpt "$M" -c "$WORK/m$i.bt" > "$WORK/out" 2> "$WORK/err" || rc=$?
  if [ "$rc" = 0 ]; then cmp -s "$WORK/out" "$WORK/want" || wrong=$((wrong + 1))
  elif [ "$rc" != 1 ] || grep -q "Sanitizer\|runtime error" "$WORK/err"; then crash=$((crash + 1)); echo "m$i: rc $rc $(head -c 300 "$WORK/err")" >&2
  fi
done
[ "$wrong" = 0 ] && ok || bad "$wrong damaged files decoded to wrong bytes"
[ "$crash" = 0 ] && ok || bad "$crash damaged files crashed or hung the decoder"
summary
