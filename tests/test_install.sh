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
expect 0 "" "installed -m 800K from /" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-compress' -m 800K --chunk 2048 -c '$WORK/f' > '$WORK/f.bt'"
expect 0 "" "installed bt-decompress finds the model from the file" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-decompress' -c '$WORK/f.bt' | cmp -s - '$WORK/f'"
"$BUILD/bt-compress" --ckpt "$SRC/checkpoints/bt-800K.h5" --chunk 2048 -c "$WORK/f" | cmp -s - "$WORK/f.bt" && ok || bad "installed and build-tree programs compress differently"
# A file made with a shipped model since replaced (the golden files: the
# first bt-200K, now in checkpoints/retired/) decodes with the install alone.
r=$(ls "$SRC"/checkpoints/retired/*.h5 2>/dev/null | wc -l)
[ "$(ls "$P"/share/bt/models/retired/*.h5 2>/dev/null | wc -l)" -eq "$r" ] && ok || bad "the $r retired models are not in share/bt/models/retired"
expect 0 "" "installed bt-decompress decodes a file of a retired model" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-decompress' -c '$SRC/tests/corpus/codec/ok-chunk.bt' > '$WORK/golden.out'"
[ "$(wc -c < "$WORK/golden.out")" -eq 400 ] && ok || bad "ok-chunk.bt decoded to $(wc -c < "$WORK/golden.out") bytes, not 400"
expect 0 "" "installed default model from /" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$M/bin/bt-compress' --chunk 2048 -c '$WORK/f' > /dev/null"
# the compressor links no image or audio codec (only bt-prepare and bt-eval need them)
if command -v ldd >/dev/null; then
  ldd "$M/bin/bt-compress" | grep -Eq 'libjpeg|libpng|libFLAC' && bad "bt-compress links an image or audio library: $(ldd "$M/bin/bt-compress" | grep -E 'jpeg|png|FLAC')" || ok
fi
# libbtcodec: a program outside bt builds against the installed package, with
# pkg-config and with find_package, and makes the bytes bt-compress makes
"$BUILD/bt-compress" --ckpt "$SRC/checkpoints/bt-800K.h5" --chunk 2048 -c "$WORK/f" > "$WORK/cli.bt"
SAN=() # a sanitizer build's library needs its runtime in the consumer too
grep -q '^BT_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && SAN=(-fsanitize=address,undefined)
if command -v pkg-config >/dev/null; then
  flags=$(PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config --cflags --libs btcodec) && ok || bad "pkg-config btcodec failed"
  cc "${SAN[@]}" -o "$WORK/consumer-pc" "$SRC/tests/consumer/consumer.c" $flags -Wl,-rpath,"$P/lib" 2> "$WORK/cc.log" \
    && ok || bad "building against pkg-config btcodec: $(head -5 "$WORK/cc.log")"
  expect 0 "" "the pkg-config consumer runs" -- "$WORK/consumer-pc" "$P/share/bt/models/bt-800K.h5" "$WORK/f" "$WORK/lib.bt"
  cmp -s "$WORK/lib.bt" "$WORK/cli.bt" && ok || bad "the library and bt-compress make different bytes"
fi
cmake -S "$SRC/tests/consumer" -B "$WORK/consumer-build" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_RPATH="$P/lib" \
  -DCMAKE_C_FLAGS="${SAN[*]}" \
  > "$WORK/cmake.log" 2>&1 && cmake --build "$WORK/consumer-build" >> "$WORK/cmake.log" 2>&1 \
  && ok || bad "find_package(btcodec) consumer: $(tail -5 "$WORK/cmake.log")"
expect 0 "" "the find_package consumer runs" -- "$WORK/consumer-build/consumer" "$P/share/bt/models/bt-800K.h5" "$WORK/f" "$WORK/lib2.bt"
cmp -s "$WORK/lib2.bt" "$WORK/cli.bt" && ok || bad "the CMake consumer and bt-compress make different bytes"
# docs/example.c, built against the moved prefix and run from /: a model by
# name (from the library's own folder), by the file alone, streams, threads
if command -v pkg-config >/dev/null; then
  flags=$(PKG_CONFIG_PATH="$M/lib/pkgconfig" pkg-config --cflags --libs libbtcodec) && ok || bad "pkg-config libbtcodec failed"
  cc "${SAN[@]}" -o "$WORK/example" "$SRC/docs/example.c" $flags -Wl,-rpath,"$M/lib" 2> "$WORK/cc.log" \
    && ok || bad "building docs/example.c: $(head -5 "$WORK/cc.log")"
  expect 0 "" "example c 800K from /" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$WORK/example' c 800K '$WORK/f' '$WORK/ex.bt'"
  cmp -s "$WORK/ex.bt" "$WORK/cli.bt" && ok || bad "docs/example.c and bt-compress -m 800K make different bytes"
  expect 0 "" "example d finds the model from the file" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$WORK/example' d '$WORK/f.bt' '$WORK/ex.out'"
  cmp -s "$WORK/ex.out" "$WORK/f" && ok || bad "docs/example.c decodes differently"
  expect 0 "" "example l lists the installed models" -- sh -c "cd / && env -u BT_CKPT -u BT_MODEL_PATH '$WORK/example' l"
  grep -q "^bt-3.2M	.*$M/lib/../share/bt/models/bt-3.2M.h5\$" "$WORK/stdout" && ok || bad "example l: $(cat "$WORK/stdout")"
  expect 1 "^example: opening the model: not found: no model '9M' on the model search path" \
    "example c with an unknown model" -- sh -c "cd / && '$WORK/example' c 9M '$WORK/f' '$WORK/ex2.bt'"
fi
if command -v ldd >/dev/null; then
  ldd "$P/lib/libbtcodec.so" | grep -Eq 'libjpeg|libpng|libFLAC|liblzma' && bad "libbtcodec links an image, audio or xz library" || ok
fi
# man pages for every program, made from its --help
for p in bt-compress bt-decompress bt-train bt-eval bt-prepare bt-ckpt; do
  grep -q "^\.TH $(echo $p | tr a-z A-Z) 1" "$P/share/man/man1/$p.1" 2>/dev/null && ok || bad "no man page for $p"
done
grep -q -- "--max-size" "$P/share/man/man1/bt-compress.1" && ok || bad "bt-compress.1 lacks its options"
# bash completion: options from --help, model names from --list-models
comp="$M/share/bash-completion/completions/bt-compress"
[ -s "$comp" ] && ok || bad "no bash completion installed"
got=$(bash -c "source '$comp'; COMP_WORDS=(bt-compress --max); COMP_CWORD=1; _bt_complete '$M/bin/bt-compress'; echo \"\${COMPREPLY[*]}\"")
[ "$got" = "--max-size" ] && ok || bad "completing --max gave '$got'"
got=$(bash -c "source '$comp'; COMP_WORDS=(bt-compress -m 8); COMP_CWORD=2; _bt_complete '$M/bin/bt-compress'; echo \"\${COMPREPLY[*]}\"")
[ "$got" = "800K" ] && ok || bad "completing -m 8 gave '$got'"
summary
