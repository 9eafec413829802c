# bash completion for the bt programs (installed as
# share/bash-completion/completions/<program>). Options come from the
# program's own --help, model names from bt-compress --list-models.
_bt_complete() {
  local cur prev prog=$1
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  case $prev in
    -m|--model)
      local dir models
      dir=$(dirname "$(command -v "$prog" 2>/dev/null || echo "$prog")")
      models=$("$dir/bt-compress" --list-models 2>/dev/null | awk 'NR > 1 { sub(/^bt-/, "", $1); print $1 }')
      COMPREPLY=($(compgen -W "$models" -- "$cur"))
      return ;;
    --ckpt|--resume|-o|--output|--out|--log|--data|--val)
      COMPREPLY=($(compgen -f -- "$cur"))
      return ;;
  esac
  if [[ $cur == -* ]]; then
    local opts
    opts=$("$prog" --help 2>/dev/null | grep -oE -- '(^|[ ,/])--?[A-Za-z0-9][A-Za-z0-9-]*' | sed 's/^[ ,\/]//' | sort -u)
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _bt_complete bt-compress bt-decompress bt-train bt-eval bt-prepare bt-ckpt
