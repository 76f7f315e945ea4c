#!/bin/sh
# sanitizer-wrap.sh CMD...: ASan/UBSan reports from any process (written to
# per-process log files) fail the test, even where Criterion ignores them.
logdir=$(mktemp -d "${TMPDIR:-/tmp}/san.XXXXXX")
export ASAN_OPTIONS="log_path=$logdir/asan:detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$logdir/ubsan:halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
"$@"
rc=$?
if ls "$logdir"/* >/dev/null 2>&1; then
  for f in "$logdir"/*; do echo "=== sanitizer report: $f" >&2; cat "$f" >&2; done
  rc=98
fi
rm -rf "$logdir"
exit $rc
