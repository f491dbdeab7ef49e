#!/usr/bin/env bash
# docs/deltatune.1 stays true to the binary: every --option the man page
# names is an option of some `deltatune COMMAND --help`, every command of
# `deltatune --help` has an entry, and groff formats it without warnings.
# usage: check_manpage.sh DELTATUNE_BINARY MAN_PAGE
set -uo pipefail
bin=$1 page=$2
fails=0
cmds=$("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}')
help=$(for c in $cmds; do [[ $c == methods ]] || "$bin" "$c" --help 2>/dev/null; done)
# options on the page outside comments (roff writes \- for -); --mpi is srun's
for o in $(grep -v '^\.\\"' "$page" | sed 's/\\-/-/g' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
  [[ "$o" == --mpi ]] && continue
  grep -qE -- "(^|[ ,])$o( |$)" <<< "$help" || { echo "FAIL: the man page names $o, which no --help lists"; fails=$((fails + 1)); }
done
for c in $("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}'); do
  grep -q "^\.B $c\$" "$page" || { echo "FAIL: command $c has no entry in the man page"; fails=$((fails + 1)); }
done
if command -v groff >/dev/null; then
  w=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1)
  [[ -z "$w" ]] || { echo "FAIL: groff warnings: $w"; fails=$((fails + 1)); }
fi
(( fails == 0 )) && echo "PASSED: every option and command of $page exists" || exit 1
