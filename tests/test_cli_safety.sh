#!/usr/bin/env bash
# bt-compress / bt-decompress never lose a byte: outputs that are their
# inputs, concatenated members, symlinks, hard links, devices and FIFOs,
# temporary files, resource limits, and the CLI conventions scripts rely on
# (gzip's and xz's). Every check here failed on the code before it.
source "$(dirname "$0")/lib.sh"
C="$BUILD/bt-compress"; D="$BUILD/bt-decompress"
cd "$WORK"
text_slice 40000 > text
"$BUILD/bt-train" --recipe v1 --layers 1 --dim 16 --heads 2 --ctx 64 --batch 2 --steps 3 -T 1 -q -o m.h5 text \
  || bad "training the test model failed"
K=(--ckpt "$WORK/m.h5")
head -c 3000 text > a; tail -c 2000 text > b; cat a b > ab
same() { cmp -s "$1" "$2" && ok || bad "$3"; }

# ---- 1. an output that is the input is refused, whatever its name ----
cp a x
expect 1 "the output is the input" "-f --rm -o x x" -- "$C" "${K[@]}" -f --rm -o x x
same x a "-f --rm -o x x lost the input"
expect 1 "the output is the input" "-f --rm -o ./x x" -- "$C" "${K[@]}" -f --rm -o ./x x
same x a "-o ./x lost the input"
ln x x.link
expect 1 "the output is the input" "-o a hard link of the input" -- "$C" "${K[@]}" -f -o x.link x
same x a "-o HARDLINK lost the input"; rm -f x.link
"$C" "${K[@]}" -c a > z.bt; cp z.bt z.keep
expect 1 "the output is the input" "bt-decompress -f --rm -o z.bt z.bt" -- "$D" "${K[@]}" -f --rm -o z.bt z.bt
same z.bt z.keep "bt-decompress -o z.bt z.bt lost the input"
expect 1 "standard output is the input" "-c x >> x" -- sh -c "'$C' --ckpt m.h5 -c x >> x"
same x a "-c x >> x changed the input"

# ---- 2. concatenated members decode to the concatenation ----
expect 0 "" "-c a b > ab.bt" -- sh -c "'$C' --ckpt m.h5 -c a b > ab.bt"
expect 0 "" "decompress ab.bt" -- sh -c "'$D' --ckpt m.h5 -c ab.bt > ab.out"
same ab.out ab "-c a b then -d: not a then b"
"$C" "${K[@]}" -c a > a.bt; "$C" "${K[@]}" --chunk 0 -c b > b.bt
expect 0 "" "cat a.bt b.bt | bt-decompress" -- sh -c "cat a.bt b.bt | '$D' --ckpt m.h5 > cat.out"
same cat.out ab "cat a.bt b.bt | bt-decompress: not a then b"
cat a.bt b.bt > both.bt
expect 0 "" "bt-decompress FILE.bt of two members" -- "$D" "${K[@]}" both.bt
same both ab "both.bt restored to the wrong bytes"
expect 0 "" "-t on two members" -- "$D" "${K[@]}" -t both.bt
expect 0 "" "an empty member in the middle" -- sh -c ": | '$C' --ckpt m.h5 > e.bt && cat a.bt e.bt b.bt | '$D' --ckpt m.h5 | cmp -s - ab"
cat a.bt b.bt > junk.bt; printf 'JUNK' >> junk.bt
expect 1 "trailing garbage" "garbage after the last member" -- "$D" "${K[@]}" -c junk.bt
head -c 100 b.bt | cat a.bt - > cut.bt
expect 1 "member 2" "a truncated second member names it" -- "$D" "${K[@]}" -c cut.bt

# ---- 3. non-regular files: skipped without -f, never deleted or replaced ----
if mknod nod c 1 3 2>/dev/null; then
  expect 2 "not a regular file" "--rm on a device node" -- "$C" "${K[@]}" --rm nod
  [ -c nod ] && ok || bad "--rm deleted a device node"
  expect 2 "kept" "-f --rm on a device node" -- "$C" "${K[@]}" -f --rm nod
  [ -c nod ] && ok || bad "-f --rm deleted a device node"
  rm -f nod.bt
  expect 0 "" "-f -o DEVICE" -- "$C" "${K[@]}" -f -o nod a
  [ -c nod ] && ok || bad "-f -o DEVICE replaced the device node with a file"
  expect 0 "" "-o DEVICE without -f writes into it" -- "$C" "${K[@]}" -o nod a
  expect 2 "kept" "--rm with a device as the output keeps the input" -- "$C" "${K[@]}" -f --rm -o nod x
  same x a "--rm -o DEVICE removed the input"
