#!/bin/sh
# valgrind-wrap.sh CMD...: memcheck with every child traced, one log per
# process; any error or definite leak in any process fails the test
# (Criterion ignores its workers' exit codes, so exit codes are not enough).
here=$(cd "$(dirname "$0")" && pwd)
logdir=$(mktemp -d "${TMPDIR:-/tmp}/vg.XXXXXX")
valgrind --trace-children=yes --child-silent-after-fork=no --leak-check=full \
  --errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=99 \
  --suppressions="$here/valgrind.supp" --log-file="$logdir/vg.%p.log" "$@"
rc=$?
bad=$(grep -l 'ERROR SUMMARY: [1-9]' "$logdir"/vg.*.log 2>/dev/null)
if [ -n "$bad" ]; then
  for f in $bad; do echo "=== valgrind: $f" >&2; cat "$f" >&2; done
  # BL_VG_KEEP=DIR (ci/valgrind --conform): keep the bad logs for the summary.
  [ -n "${BL_VG_KEEP:-}" ] && cp $bad "$BL_VG_KEEP/" 2>/dev/null
  echo "=== valgrind: $(echo "$bad" | wc -w) unclean process(es), reports above" >&2
  rc=99
fi
rm -rf "$logdir"
exit $rc
