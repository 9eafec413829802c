#!/usr/bin/env bash
# bt-train under Open MPI (train/dist.h): the same flags give byte-identical
# weights on 1, 2 and 4 ranks and any thread count per rank (context warmup
# and Muon included); a run stopped under 2 ranks resumes under 1 and ends as
# the uninterrupted run; a rank killed mid-run makes mpirun fail and leaves
# the last checkpoint whole; a batch the ranks cannot share is refused.
# Skipped (77) when bt was built without MPI.
source "$(dirname "$0")/lib.sh"
grep -q '^BT_MPI:BOOL=ON' "$BUILD/CMakeCache.txt" || { echo "test_mpi: built without MPI, skipped"; exit 77; }
command -v mpirun >/dev/null || { echo "test_mpi: no mpirun, skipped"; exit 77; }
# CI runs as root; ranks may outnumber the cores; Open MPI's own allocations
# are not ours to leak-check.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
MPI=(mpirun --oversubscribe)
TRAIN="$BUILD/bt-train"
text_slice 300000 > "$WORK/small.txt"
wsha() { "$BUILD/bt-ckpt" info "$1" | awk '/weights/ {print $3}'; }

ARGS=(--recipe v1 --layers 2 --dim 32 --heads 2 --ctx 64 --batch 8 --steps 40 --seed 11 -q --val-split 0.05 --val-every 20
      --ckpt-every 5 --ctx-warmup 15 --ctx-min 16)
"$TRAIN" "${ARGS[@]}" -T 1 -o "$WORK/p1.h5" "$WORK/small.txt" || bad "1 process failed"
ref=$(wsha "$WORK/p1.h5")
[ -n "$ref" ] || bad "no weights hash"
"$TRAIN" "${ARGS[@]}" -T 2 -o "$WORK/p1t2.h5" "$WORK/small.txt" || bad "1 process, 2 threads failed"
[ "$(wsha "$WORK/p1t2.h5")" = "$ref" ] && ok || bad "1 process: 2 threads differ from 1"
for np in 2 4; do
  for t in 1 2; do
    "${MPI[@]}" -np $np "$TRAIN" "${ARGS[@]}" -T $t -o "$WORK/np$np-t$t.h5" "$WORK/small.txt" || bad "$np ranks x $t threads failed"
    [ "$(wsha "$WORK/np$np-t$t.h5")" = "$ref" ] && ok || bad "$np ranks x $t threads: weights differ from one process"
  done
done
# Only rank 0 writes: one log, whose rows match the one-process log.
cmp -s <(cut -d, -f1,2,4,5,6 "$WORK/p1.h5.log.jsonl") <(cut -d, -f1,2,4,5,6 "$WORK/np4-t1.h5.log.jsonl") && ok ||
  bad "the 4-rank log differs from the one-process log"
# Muon too.
MU=(--recipe v1 --layers 2 --dim 32 --heads 2 --ctx 64 --batch 4 --steps 20 --seed 12 -q --val-split 0.05 --val-every 0 --optimizer muon)
"$TRAIN" "${MU[@]}" -T 2 -o "$WORK/mu1.h5" "$WORK/small.txt" || bad "Muon, 1 process failed"
"${MPI[@]}" -np 2 "$TRAIN" "${MU[@]}" -T 1 -o "$WORK/mu2.h5" "$WORK/small.txt" || bad "Muon, 2 ranks failed"
[ "$(wsha "$WORK/mu2.h5")" = "$(wsha "$WORK/mu1.h5")" ] && ok || bad "Muon: 2 ranks differ from one process"

# A batch warmup (batches of 2, 4, then 8) too; 4 ranks cannot share its first batch of 2.
BW=(--recipe v1 --layers 2 --dim 32 --heads 2 --ctx 64 --batch 8 --steps 20 --seed 14 -q --val-split 0.05 --val-every 0
    --batch-warmup 12 --batch-min 2)
"$TRAIN" "${BW[@]}" -T 2 -o "$WORK/bw1.h5" "$WORK/small.txt" || bad "batch warmup, 1 process failed"
"${MPI[@]}" -np 2 "$TRAIN" "${BW[@]}" -T 1 -o "$WORK/bw2.h5" "$WORK/small.txt" || bad "batch warmup, 2 ranks failed"
[ "$(wsha "$WORK/bw2.h5")" = "$(wsha "$WORK/bw1.h5")" ] && ok || bad "batch warmup: 2 ranks differ from one process"
expect 1 "cannot share the batch warmup's first batch of 2" "4 ranks, a first batch of 2" -- \
  "${MPI[@]}" -np 4 "$TRAIN" "${BW[@]}" -T 1 -o "$WORK/bw4.h5" "$WORK/small.txt"

