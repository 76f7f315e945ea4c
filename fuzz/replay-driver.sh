#!/bin/sh
# replay-driver.sh HARNESS CORPUS_DIR SCENARIO: the driver-protocol corpus end
# to end: each file as a driver's whole output (via --port-cmd and
# fuzz/pace-driver.sh), through billiard-conform's line framing and run loop
# (the line parser alone is the libFuzzer target fuzz_driver_proto.c).
# billiard-conform may judge the run a fail or crash (exit 1);
# it must not die by a signal, hang, or trip ASan/UBSan (exit 86).
harness=$1 corpus=$2 scenario=$3
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:exitcode=86:detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:exitcode=86:halt_on_error=1:print_stacktrace=1"
n=0 bad=0
for f in "$corpus"/*; do
  n=$((n + 1))
  timeout 60 "$harness" run --jobs 1 --seed 1 --port-cmd "'$here/pace-driver.sh' '$f'" "$scenario" >/dev/null 2>"${TMPDIR:-/tmp}/replay-driver.$$"
  rc=$?
  case $rc in
    0|1) ;;
    *) echo "driver-proto input $f: billiard-conform exit $rc"; tail -20 "${TMPDIR:-/tmp}/replay-driver.$$"; bad=$((bad + 1)) ;;
  esac
done
rm -f "${TMPDIR:-/tmp}/replay-driver.$$"
echo "replayed $n driver transcripts, $bad bad"
[ $bad -eq 0 ] && [ $n -gt 0 ]
