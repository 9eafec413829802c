#!/usr/bin/env bash
# bt-train: flags, bad input, checkpoints readable by h5py, NaN handling.
source "$(dirname "$0")/lib.sh"
TRAIN="$BUILD/bt-train"
text_slice 200000 > "$WORK/small.txt"
TINY=(--recipe v1 --layers 1 --dim 32 --heads 2 --ctx 64 --batch 4 -T 1 -q)

# ---- a short good run ----
expect 0 "" "tiny run" -- "$TRAIN" "${TINY[@]}" --steps 30 --val-split 0.1 --val-every 10 -o "$WORK/m.h5" "$WORK/small.txt"
[ -s "$WORK/m.h5" ] && ok || bad "no checkpoint written"
[ "$(wc -l < "$WORK/m.h5.log.jsonl")" -ge 3 ] && ok || bad "log has too few records"
grep -q '"val_bpb":[0-9]' "$WORK/m.h5.log.jsonl" && ok || bad "log lacks validation bpb"

# ---- h5py can list and read every tensor, config attributes and training state ----
/usr/bin/python3 - "$WORK/m.h5" <<'PY' && ok || bad "h5py cannot read the checkpoint"
import sys, h5py, numpy as np
names = ["embed","qkv_w","attn_out_w","ln1_w","ln1_b","fc_w","fc_b","proj_w","proj_b","ln2_w","ln2_b","out_w","out_b"]
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["format"] == b"bt-checkpoint" or f.attrs["format"] == "bt-checkpoint"
    assert int(f.attrs["d_model"]) == 32 and int(f.attrs["n_layer"]) == 1
    total = 0
    for n in names:
        a = np.array(f["params"][n]); assert a.dtype == np.float32 and np.isfinite(a).all(); total += a.size
    assert total == int(f.attrs["num_params"])
    assert int(f["train"].attrs["step"]) == 30
    for g in ("adam_m", "adam_v"):
        for n in names: np.array(f["train"][g][n])
    log = np.array(f["train"]["log"]); assert log.shape[1] == 7 and log.shape[0] >= 3
PY

# ---- context-length warmup: short sequences first, stored in the checkpoint ----
"$TRAIN" --recipe v1 --layers 1 --dim 32 --heads 2 --ctx 64 --batch 4 -T 1 -v --log-every 2 --val-every 0 --val-split 0.1 \
  --steps 16 --ctx-warmup 75% --ctx-min 16 -o "$WORK/cw.h5" "$WORK/small.txt" 2> "$WORK/cw.err" || bad "context warmup run failed"
grep -q "step 2/16  ctx 16 " "$WORK/cw.err" && grep -q "step 6/16  ctx 32 " "$WORK/cw.err" &&
  grep -q "step 10/16  loss" "$WORK/cw.err" && ok || bad "context warmup stages: $(cat "$WORK/cw.err")"
/usr/bin/python3 -c 'import h5py,sys; t=h5py.File(sys.argv[1],"r")["train"].attrs; assert int(t["ctx_min"])==16 and int(t["ctx_warmup_steps"])==12 and int(t["tokens"])==16*4*64' "$WORK/cw.h5" \
  && ok || bad "context warmup state not in the checkpoint"
expect 1 "ctx-min 48 must divide --ctx 64 by a power of two" "ctx-min not a power-of-two divisor" -- \
  "$TRAIN" "${TINY[@]}" --steps 4 --ctx-warmup 2 --ctx-min 48 -o "$WORK/x.h5" "$WORK/small.txt"
expect 1 "invalid value for --ctx-warmup" "bad --ctx-warmup" -- "$TRAIN" "${TINY[@]}" --steps 4 --ctx-warmup 120% "$WORK/small.txt"

# ---- batch-size warmup: batches of 2, 4, then 8 over the first 12 steps; --tokens counts them ----
"$TRAIN" --recipe v1 --layers 1 --dim 32 --heads 2 --ctx 64 --batch 8 -T 1 -v --log-every 2 --val-every 0 --val-split 0.1 \
  --steps 16 --batch-warmup 75% --batch-min 2 -o "$WORK/bw.h5" "$WORK/small.txt" 2> "$WORK/bw.err" || bad "batch warmup run failed"
