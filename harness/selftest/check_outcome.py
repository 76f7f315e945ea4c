#!/usr/bin/env python3
"""check_outcome.py: runs billiard-conform on one self-test scenario with the
fake driver in one mode and asserts the outcome (and message) it reports.

usage: check_outcome.py HARNESS SCENARIO MODE OUTCOME [MESSAGE-SUBSTRING]
"""
import json
import os
import subprocess
import sys
import tempfile

BAD = {"fail", "xpass", "timeout", "crash"}


def main():
    harness, scenario, mode, want = sys.argv[1:5]
    substr = sys.argv[5] if len(sys.argv) > 5 else ""
    here = os.path.dirname(os.path.abspath(__file__))
    fake = os.path.join(here, "fake_driver.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        cmd = [harness, "run", "--jobs", "1", "--seed", "1",
               "--expectations", os.path.join(here, "expectations"),
               "--port-cmd", "exec /usr/bin/python3 %s --mode %s" % (fake, mode),
               "--json", out, scenario]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60)
        print(p.stdout)
        try:
            recs = json.load(open(out))
        except (OSError, ValueError) as e:
            print("FAILED: no JSON report (%s)" % e)
            return 1
    errors = []
    if len(recs) != 1:
        errors.append("expected 1 record, got %d" % len(recs))
    else:
        r = recs[0]
        if r["outcome"] != want:
            errors.append("expected outcome %s, got %s" % (want, r["outcome"]))
        if substr and substr not in r.get("message", ""):
            errors.append("expected message containing %r, got %r" % (substr, r.get("message")))
        if r.get("protocol") != 1:
            errors.append("expected protocol 1 in the record")
    want_rc = 1 if want in BAD else 0
    if p.returncode != want_rc:
        errors.append("expected exit status %d, got %d" % (want_rc, p.returncode))
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if not last.endswith("skipped") or "passed" not in last:
        errors.append("expected a last line 'N passed, N failed, N skipped', got %r" % last)
    for e in errors:
        print("FAILED:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
