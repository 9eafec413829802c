#!/usr/bin/env bash
# tools/run-3.2M's own steps (tools/run-long 3.2M), end to end, on a small
# model: from scratch it trains with AdamW to the switch step, stops, and
# goes on with Muon to the end; --save keeps the state; a machine with no run
# state goes on from the kept one; and a run stopped before the switch
# switches on the next call. Then tools/run-long 800K: recipe v4 from
# scratch, extended by --tokens, and --save refused while the kept state is
# another preset's.
source "$(dirname "$0")/lib.sh"
RUN="$SRC/tools/run-3.2M"
text_slice 200000 > "$WORK/small.txt"
export BT_RUNS="$WORK/runs" BT_RUN32_KEPT="$WORK/kept" BT_RUN32_DATA="$WORK/small.txt" BT_RUN32_MUON_AT=6
export BT_RUN32_MODEL="--layers 1 --dim 16 --heads 2 --ctx 64 --ctx-min 16 --batch 2"
CK="$BT_RUNS/3.2M/bt-3.2M.h5"
info() { "$BUILD/bt-ckpt" info "$1"; }
wsha() { info "$1" | sed -n 's/^  weights *sha256 //p'; }
TOK=2048
# the run's arguments before the switch, as the script gives them
HAND=($BT_RUN32_MODEL --recipe v1 --tokens $TOK --schedule wsd --decay 0.2 --lr 3e-3 --warmup 200 --ctx-warmup 600
      --val-every 500 --val-bytes 1000000 --ckpt-every 100 --seed 1 -T 1 -q)
done_steps() { info "$CK" | grep -Eq "step ([0-9]+) of \1,"; }

"$RUN" "$BUILD" -T 1 --tokens $TOK >"$WORK/run.out" 2>&1 || bad "run-3.2M from scratch failed: $(tail -3 "$WORK/run.out")"
grep -q "stopped (--stop-at) at step 6/" "$WORK/run.out" && ok || bad "no stop at the switch step: $(cat "$WORK/run.out")"
done_steps && ok || bad "the run did not finish: $(info "$CK" | grep training)"
step() { info "$CK" | sed -n 's/^  training *step \([0-9]*\) .*/\1/p'; }
n=$(step)
info "$CK" | grep -q "optimizer muon" && ok || bad "the run did not switch to Muon: $(info "$CK" | grep recipe)"
/usr/bin/python3 -c 'import json,sys
assert [json.loads(l)["step"] for l in open(sys.argv[1])] == list(range(10, int(sys.argv[2]) + 1, 10)) + ([int(sys.argv[2])] if int(sys.argv[2]) % 10 else [])' "$CK.log.jsonl" "$n" &&
  ok || bad "the log is not one row a step: $(cut -c1-12 "$CK.log.jsonl" | tr '\n' ' ')"

# The same run by hand: the script adds nothing but the switch.
"$BUILD/bt-train" "${HAND[@]}" --stop-at 6 -o "$WORK/hand.h5" "$WORK/small.txt" &&
  "$BUILD/bt-train" --resume "$WORK/hand.h5" --optimizer muon -T 1 -q "$WORK/small.txt" || bad "the run by hand failed"
[ "$(wsha "$CK")" = "$(wsha "$WORK/hand.h5")" ] && ok || bad "run-3.2M's weights differ from the run by hand's"

# --save, then a machine without the run's state goes on from the kept one.
"$RUN" "$BUILD" --save 2>&1 | grep -q "saved step $n of $n" && ok || bad "--save did not report the state"
[ -e "$WORK/kept/bt-3.2M.h5" ] && [ -e "$WORK/kept/bt-3.2M.h5.log.jsonl" ] && ok || bad "--save kept no state"
rm -rf "$BT_RUNS"
"$RUN" "$BUILD" -T 1 --tokens 3000 >"$WORK/run2.out" 2>&1 || bad "run-3.2M from the kept state failed: $(tail -3 "$WORK/run2.out")"
grep -q "going on from the one in $WORK/kept" "$WORK/run2.out" && ok || bad "the kept state was not taken: $(head -3 "$WORK/run2.out")"
[ "$(step)" -gt "$n" ] && ok || bad "the run was not extended past step $n"
done_steps && ok || bad "the extended run did not finish: $(info "$CK" | grep training)"

# A state stopped before the switch (a signal or --time): the next call goes
# on to the switch step and switches; the bits are the uninterrupted run's.
rm -rf "$BT_RUNS" "$WORK/kept"
mkdir -p "$BT_RUNS/3.2M"
"$BUILD/bt-train" "${HAND[@]}" --stop-at 3 -o "$CK" "$WORK/small.txt" || bad "the early stop failed"
"$RUN" "$BUILD" -T 2 --tokens $TOK >"$WORK/run3.out" 2>&1 || bad "run-3.2M after an early stop failed: $(tail -3 "$WORK/run3.out")"
grep -q "stopped (--stop-at) at step 6/" "$WORK/run3.out" && ok || bad "no stop at the switch step after an early stop"
[ "$(wsha "$CK")" = "$(wsha "$WORK/hand.h5")" ] && ok || bad "a run stopped before the switch ends with other weights"
# tools/run-long 800K: the default recipe (v4) from scratch, then extended.
"$RUN" "$BUILD" --save >/dev/null 2>&1 || bad "the 3.2M's state could not be kept"
C8="$BT_RUNS/800K-v4/bt-800K.h5"
export BT_RUN_MODEL="--layers 1 --dim 16 --heads 2 --ctx 64 --ctx-min 16 --batch 2"
"$SRC/tools/run-long" 800K "$BUILD" -T 1 --tokens 1024 >"$WORK/r8.out" 2>&1 || bad "run-long 800K failed: $(tail -3 "$WORK/r8.out")"
info "$C8" | grep -q "recipe      v4: cosine, optimizer muon" && ok || bad "the 800K run is not recipe v4: $(info "$C8" | grep recipe)"
info "$C8" | grep -q "step 8 of 8," && ok || bad "the 800K run did not train 1024 tokens: $(info "$C8" | grep training)"
"$SRC/tools/run-long" 800K "$BUILD" -T 1 --tokens 2048 >"$WORK/r8b.out" 2>&1 || bad "run-long 800K's extension failed"
info "$C8" | grep -q "step 16 of 16," && ok || bad "the 800K run was not extended: $(info "$C8" | grep training)"
expect 1 "holds another run's state \\(bt-3.2M.h5\\); only one is kept" "--save beside another preset's state" -- \
  "$SRC/tools/run-long" 800K "$BUILD" --save
[ ! -e "$WORK/kept/bt-800K.h5" ] && [ -e "$WORK/kept/bt-3.2M.h5" ] && ok || bad "the kept 3.2M state was touched"
expect 2 "usage: tools/run-long" "an unknown preset" -- "$SRC/tools/run-long" 200K
summary