grep -q "step 4/16  batch 2  loss" "$WORK/bw.err" && grep -q "step 6/16  batch 4  loss" "$WORK/bw.err" &&
  grep -q "step 10/16  loss" "$WORK/bw.err" && ok || bad "batch warmup stages: $(cat "$WORK/bw.err")"
/usr/bin/python3 -c 'import h5py,sys; t=h5py.File(sys.argv[1],"r")["train"].attrs
assert (int(t["batch_min"]), int(t["batch_warmup_steps"]), int(t["tokens"])) == (2, 12, (4*2 + 4*4 + 8*8)*64), dict(t)' "$WORK/bw.h5" \
  && ok || bad "batch warmup state not in the checkpoint"
# 8192 tokens: 4 steps of 2 x 64, 4 of 4 x 64, then 13 of 8 x 64 (the warmup is 75% of the 16 full steps)
"$TRAIN" --recipe v1 --layers 1 --dim 32 --heads 2 --ctx 64 --batch 8 -T 1 -q --val-every 0 --val-split 0.1 \
  --tokens 8192 --batch-warmup 75% -o "$WORK/bt.h5" "$WORK/small.txt" || bad "batch warmup run by tokens failed"
/usr/bin/python3 -c 'import h5py,sys; t=h5py.File(sys.argv[1],"r")["train"].attrs
assert (int(t["batch_min"]), int(t["total_steps"]), int(t["tokens"])) == (2, 21, 8192), dict(t)' "$WORK/bt.h5" \
  && ok || bad "--tokens with a batch warmup does not see exactly its tokens"
"$BUILD/bt-ckpt" info "$WORK/bt.h5" | grep -q "warmup from 2 to 8 sequences over the first 12 steps" && ok ||
  bad "bt-ckpt info does not show the batch warmup"
expect 1 "batch-min 3 must divide --batch 8 by a power of two" "batch-min not a power-of-two divisor" -- \
  "$TRAIN" "${TINY[@]}" --batch 8 --steps 4 --batch-warmup 2 --batch-min 3 -o "$WORK/x.h5" "$WORK/small.txt"
expect 1 "give --batch-warmup too" "--batch-min alone" -- \
  "$TRAIN" "${TINY[@]}" --steps 4 --batch-min 2 -o "$WORK/x.h5" "$WORK/small.txt"
expect 1 "a new run only" "--batch-warmup on a resume" -- "$TRAIN" -q --resume "$WORK/bw.h5" --batch-warmup 4 "$WORK/small.txt"

# ---- bad input: one clear line, exit 1 ----
expect 1 "cannot load training data.*missing" "missing data" -- "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/x.h5" "$WORK/missing"
: > "$WORK/empty"
expect 1 "cannot load training data" "empty data" -- "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/x.h5" "$WORK/empty"
expect 1 "BT_ISA=.sse9. is not one of" "a bad BT_ISA is an error, not ignored" -- env BT_ISA=sse9 "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/x.h5" "$WORK/small.txt"
head -c 40 "$WORK/small.txt" > "$WORK/short"
expect 1 "too short" "data shorter than a context" -- "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/x.h5" "$WORK/short"
head -c 3000 "$WORK/m.h5" > "$WORK/trunc.h5"
expect 1 "truncated|damaged" "truncated checkpoint" -- "$TRAIN" -q --resume "$WORK/trunc.h5" "$WORK/small.txt"
cp "$WORK/m.h5" "$WORK/flip.h5"
printf '\x55' | dd of="$WORK/flip.h5" bs=1 seek=9000 conv=notrunc status=none
expect 1 "damaged" "bit-flipped checkpoint" -- "$TRAIN" -q --resume "$WORK/flip.h5" "$WORK/small.txt"
expect 1 "not a bt checkpoint" "not a checkpoint" -- "$TRAIN" -q --resume "$WORK/small.txt" "$WORK/small.txt"
expect 1 "does not match the flags" "config mismatch" -- "$TRAIN" -q --resume "$WORK/m.h5" --layers 2 --dim 32 --heads 2 "$WORK/small.txt"
expect 1 "does not match the flags" "preset mismatch" -- "$TRAIN" -q --resume "$WORK/m.h5" --params 200K "$WORK/small.txt"
mkdir -p "$WORK/ro" && chmod 555 "$WORK/ro"
if [ "$(id -u)" -eq 0 ]; then
  # root ignores permissions: use a path under a regular file instead
  expect 1 "does not exist|not writable" "unwritable folder" -- "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/small.txt/x.h5" "$WORK/small.txt"