# Stopped under 2 ranks (SIGTERM to mpirun), resumed under 1: the same end.
LONG=(--recipe v1 --layers 2 --dim 32 --heads 2 --ctx 64 --batch 8 --steps 400 --seed 13 -q --val-split 0.05 --val-every 0 --ckpt-every 5)
"$TRAIN" "${LONG[@]}" -T 2 -o "$WORK/long1.h5" "$WORK/small.txt" || bad "the long run failed"
"${MPI[@]}" -np 2 "$TRAIN" "${LONG[@]}" -T 1 -o "$WORK/long2.h5" "$WORK/small.txt" &
pid=$!
for _ in $(seq 400); do [ -e "$WORK/long2.h5" ] && break; sleep 0.05; done
sleep 0.3
kill -TERM "$pid"; wait "$pid" 2>/dev/null
step=$("$BUILD/bt-ckpt" info "$WORK/long2.h5" | awk '/training/ {print $3}')
echo "stopped under 2 ranks at step $step of 400"
[ -n "$step" ] && [ "$step" -lt 400 ] && ok || echo "note: the 2-rank run ended before the signal"
"$TRAIN" --resume "$WORK/long2.h5" -T 1 -q "$WORK/small.txt" || bad "resume under 1 process failed"
[ "$(wsha "$WORK/long2.h5")" = "$(wsha "$WORK/long1.h5")" ] && ok || bad "2 ranks then 1 differ from one run"

# A rank killed mid-run: mpirun fails, the last checkpoint stays whole.
"${MPI[@]}" -np 2 "$TRAIN" "${LONG[@]}" -T 1 -o "$WORK/kill.h5" "$WORK/small.txt" 2>"$WORK/kill.err" &
pid=$!
for _ in $(seq 400); do [ -e "$WORK/kill.h5" ] && break; sleep 0.05; done
sleep 0.2
victim=$(pgrep -f "bt-train.*$WORK/kill.h5" | tail -n 1)
[ -n "$victim" ] && kill -KILL "$victim"
rc=0; wait "$pid" 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] && ok || bad "mpirun exited 0 after a rank was killed"
"$BUILD/bt-ckpt" info "$WORK/kill.h5" >/dev/null && ok || bad "the checkpoint of the killed run does not load"
"$TRAIN" --resume "$WORK/kill.h5" -T 2 -q "$WORK/small.txt" && [ "$(wsha "$WORK/kill.h5")" = "$(wsha "$WORK/long1.h5")" ] &&
  ok || bad "the killed run does not resume to the uninterrupted weights"

# Refusals, on every rank, with status 1.
rc=0; "${MPI[@]}" -np 3 "$TRAIN" "${ARGS[@]}" -T 1 -o "$WORK/np3.h5" "$WORK/small.txt" 2>"$WORK/np3.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "cannot share a batch of 8" "$WORK/np3.err" && [ ! -e "$WORK/np3.h5" ] && ok ||
  bad "3 ranks on a batch of 8: rc $rc, $(head -c 300 "$WORK/np3.err")"
cp "$SRC/tests/corpus/ckpt/ok-train.h5" "$WORK/v2.h5"
rc=0; "${MPI[@]}" -np 2 "$TRAIN" --resume "$WORK/v2.h5" --steps 6 -T 1 -q "$WORK/small.txt" 2>"$WORK/v2.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "only one process can continue it" "$WORK/v2.err" && ok ||
  bad "a whole-batch run under 2 ranks: rc $rc, $(head -c 300 "$WORK/v2.err")"

# bt-compress and bt-decompress under mpirun: the chunks (or adaptive
# segments) spread over the ranks, rank 0 writes the single-process bytes;
# several files in one run; concatenated members; damage that only one rank
# sees fails the run with status 1 (and no rank hangs); a model no rank can
# load fails the run.
C="$BUILD/bt-compress"; CK="$SRC/checkpoints/bt-200K.h5"
text_slice 20000 > "$WORK/c.txt"
cp "$WORK/c.txt" "$WORK/c2.txt"
"$C" --ckpt "$CK" --chunk 2048 -T 2 -c "$WORK/c.txt" > "$WORK/c.ref.bt" || bad "compress failed"
"$C" --ckpt "$CK" --adapt --segment 8192 -T 2 -c "$WORK/c.txt" > "$WORK/a.ref.bt" || bad "adaptive compress failed"
for np in 2 3; do
  "${MPI[@]}" -np $np "$C" --ckpt "$CK" --chunk 2048 -T 1 -o "$WORK/c$np.bt" "$WORK/c.txt" &&
    cmp -s "$WORK/c$np.bt" "$WORK/c.ref.bt" && ok || bad "$np ranks: chunked output differs from one process"
  "${MPI[@]}" -np $np "$C" --ckpt "$CK" --adapt --segment 8192 -T 1 -o "$WORK/a$np.bt" "$WORK/c.txt" &&
    cmp -s "$WORK/a$np.bt" "$WORK/a.ref.bt" && ok || bad "$np ranks: adaptive segments differ from one process"
