#!/usr/bin/env bash
# Runs every example in docs/*.md: inside fenced code blocks, each line that starts with
# "$ scalewise " is executed from the repository root (with $SW as the binary) and must exit 0.
# Lines after it without "$ " are shown output and are not checked.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
n=0
for doc in docs/*.md README.md; do
  [ -f "$doc" ] || continue
  in_block=0; lineno=0
  while IFS= read -r line; do
    lineno=$((lineno+1))
    case "$line" in
      '```'*) in_block=$((1-in_block)); continue ;;
    esac
    [ $in_block -eq 1 ] || continue
    case "$line" in
      '$ scalewise '*)
        cmd=${line#'$ scalewise '}
        n=$((n+1))
        # shellcheck disable=SC2086
        if (cd "$PWD" && eval "\"$SW\" $cmd" >"$TMP/out" 2>"$TMP/err" </dev/null); then ok
        else fail "$doc:$lineno: 'scalewise $cmd' exited non-zero: $(tail -n 2 "$TMP/err")"; fi ;;
    esac
  done < "$doc"
done
[ $n -gt 0 ] || fail "no examples found in docs/"
cli_finish
