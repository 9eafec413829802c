#!/usr/bin/env bash
# bt-tokenize: train writes one file per size (the smaller a prefix of the
# larger), encode/decode round-trips text and binary bytes through files and
# pipes, stats reports bytes per token, and errors exit 1 with one message.
source "$(dirname "$0")/lib.sh"
TK="$BUILD/bt-tokenize"
text_slice 200000 > "$WORK/t.txt"
cd "$WORK"
expect 0 "" "train two sizes" -- "$TK" train --vocab 300,1K -o "$WORK/b" t.txt
[ -s b-300.btok ] && [ -s b-1K.btok ] && ok || bad "train did not write b-300.btok and b-1K.btok"
[ "$(stat -c %s b-300.btok)" -eq $((20 + 8 * 44 + 32)) ] && ok || bad "b-300.btok has the wrong size"
touch plain.new  # outputs get a new file's mode (0666 less the umask), as gzip's do
[ "$(stat -c %a b-300.btok)" = "$(stat -c %a plain.new)" ] && ok || bad "b-300.btok has mode $(stat -c %a b-300.btok)"
cmp -s <(head -c $((20 + 8 * 44)) b-1K.btok | tail -c +21) <(head -c $((20 + 8 * 44)) b-300.btok | tail -c +21) &&
  ok || bad "the 300-token merges are not the first of the 1K's"
expect 1 "already exists" "train does not replace without -f" -- "$TK" train --vocab 300,1K -o "$WORK/b" t.txt
expect 0 "" "train -f replaces" -- "$TK" train --vocab 300,1K -o "$WORK/b" -f t.txt
# one size: -o NAME writes NAME.btok (NAME.btok names itself), and -t NAME finds it
expect 0 "" "train one size" -- "$TK" train --vocab 300 -o one t.txt
expect 0 "" "train one size named .btok" -- "$TK" train --vocab 300 -o two.btok t.txt
[ -s one.btok ] && [ -s two.btok ] && [ ! -e one-300.btok ] && [ ! -e two.btok-300.btok ] && cmp -s one.btok b-300.btok &&
  ok || bad "one size: not one.btok and two.btok, the same as b-300.btok: $(ls)"
expect 1 "already exists" "one size does not replace without -f" -- "$TK" train --vocab 300 -o one t.txt
"$TK" encode --tokenizer one t.txt > one.tok && "$TK" decode --tokenizer one one.tok | cmp -s - t.txt &&
  cmp -s one.tok <("$TK" encode -t b-300.btok t.txt) && ok || bad "-t one does not find one.btok"
expect 1 "cannot open nothere:" "a tokenizer that is not there" -- "$TK" encode -t nothere t.txt
head -c 30000 "$BUILD/bt-tokenize" > bin.dat
head -c 50000 /dev/urandom > rand.dat
# every data kind of the data folder: an ImageNet JPEG and a LibriSpeech FLAC, whole, and the ood files
files=(t.txt bin.dat rand.dat)
for g in "$(find "$BT_DATA/images" -type f | sort | head -1)" "$(find "$BT_DATA/audio" -type f -name '*.flac' | sort | head -1)" \
         "$BT_DATA"/ood/*; do
  [ -f "$g" ] || continue
  cp "$g" "kind.$(basename "$g")"; files+=("kind.$(basename "$g")")
done
[ ${#files[@]} -ge 5 ] && ok || bad "no JPEG or FLAC found under $BT_DATA"
for f in "${files[@]}"; do
  "$TK" encode -t b-1K.btok "$f" "$f.tok" && "$TK" decode -t b-1K.btok "$f.tok" "$f.out" && cmp -s "$f" "$f.out" &&
    ok || bad "$f does not round-trip through files"
  "$TK" encode -t b-1K.btok < "$f" | "$TK" decode -t b-1K.btok | cmp -s - "$f" && ok || bad "$f does not round-trip through pipes"
  # the long spelling, as the issue's interface writes it: encode FILE > TOKENS, decode TOKENS > FILE
  "$TK" encode --tokenizer b-1K.btok "$f" > "$f.t2" && "$TK" decode --tokenizer b-1K.btok "$f.t2" > "$f.o2" &&
    cmp -s "$f" "$f.o2" && ok || bad "$f does not round-trip with --tokenizer and redirections"
done
[ "$(stat -c %s t.txt.tok)" -lt "$(stat -c %s t.txt)" ] && ok || bad "1K tokens (2 bytes each) do not shrink text"
"$TK" stats -t b-300.btok,b-1K.btok t.txt > st.md || bad "stats failed"
grep -q '^| b-1K.btok | 1000 |' st.md && ok || bad "stats: no 1K row: $(cat st.md)"
expect 1 "already exists" "encode does not replace an output without -f" -- "$TK" encode -t b-1K.btok t.txt t.txt.tok
printf 'abc' > odd.tok
expect 1 "not a whole number" "an odd-length token file" -- "$TK" decode -t b-1K.btok odd.tok x.out
printf '\xff\xff' > big.tok
expect 1 "outside the vocabulary" "a token id >= V" -- "$TK" decode -t b-1K.btok big.tok x.out
[ ! -e x.out ] && ok || bad "a failed decode left its output"
expect 1 "not a bt tokenizer" "a file that is not a tokenizer" -- "$TK" encode -t t.txt t.txt y.tok
expect 1 "cannot open" "a missing tokenizer" -- "$TK" encode -t nope.btok t.txt y.tok
expect 1 "unknown command" "an unknown command" -- "$TK" frobnicate
expect 1 "invalid value for --vocab" "a vocabulary of 256" -- "$TK" train --vocab 256 t.txt
expect 0 "" "--help" -- "$TK" --help
summary