else
  echo "skip: mknod not permitted"
fi
mkfifo fifo
( timeout 30 cat fifo > fifo.got ) & reader=$!
expect 0 "" "-f -o FIFO" -- timeout 60 "$C" "${K[@]}" -f -o fifo a
wait $reader
[ -p fifo ] && ok || bad "-f -o FIFO replaced the FIFO with a file"
"$D" "${K[@]}" -c fifo.got 2>/dev/null | cmp -s - a && ok || bad "what went through the FIFO does not decode to a"
expect 2 "not a regular file" "a FIFO as input without -f" -- timeout 20 "$C" "${K[@]}" fifo
( sleep 1; cat a > fifo ) &
expect 0 "" "-c FIFO waits for its writer" -- sh -c "timeout 30 '$C' --ckpt m.h5 -c fifo > fifo.bt"
wait
"$D" "${K[@]}" -c fifo.bt 2>/dev/null | cmp -s - a && ok || bad "-c FIFO did not read what its writer wrote"
ln -s a sl
expect 2 "symbolic link" "--rm on a symlink" -- "$C" "${K[@]}" --rm sl
[ -L sl ] && [ ! -e sl.bt ] && ok || bad "a symlinked input was compressed or removed without -f"
expect 2 "kept" "-f --rm on a symlink keeps the link" -- "$C" "${K[@]}" -f --rm sl
[ -L sl ] && [ -s sl.bt ] && ok || bad "-f --rm on a symlink removed the link or wrote nothing"
cmp -s a <(head -c 3000 text) && ok || bad "the symlink's target changed"
ln a hl
expect 2 "other link" "--rm on a multiply-linked file" -- "$C" "${K[@]}" --rm hl
[ -e hl ] && [ ! -e hl.bt ] && ok || bad "a hard-linked input was compressed or removed without -f"
expect 0 "" "-c reads a symlink" -- sh -c "'$C' --ckpt m.h5 -c sl > /dev/null"
mkdir dir
expect 2 "is a directory" "a folder is skipped" -- "$C" "${K[@]}" dir

# ---- 7. temporary files: mkstemp names, NAME_MAX, durable order ----
long=$(printf 'n%.0s' $(seq 250))
cp a "$long"
expect 0 "" "a 250-byte file name" -- "$C" "${K[@]}" "$long"
[ -s "$long.bt" ] && ok || bad "no $long.bt"
ls -a | grep -q '^\..*\.......$' && bad "a temporary file was left behind" || ok
cp a p; touch p.bt.tmp1 p.bt.tmp2 p.bt.tmp3
if unshare -fp true 2>/dev/null; then # in a new pid namespace bt runs as pid 1 or 2
  # (LeakSanitizer cannot stop the world as pid 1 of a namespace: off there)
  expect 0 "" "stale OUT.tmpPID files do not block a run" -- \
    env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" unshare -fp "$C" "${K[@]}" p
  [ -s p.bt ] && ok || bad "p.bt missing"
else
  echo "skip: unshare not permitted"
fi
if command -v strace >/dev/null; then
  cp a q
  strace -f -qq -e trace=rename,renameat2,fsync,unlink,unlinkat -o trace.txt "$C" "${K[@]}" --rm q 2>/dev/null
  # rename of the output, then an fsync (the folder), then the input's unlink
  awk '/rename/ && /q\.bt/ {r=NR} /fsync/ && r && !f {f=NR} /unlink/ && /"q"/ {u=NR} END {exit !(r && f > r && u > f)}' trace.txt \
    && ok || bad "the folder is not synced between the rename and --rm's unlink: $(tr '\n' ';' < trace.txt)"
else
  echo "skip: no strace"
fi

# ---- 6. resource bounds ----
printf 'hello hello hello hello' > s; "$C" "${K[@]}" --chunk 0 -c s > s.bt
python3 - <<'EOF'
import struct, zlib
d = bytearray(open("s.bt", "rb").read())
d[50:56] = (27600000).to_bytes(6, "little")
d[108:112] = struct.pack("<I", zlib.crc32(bytes(d[:108]) + bytes(d[112:116])))
open("forged.bt", "wb").write(bytes(d))
EOF
expect 1 "size limit.*declares 27600000 bytes" "a tiny file declaring 27.6 MB" -- timeout 20 "$D" "${K[@]}" -c forged.bt
expect 1 "size limit" "--max-size below the declared size" -- timeout 20 "$D" "${K[@]}" --max-size 1M -c forged.bt
expect 124 "" "-f lifts the default limit (and decodes for long)" -- timeout 3 "$D" "${K[@]}" -f -c forged.bt
expect 0 "" "--max-size above a real file's size" -- "$D" "${K[@]}" --max-size 5KiB -c ab.bt
expect 1 "size limit" "--max-size counts all members" -- "$D" "${K[@]}" --max-size 4KiB -c ab.bt
text_slice 400000 > big
"$C" "${K[@]}" -v --chunk 0 -c big 2>prog.txt >/dev/null
[ "$(grep -c '%  .* [kM]B of' prog.txt)" -ge 2 ] && ok || bad "stream mode shows no progress before the end: $(head -c 300 prog.txt)"