else
  expect 1 "not writable" "unwritable folder" -- "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/ro/x.h5" "$WORK/small.txt"
fi
expect 1 "does not exist" "missing folder" -- "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/nodir/x.h5" "$WORK/small.txt"
expect 1 "unknown option" "nonsense flag" -- "$TRAIN" --frobnicate "$WORK/small.txt"
expect 1 "invalid value for --steps" "bad number" -- "$TRAIN" --params 200K --steps banana "$WORK/small.txt"
expect 1 "unknown preset" "bad preset" -- "$TRAIN" --params 7M "$WORK/small.txt"
expect 1 "no DATA" "no data" -- "$TRAIN" --params 200K
expect 1 "invalid model" "bad heads" -- "$TRAIN" --layers 1 --dim 48 --heads 5 "$WORK/small.txt"
expect 1 "needs a value" "missing value" -- "$TRAIN" --params
expect 1 "invalid value for --time" "bad duration" -- "$TRAIN" --params 200K --time 5x "$WORK/small.txt"
BT_OFFLINE=1 expect 1 "--data" "enwik8 offline names --data" -- env BT_OFFLINE=1 "$TRAIN" "${TINY[@]}" --steps 2 -o "$WORK/x.h5" enwik8
expect 0 "" "--help" -- "$TRAIN" --help
expect 0 "" "--version" -- "$TRAIN" --version

# ---- divergence: a huge learning rate gives a clear error and keeps the last good checkpoint ----
expect 1 "diverged.*no checkpoint" "NaN stops the run" -- "$TRAIN" "${TINY[@]}" --steps 400 --lr 1e30 --clip 0 --warmup 0 --ckpt-every 1000 -o "$WORK/nan.h5" "$WORK/small.txt"
[ ! -e "$WORK/nan.h5" ] && ok || bad "a diverged run wrote a checkpoint"
# Step 1 saves a checkpoint, step 2 diverges: the step-1 checkpoint stays.
expect 1 "diverged.*step 1\) is kept" "NaN keeps the last checkpoint" -- "$TRAIN" "${TINY[@]}" --steps 400 --lr 1e30 --clip 0 --warmup 0 --ckpt-every 1 -o "$WORK/nan1.h5" "$WORK/small.txt"
/usr/bin/python3 -c 'import h5py,sys; assert int(h5py.File(sys.argv[1],"r")["train"].attrs["step"]) == 1' "$WORK/nan1.h5" && ok || bad "kept checkpoint is not step 1"
# Two runs on one checkpoint: the second is refused while the first writes
# (they would replace it in turns); once the first has stopped, it resumes.
"$TRAIN" "${TINY[@]}" --steps 1000000 --ckpt-every 5 -o "$WORK/lk.h5" "$WORK/small.txt" 2>/dev/null &
lk_pid=$!
for _ in $(seq 1 600); do [ -s "$WORK/lk.h5" ] && break; sleep 0.1; done
[ -s "$WORK/lk.h5.lock" ] && ok || bad "the first run made no lock beside its checkpoint"
expect 1 "lk.h5 is being written by another process \\(pid $lk_pid" "a second run on a checkpoint being written" -- \
  timeout "$(tlimit 60)" "$TRAIN" -q --resume "$WORK/lk.h5" --steps 1000000 "$WORK/small.txt"
