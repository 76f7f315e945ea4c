#!/bin/sh
# lint-points.sh SRCDIR: the fault points used in impl/src and the registry
# fault/points.txt must name the same set, each point in the file it names.
set -u
top=${1:-$(cd "$(dirname "$0")/.." && pwd)}
reg="$top/fault/points.txt"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# name file pairs from the code
( cd "$top" && grep -rnoE 'BL_FAULT[A-Z_]*\("[^"]+"' impl/src ) |
  sed -E 's/^([^:]+):[0-9]+:BL_FAULT[A-Z_]*\("([^"]+)"/\2 \1/' | sort -u > "$tmp/code"
grep -vE '^[[:space:]]*(#|$)' "$reg" | awk '{print $1, $2}' | sort -u > "$tmp/reg"
bad=0
dups=$(grep -vE '^[[:space:]]*(#|$)' "$reg" | awk '{print $1}' | sort | uniq -d)
[ -z "$dups" ] || { echo "duplicate entries in fault/points.txt: $dups"; bad=1; }
# every registry line needs 4+ fields: name file simulates... errnos
awk '!/^[[:space:]]*(#|$)/ && NF < 4 {print "fault/points.txt:" NR ": expected: name file what-it-simulates errnos"; bad=1} END {exit bad}' "$reg" || bad=1
while read -r name file; do
  grep -qx "$name $file" "$tmp/reg" || { echo "in code but not in fault/points.txt: $name ($file)"; bad=1; }
done < "$tmp/code"
while read -r name file; do
  grep -qx "$name $file" "$tmp/code" || { echo "in fault/points.txt but not in code: $name ($file)"; bad=1; }
done < "$tmp/reg"
# names follow <concern>/<operation>/<step>, concern = the file's base name
while read -r name file; do
  concern=${name%%/*}; base=$(basename "$file" .c)
  [ "$concern" = "$base" ] || { echo "point $name: concern '$concern' should be the file name '$base'"; bad=1; }
  echo "$name" | grep -qE '^[a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+$' || { echo "point $name: expected <concern>/<operation>/<step>"; bad=1; }
done < "$tmp/code"
n=$(wc -l < "$tmp/code")
[ "$bad" -eq 0 ] && echo "fault points: $n, registry and code agree"
exit $bad
