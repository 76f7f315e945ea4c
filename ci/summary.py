#!/usr/bin/env python3
"""summary.py TESTLOG.json...: one 'N passed, N failed, N skipped' line.

A Criterion executable counts as its test cases (from its Synthesis line);
any other meson test counts as one. A meson failure with no failing case
(a valgrind or sanitizer wrapper verdict) still counts as one failure."""
import json
import re
import sys

SYN = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
passed = failed = skipped = 0
failures = []
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"summary: cannot read {path}: {e}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        rec = json.loads(line)
        res = rec.get("result")
        m = SYN.findall((rec.get("stdout") or "") + (rec.get("stderr") or ""))
        name = rec.get("name")
        if res == "SKIP":
            skipped += 1
            continue
        ok = res in ("OK", "EXPECTEDFAIL")
        if m:
            tested, p, f, c = map(int, m[-1])
            passed += p
            bad = f + c
            if not ok and bad == 0:
                bad = 1
            failed += bad
            skipped += max(0, tested - p - f - c)
        else:
            passed += ok
            failed += not ok
        if not ok:
            failures.append(f"{path.split('/meson-logs')[0]}: {name} ({res})")
for f in failures:
    print("FAILED:", f)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