expect 1 "is being written by another process" "a new run onto a checkpoint being written" -- \
  timeout "$(tlimit 60)" "$TRAIN" "${TINY[@]}" --steps 10 -o "$WORK/lk.h5" "$WORK/small.txt"
kill -TERM $lk_pid; wait $lk_pid
expect 0 "" "a resume once the first run stopped" -- "$TRAIN" -q --resume "$WORK/lk.h5" --steps 1000000 --time 1s "$WORK/small.txt"
# A checkpoint edited outside bt fails its checksum and is refused.
"$TRAIN" "${TINY[@]}" --steps 20 --ckpt-every 10 -o "$WORK/good.h5" "$WORK/small.txt" || bad "good run failed"
/usr/bin/python3 - "$WORK/good.h5" <<'PY' || bad "cannot poke lr"
import h5py, sys
# Raise the stored peak learning rate so that the resumed steps diverge.
with h5py.File(sys.argv[1], "r+") as f: f["train"].attrs["lr"] = 1e30; f["train"].attrs["clip"] = 0.0
PY
# (editing with h5py breaks bt's file checksum, so this must be refused as damaged)
expect 1 "damaged" "checkpoint edited outside bt is refused" -- "$TRAIN" -q --resume "$WORK/good.h5" --steps 40 "$WORK/small.txt"
# --precision auto says what it chose and why; a model narrower than 64
# stays fp32 whatever the CPU, and so does every CPU on the avx2 path.
"$TRAIN" --layers 1 --dim 32 --heads 2 --ctx 64 --batch 4 -T 1 --steps 2 --precision auto -o "$WORK/auto.h5" \
  "$WORK/small.txt" 2> "$WORK/auto.err"
grep -q "^bt-train: --precision auto: fp32 (" "$WORK/auto.err" && "$BUILD/bt-ckpt" info "$WORK/auto.h5" | grep -q "precision   fp32" &&
  ok || bad "--precision auto on a narrow model: $(cat "$WORK/auto.err")"
BT_ISA=avx2 "$TRAIN" --layers 1 --dim 256 --heads 8 --ctx 32 --batch 1 --steps 1 --precision auto -o "$WORK/auto2.h5" \
  "$WORK/small.txt" 2> "$WORK/auto2.err"
grep -q "precision auto: fp32 (no AVX512_BF16" "$WORK/auto2.err" && ok || bad "--precision auto on avx2: $(cat "$WORK/auto2.err")"
# Recipes: v2 has a peak lr of 8e-3 at d_model 64, scaled over the width,
# its context warmup is on where the context has room for it; v3 is v2 with
# Muon, v4 (the default) v3 at batch 4; v1 stays selectable with its fixed
# 2e-3, and every checkpoint names its recipe.
for r in "v1 128 adamw 0.002 to 0.0002" "v2 128 adamw 0.004 to 0.0004" "v2 64 adamw 0.008 to 0.0008" \
  "v3 128 muon 0.004 to 0.0004" "v4 128 muon 0.004 to 0.0004"; do
  set -- $r
  "$TRAIN" --layers 1 --dim "$2" --heads 2 --ctx 256 --batch 1 -T 1 -q --steps 10 --recipe "$1" \
    --val-every 0 --val-bytes 4096 -o "$WORK/rc.h5" "$WORK/small.txt" 2> "$WORK/rc.err"
  "$BUILD/bt-ckpt" info "$WORK/rc.h5" > "$WORK/rc.info"
  grep -q "recipe      $1: cosine, optimizer $3, lr $4 $5 $6," "$WORK/rc.info" &&
    ok || bad "--recipe $1 at dim $2: $(grep recipe "$WORK/rc.info") $(cat "$WORK/rc.err")"
  /usr/bin/python3 -c '
import h5py, sys
t = h5py.File(sys.argv[1], "r")["train"].attrs
assert int(t["ctx_warmup_steps"]) == (0 if sys.argv[2] == "v1" else 3), dict(t)' "$WORK/rc.h5" "$1" &&
    ok || bad "--recipe $1: context warmup steps"
