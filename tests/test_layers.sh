#!/usr/bin/env bash
# test_layers.sh - the module boundaries (CMakeLists.txt's bt_module list),
# checked in the built archives: every bt_ symbol a module uses is defined in
# it or in a module it depends on; the outside libraries stay in their
# modules (HDF5 in model, BLAS in kernels, media codecs in data and eval, MPI
# in dist); and the library's modules (what libbtcodec is made of) never
# print and never exit.
source "$(dirname "$0")/lib.sh"
declare -A DEPS=(
  [base]=""
  [kernels]="base"
  [model]="kernels tok base"
  [infer]="model kernels tok base"
  [coder]="infer model kernels tok base"
  [dist]="kernels base"
  [share]="coder infer model kernels tok base dist"
  [data]="base"
  [tok]="base"
  [eval]="base"
  [cli]="kernels base"
)
LIBRARY="base kernels tok model infer coder"
lib() { echo "$BUILD/libbt_$1.a"; }
defined() { nm --defined-only "$(lib "$1")" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBRC]/ {print $3}'; }
used() { nm -u "$(lib "$1")" 2>/dev/null | awk '$1 == "U" {print $2}' | sort -u; }

for m in "${!DEPS[@]}"; do
  if [ ! -f "$(lib "$m")" ]; then
    bad "no archive for module $m ($(lib "$m"))"
    continue
  fi
  have=$(for d in $m ${DEPS[$m]}; do defined "$d"; done | sort -u)
  missing=$(comm -23 <(used "$m" | grep '^bt_') <(echo "$have"))
  [ -z "$missing" ] && ok || bad "module $m uses $(echo $missing | head -c 300) from outside itself and its dependencies (${DEPS[$m]:-none})"
done

# Outside libraries: prefix and the modules that may use it.
check_prefix() {
  local pat=$1 allowed=$2 what=$3
  for m in "${!DEPS[@]}"; do
    case " $allowed " in *" $m "*) continue ;; esac
    hits=$(used "$m" | grep -E "$pat" | head -3)
    [ -z "$hits" ] && ok || bad "module $m uses $what ($(echo $hits)); only $allowed may"
  done
}
check_prefix '^H5' "model" "HDF5"
check_prefix '^(cblas_|openblas_)' "kernels" "BLAS"
check_prefix '^(png_|jpeg_|FLAC__)' "data eval" "an image or audio codec"
check_prefix '^lzma_' "data eval" "liblzma"
check_prefix '^(MPI_|ompi_)' "dist" "MPI"

# The library returns errors as codes: nothing in it prints or exits (the
# tokenizer is in it: a checkpoint of V > 256 carries one).
for m in $LIBRARY; do
  hits=$(used "$m" | grep -E '^(printf|fprintf|vfprintf|puts|fputs|putchar|fputc|perror|exit|abort|stderr|stdout|__printf_chk|__fprintf_chk|__vfprintf_chk)$' | head -3)
  [ -z "$hits" ] && ok || bad "library module $m prints or exits ($(echo $hits))"
done
summary
