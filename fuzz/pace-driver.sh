#!/bin/sh
# pace-driver.sh FILE: a fake driver for replay-driver.sh. Prints FILE line by
# line, reading one command from the harness (stdin) before each line that
# looks like a reply ("id"), so replies follow the commands they answer.
exec 3<&0
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    *'"id"'*) IFS= read -r cmd <&3 || exit 0 ;;
  esac
  printf '%s\n' "$line"
done < "$1"
sleep 0.2