done
# The default is v4, batch 4 unless --batch is given (v3's is 8); a flag
# still wins over it.
"$TRAIN" --layers 1 --dim 128 --heads 2 --ctx 256 -T 1 -q --steps 2 --val-every 0 \
  --val-bytes 4096 -o "$WORK/rd.h5" "$WORK/small.txt" && "$BUILD/bt-ckpt" info "$WORK/rd.h5" > "$WORK/rd.info" &&
  grep -q "recipe      v4: cosine, optimizer muon, lr 0.004 to 0.0004," "$WORK/rd.info" &&
  grep -q "training    step 2 of 2, .*batch 4 x 256" "$WORK/rd.info" && ok ||
  bad "the default recipe is not v4 at batch 4: $(cat "$WORK/rd.info")"
"$TRAIN" --layers 1 --dim 128 --heads 2 --ctx 256 --recipe v3 -T 1 -q --steps 2 --val-every 0 \
  --val-bytes 4096 -o "$WORK/rd.h5" "$WORK/small.txt" && "$BUILD/bt-ckpt" info "$WORK/rd.h5" |
  grep -q "training    step 2 of 2, .*batch 8 x 256" && ok || bad "--recipe v3 is not at batch 8"
"$TRAIN" --layers 1 --dim 128 --heads 2 --ctx 256 --batch 1 -T 1 -q --steps 10 --val-every 0 --optimizer adamw \
  --val-bytes 4096 -o "$WORK/rd.h5" "$WORK/small.txt" && "$BUILD/bt-ckpt" info "$WORK/rd.h5" |
  grep -q "recipe      v4: cosine, optimizer adamw," && ok || bad "--optimizer adamw does not win over v4's Muon"
expect 1 "unknown recipe 'v9'" "an unknown recipe" -- "$TRAIN" --params 200K --recipe v9 "$WORK/small.txt"
# ---- --init-scale: the same draws, every standard deviation times X; a new run only ----
INIT=(--recipe v1 --layers 1 --dim 32 --heads 2 --ctx 64 --batch 4 -T 1 -q --val-every 0 --val-split 0.1 --steps 1 --lr 1e-30)
"$TRAIN" "${INIT[@]}" -o "$WORK/is1.h5" "$WORK/small.txt" && "$TRAIN" "${INIT[@]}" --init-scale 1 -o "$WORK/is1b.h5" "$WORK/small.txt" &&
  "$TRAIN" "${INIT[@]}" --init-scale 2 -o "$WORK/is2.h5" "$WORK/small.txt" || bad "--init-scale runs failed"
/usr/bin/python3 - "$WORK/is1.h5" "$WORK/is1b.h5" "$WORK/is2.h5" <<'PY' && ok || bad "--init-scale did not scale the initial weights"
import sys, h5py, numpy as np
a, b, c = (h5py.File(f, "r")["params"] for f in sys.argv[1:])
for n in a:
    x, y, z = np.array(a[n]), np.array(b[n]), np.array(c[n])
    assert np.array_equal(x, y), n                       # 1 is the default
    if n in ("embed", "qkv_w", "attn_out_w", "fc_w", "proj_w", "out_w"):
        assert abs(np.std(z) / np.std(x) - 2) < 1e-3, (n, np.std(z), np.std(x))
    else:  # LayerNorm scales 1, biases 0 (the step at lr 1e-30 moves them by ~1e-30)
        assert np.abs(x - z).max() < 1e-20 and np.abs(z - np.round(z)).max() < 1e-20, n
PY
expect 1 "--init-scale sets the initial weights: a new run only" "--init-scale on a resume" -- \
  "$TRAIN" --resume "$WORK/is1.h5" --init-scale 2 "$WORK/small.txt"
expect 1 "--init-scale must be in" "--init-scale 0" -- "$TRAIN" "${INIT[@]}" --init-scale 0 "$WORK/small.txt"

summary
