#!/bin/sh
# check-headers.sh INCLUDE_DIR CC: every public header compiles alone, twice
# included (guards), as strict C11; and as C++ when a C++ compiler exists.
set -u
inc=$1; cc=${2:-cc}
fail=0; n=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for h in "$inc"/billiard/*.h; do
  name=billiard/$(basename "$h")
  printf '#include <%s>\n#include <%s>\nint bl__header_probe;\n' "$name" "$name" > "$tmp/t.c"
  n=$((n+1))
  if ! "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$inc" "$tmp/t.c"; then
    echo "FAIL: $name does not compile on its own (C11)"; fail=$((fail+1)); continue
  fi
  if command -v g++ >/dev/null 2>&1; then
    cp "$tmp/t.c" "$tmp/t.cc"
    if ! g++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$tmp/t.cc"; then
      echo "FAIL: $name does not compile on its own (C++)"; fail=$((fail+1)); continue
    fi
  fi
  echo "ok: $name"
done
[ "$n" -gt 0 ] || { echo "FAIL: no headers found in $inc"; exit 1; }
echo "$n headers checked, $fail failed"
[ "$fail" -eq 0 ]
