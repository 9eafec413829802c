#!/usr/bin/env bash
# cmake --install into a temporary prefix: the programs and the shipped
# models land there, and the installed bt-compress works from any folder with
# no source tree: models by name (-m) and, when decoding, by weights hash.
source "$(dirname "$0")/lib.sh"
P="$WORK/prefix"
cmake --install "$BUILD" --prefix "$P" > "$WORK/install.log" 2>&1 && ok || bad "cmake --install failed: $(tail -3 "$WORK/install.log")"
for p in bt-compress bt-decompress bt-train bt-eval bt-prepare bt-ckpt; do
  [ -x "$P/bin/$p" ] && ok || bad "$p not installed"
done
n=$(ls "$SRC"/checkpoints/*.h5 | wc -l)
[ "$(ls "$P"/share/bt/models/*.h5 2>/dev/null | wc -l)" -eq "$n" ] && ok || bad "the $n shipped models are not in share/bt/models"
text_slice 5000 > "$WORK/f"
# a copy of the installed tree elsewhere: nothing may point back at the build
cp -a "$P" "$WORK/moved"
M="$WORK/moved"
expect 0 "" "installed --list-models from /" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-compress' --list-models"
grep -q "^bt-800K .* $M/bin/../share/bt/models/bt-800K.h5$" "$WORK/stdout" && ok || bad "--list-models: $(cat "$WORK/stdout")"
expect 0 "" "installed -m 800K from /" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-compress' -m 800K -c '$WORK/f' > '$WORK/f.bt'"
expect 0 "" "installed bt-decompress finds the model from the file" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-decompress' -c '$WORK/f.bt' | cmp -s - '$WORK/f'"
"$BUILD/bt-compress" --ckpt "$SRC/checkpoints/bt-800K.h5" -c "$WORK/f" | cmp -s - "$WORK/f.bt" && ok || bad "installed and build-tree programs compress differently"
expect 0 "" "installed default model from /" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-compress' -c '$WORK/f' > /dev/null"
summary
