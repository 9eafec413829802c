# lib.sh - helpers for the shell tests (sourced). Each test script gets
# BUILD_DIR and SOURCE_DIR as $1 and $2, and prints "N passed, N failed".
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
SRC=$(cd "${2:?source dir}" && pwd)
BT_DATA=${BT_DATA:-$SRC/../shared/data}
export BT_DATA
PASS=0
FAIL=0
WORK=$(mktemp -d "${BUILD}/testwork.XXXXXX")
export BT_CACHE="$WORK/cache"
trap 'rm -rf "$WORK"' EXIT

ok()   { PASS=$((PASS + 1)); }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# expect CODE PATTERN DESC -- CMD...: runs CMD, checks its exit code, that
# stderr's first line matches the regex PATTERN, and that nothing crashed.
expect() {
  local code=$1 pat=$2 desc=$3; shift 4
  local err="$WORK/stderr" rc=0
  "$@" >"$WORK/stdout" 2>"$err" </dev/null || rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "$desc: exit $rc, expected $code; stderr: $(head -c 400 "$err")"
  elif [ -n "$pat" ] && ! head -n 1 "$err" | grep -Eq -- "$pat"; then
    bad "$desc: stderr '$(head -n 1 "$err")' does not match /$pat/"
  else
    ok
  fi
}

# A per-command time limit of N seconds, stretched by BT_TIMEOUT_SCALE
# (set to 10 for the slow tests in a sanitizer build).
tlimit() { echo $(($1 * ${BT_TIMEOUT_SCALE:-1})); }

# A slice of real text: N bytes of the validation set.
text_slice() { xz -dc "$BT_DATA/text/wiki-valid10m.txt.xz" | head -c "$1"; }

summary() { echo "$(basename "$0" .sh): $PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; }
