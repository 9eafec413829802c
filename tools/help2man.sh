#!/usr/bin/env bash
# help2man.sh PROGRAM NAME VERSION SUMMARY > NAME.1 - a man page from a program's own
# --help, so the page and the program cannot disagree. Run by the build
# (the 'man' target); the pages are build outputs, not sources.
set -euo pipefail
prog=$1 name=$2 version=$3 summary=$4
help=$("$prog" --help 2>&1)
upper=$(printf '%s' "$name" | tr 'a-z' 'A-Z')
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
cat <<ROFF
.TH $upper 1 "" "bt $version" "User Commands"
.SH NAME
$name \\- $(printf '%s' "$summary" | sed 's/\.$//' | esc)
.SH DESCRIPTION
.nf
$(printf '%s\n' "$help" | esc)
.fi
.SH SEE ALSO
bt-compress(1), bt-decompress(1), bt-train(1), bt-eval(1), bt-prepare(1), bt-ckpt(1).
The project's README.md and docs/ describe the method, the file formats and the measurements.
ROFF
