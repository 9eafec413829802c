#!/usr/bin/env bash
# test_eval_cli.sh BUILD SRC - bt-eval's command line: help, usage errors,
# a missing checkpoint, the CSV's columns and rows, --chunk, --datasets and
# --compressors, and a transformer row that is real coding: its compressed
# bytes equal bt-compress's container on the same chunks less the container's
# header and chunk table, its adjusted rate adds 2 bytes per parameter, and on
# random bytes it stores chunks raw while the model's log-loss passes 100%.
source "$(dirname "$0")/lib.sh" "$@"
EVAL="$BUILD/bt-eval"
CKPT="$SRC/checkpoints/bt-200K.h5"

# ---- help and usage errors ----
expect 0 "" "help" -- "$EVAL" --help
grep -q -- "--max-bytes N" "$WORK/stdout" && grep -q "default [0-9]" "$WORK/stdout" || bad "help lacks --max-bytes and its default"
expect 1 "^bt-eval: unknown option '--frobnicate'" "unknown option" -- "$EVAL" --frobnicate
expect 1 "^bt-eval: unknown data set 'pictures'" "unknown data set" -- "$EVAL" --datasets text,pictures
expect 1 "^bt-eval: unknown compressor 'gzap'" "unknown compressor" -- "$EVAL" --compressors gzip,gzap
expect 1 "^bt-eval: invalid --chunk '0'" "chunk 0" -- "$EVAL" --chunk 0
expect 1 "^bt-eval: invalid value for --max-bytes: '-5'" "negative max-bytes" -- "$EVAL" --max-bytes -5
expect 1 "^bt-eval: unexpected argument 'extra'" "extra argument" -- "$EVAL" extra
expect 1 "^bt-eval: option --csv needs a value" "missing value" -- "$EVAL" --csv
expect 1 "^bt-eval: cannot load checkpoint $WORK/none.h5" "missing checkpoint" -- \
  "$EVAL" --ckpt "$WORK/none.h5" --datasets text --max-bytes 2048
expect 1 "^bt-eval: text: " "missing text file" -- "$EVAL" --source "text=$WORK/none.txt" --compressors gzip

# ---- a transformer row and a baseline on text and random ----
expect 0 "" "eval 200K" -- "$EVAL" --ckpt "$CKPT" --compressors bt-200K,gzip --datasets text,random \
  --max-bytes 8192 --csv "$WORK/rows.csv"
cp "$WORK/stdout" "$WORK/table.md"
[ "$(head -n 1 "$WORK/rows.csv")" = "compressor,chunk,dataset,raw_bytes,compressed_bytes,raw_rate,adjusted_rate" ] \
  || bad "CSV header: $(head -n 1 "$WORK/rows.csv")"
[ "$(wc -l < "$WORK/rows.csv")" -eq 7 ] || bad "expected 6 rows: $(cat "$WORK/rows.csv")"
grep -q '^| 2048 | bt-200K | [0-9.]* (30.9) | [0-9.]* (195.5) |$' "$WORK/table.md" || bad "table row for bt-200K: $(grep bt-200K "$WORK/table.md" | head -1)"
grep -q '^| inf | gzip | [0-9.]* (32.3) | [0-9.]* (100.0) |$' "$WORK/table.md" || bad "table row for gzip inf"

# the same 4 chunks (i_j = floor(j * 4882 / 4)) through bt-compress, with
# bt-eval's bfloat16 K/V cache (bt-compress's chunks default to int8)
text_slice 10000000 > "$WORK/text"
for j in 0 1 2 3; do
  dd if="$WORK/text" bs=2048 skip=$((j * 4882 / 4)) count=1 status=none
done > "$WORK/sel"
"$BUILD/bt-compress" --ckpt "$CKPT" --chunk 2048 --kv bf16 -c "$WORK/sel" > "$WORK/sel.bt" || bad "bt-compress failed"
container=$(stat -c %s "$WORK/sel.bt")
row=$(grep '^bt-200K,2048,text,' "$WORK/rows.csv")
IFS=, read -r _ _ _ raw comp rate adj <<< "$row"
[ "$raw" = 8192 ] || bad "raw_bytes $raw"
[ "$comp" = $((container - 112 - 4 * 4)) ] || bad "compressed_bytes $comp, bt-compress payloads $((container - 128))"
python3 -c "import sys; r, a = float('$rate'), float('$adj'); sys.exit(0 if abs(a - (r + 2 * 231936 / 8192)) < 2e-6 and 0.2 < r < 0.6 else 1)" \
  || bad "text rates: raw $rate adjusted $adj"

row=$(grep '^bt-200K,2048,random,' "$WORK/rows.csv")
IFS=, read -r _ _ _ raw comp rate adj <<< "$row"
[ "$comp" = 8192 ] || bad "random: expected every chunk stored raw, got $comp bytes"
logloss=$(grep '^| bt-200K | 231,936 | random |' "$WORK/table.md" | cut -d'|' -f6 | tr -d ' ')
python3 -c "import sys; sys.exit(0 if float('$logloss') > 99 else 1)" || bad "random log-loss rate $logloss%"

# ---- --chunk, CSV on stdout, one data set, one compressor ----
expect 0 "" "chunk 1024" -- "$EVAL" --compressors gzip --datasets text --chunk 1024 --max-bytes 10240 --csv - -q
rows=$(grep -c '^gzip,' "$WORK/stdout")
[ "$rows" -eq 2 ] && grep -q '^gzip,1024,text,10240,' "$WORK/stdout" && grep -q '^gzip,inf,text,10240,' "$WORK/stdout" \
  || bad "--chunk 1024 rows: $(grep '^gzip' "$WORK/stdout")"
grep -q '^| 1024 | gzip | [0-9.]* |$' "$WORK/stdout" || bad "no paper value expected beside chunk 1024"

# ---- the cache stays in BT_CACHE, and the data folder is never written ----
expect 0 "" "audio prepare" -- "$EVAL" --compressors flac --datasets audio --max-bytes 4096 -q
ls "$BT_CACHE"/prepared/audio-*.bin > /dev/null 2>&1 || bad "no audio cache under BT_CACHE"
summary