done
"${MPI[@]}" -np 2 "$C" --ckpt "$CK" --chunk 2048 -T 1 -k "$WORK/c.txt" "$WORK/c2.txt" &&
  cmp -s "$WORK/c.txt.bt" "$WORK/c.ref.bt" && cmp -s "$WORK/c2.txt.bt" "$WORK/c.ref.bt" && ok ||
  bad "2 ranks, two files: outputs differ from one process"
D="$BUILD/bt-decompress"
for np in 2 3; do
  for f in c a; do
    timeout $(tlimit 120) "${MPI[@]}" -np $np "$D" -T 1 -c "$WORK/$f.ref.bt" > "$WORK/$f$np.out" &&
      cmp -s "$WORK/$f$np.out" "$WORK/c.txt" && ok || bad "bt-decompress under $np ranks: $f.ref.bt does not round-trip"
  done
done
cat "$WORK/c.ref.bt" "$WORK/a.ref.bt" > "$WORK/cat.bt"
timeout $(tlimit 120) "${MPI[@]}" -np 2 "$D" -T 1 -c "$WORK/cat.bt" > "$WORK/cat.out" &&
  cmp -s "$WORK/cat.out" <(cat "$WORK/c.txt" "$WORK/c.txt") && ok || bad "bt-decompress under 2 ranks: concatenated members"
timeout $(tlimit 120) "${MPI[@]}" -np 2 "$D" -T 1 -t "$WORK/c.ref.bt" "$WORK/a.ref.bt" && ok || bad "bt-decompress -t under 2 ranks"
# Damage in the last segment, which rank 2 of 3 decodes: its payload cut to
# a quarter, the table and the header CRC made to match, so that rank's
# decoder runs out of bits ("reads past its end") whatever the model
# predicts. (Flipped payload bytes decode to other bytes that only the
# member's CRC-32 catches, on rank 0, after the ranks have finished.)
/usr/bin/python3 - "$WORK/a.ref.bt" "$WORK/bad.bt" <<'PY'
import struct, sys, zlib
b = bytearray(open(sys.argv[1], "rb").read())
chunk = int.from_bytes(b[46:50], "little"); orig = int.from_bytes(b[50:56], "little")
n = -(-orig // chunk); t = 112 + 4 * (n - 1)
size = int.from_bytes(b[t:t + 4], "little"); keep = size // 4
b[t:t + 4] = keep.to_bytes(4, "little")
del b[len(b) - (size - keep):]
b[108:112] = struct.pack("<I", zlib.crc32(bytes(b[:108]) + bytes(b[112:112 + 4 * n])))
open(sys.argv[2], "wb").write(b)
PY
rc=0; timeout $(tlimit 120) "${MPI[@]}" -np 3 "$D" -T 1 -c "$WORK/bad.bt" > /dev/null 2> "$WORK/bad.err" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && head -n 1 "$WORK/bad.err" | grep -q "rank 2" && ok ||
  bad "damage one rank sees: rc $rc, $(head -c 300 "$WORK/bad.err")"
# bt-eval under 2 ranks: the same rates (the speed columns aside).
EV=("$BUILD/bt-eval" --ckpt "$CK" --compressors bt-200K,gzip --datasets text --max-bytes 40960 -q -T 1 --no-cache)
"${EV[@]}" > "$WORK/e1.md" || bad "bt-eval failed"
timeout $(tlimit 300) "${MPI[@]}" -np 2 "${EV[@]}" > "$WORK/e2.md" || bad "bt-eval under 2 ranks failed"
rows() { grep '^| bt-200K\|^| 2048 \| bt-200K\|bt-200K |' "$1" | cut -d'|' -f1-7; }
[ -n "$(rows "$WORK/e1.md")" ] && [ "$(rows "$WORK/e1.md")" = "$(rows "$WORK/e2.md")" ] && ok ||
  bad "bt-eval under 2 ranks: rates differ: $(rows "$WORK/e2.md")"
rc=0; "${MPI[@]}" -np 2 "$C" --ckpt "$WORK/none.h5" -T 1 -o "$WORK/none.bt" "$WORK/c.txt" 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] && [ ! -e "$WORK/none.bt" ] && ok || bad "a missing model under 2 ranks: rc $rc"
summary