# ---- 8. CLI conventions ----
expect 0 "" "-T 0 uses all cores" -- "$C" "${K[@]}" -T 0 -c a
expect 2 "already has the .bt suffix" "a skipped file gives exit status 2" -- "$C" "${K[@]}" a.bt
expect 2 "unknown suffix" "decompressing a file without .bt is a skip" -- "$D" "${K[@]}" a
expect 1 "" "an error outweighs a skip" -- "$C" "${K[@]}" a.bt missing-file
"$C" -l "${K[@]}" a.bt b.bt > list.txt
grep -q "2 files" list.txt && grep -Eq '^ +1 +[0-9]+ .* m +a\.bt$' list.txt && ok || bad "-l lacks a totals row or the model's name: $(cat list.txt)"
"$C" -l --robot "${K[@]}" both.bt a.bt > robot.txt
[ "$(cut -f1 robot.txt | tr '\n' ' ')" = "name member member file name member file totals " ] && ok || bad "--robot lines: $(cut -f1 robot.txt | tr '\n' ' ')"
grep -Pq '^totals\t2\t3\t' robot.txt && ok || bad "--robot totals: $(grep totals robot.txt)"
head -c 4096 text > four
expect 0 "" "-v on a 4 KB file" -- "$C" "${K[@]}" -v -c four
grep -Eq "[0-9]{4,}\.[0-9]+%" "$WORK/stderr" && bad "-v on 4 KB prints a rate over 1000%: $(cat "$WORK/stderr")" || ok
expect 0 "" "-o - is stdout" -- sh -c "'$C' --ckpt m.h5 -o - a > dash.bt"
[ ! -e ./- ] && "$D" "${K[@]}" -c dash.bt | cmp -s - a && ok || bad "-o - did not write stdout"
cp a perm; chmod 640 perm; touch -d '2001-02-03 04:05:06' perm
"$C" "${K[@]}" perm; mv perm perm.orig
"$D" "${K[@]}" perm.bt
[ "$(stat -c '%a %Y' perm.bt)" = "$(stat -c '%a %Y' perm.orig)" ] && [ "$(stat -c '%a %Y' perm)" = "$(stat -c '%a %Y' perm.orig)" ] \
  && ok || bad "mode or mtime not kept: $(stat -c '%n %a %Y' perm.orig perm.bt perm)"
if command -v script >/dev/null; then
  script -qec "'$D' --ckpt m.h5 -c a.bt" /dev/null > tty.out < /dev/null
  grep -q "$(head -c 40 a | head -n 1 | cut -c1-20)" tty.out && ok || bad "bt-decompress does not write plaintext to a terminal"
  timeout 20 script -qec "'$D' --ckpt m.h5" /dev/null > tty2.out < /dev/null; rc=$?
  [ $rc -ne 124 ] && grep -q "from a terminal" tty2.out && ok || bad "bt-decompress waits on a terminal for compressed data (rc $rc)"
else
  echo "skip: no script(1)"
fi
"$D" -h > help.txt; grep -q "^Restores FILE" help.txt && ! grep -q "^Compresses" help.txt && ok || bad "bt-decompress -h describes compression"
for p in "$BUILD"/bt-*; do
  [ -x "$p" ] || continue
  for h in -h --help; do
    "$p" $h > help.txt 2>&1 </dev/null && grep -qi "usage" help.txt && ok || bad "$(basename "$p") $h: not exit 0 with a usage"
  done
  # an unknown option: exit 1 or 2, and a usage line that names the program once
  n=$(basename "$p")
  "$p" --no-such-option > bogus.txt 2>&1 </dev/null; rc=$?
  { [ $rc = 1 ] || [ $rc = 2 ]; } && ! grep -qi "usage: *$n $n" bogus.txt && ok ||
    bad "$n --no-such-option: rc $rc, $(grep -i usage bogus.txt | head -1)"
done
summary
