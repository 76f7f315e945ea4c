#!/usr/bin/env python3
"""check_reports.py: one run of the self-test scenarios on two fake ports
(one correct, one returning wrong error types) must produce consistent
--json, --junit, --tap and --report outputs and the closing summary line.

usage: check_reports.py HARNESS
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.dom.minidom


def main():
    harness = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    fake = os.path.join(here, "fake_driver.py")
    scen = [os.path.join(here, "scenarios", s) for s in ("basic.yaml", "needs-feature.yaml")]
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [harness, "run", "--jobs", "2", "--seed", "42", "--tap",
               "--expectations", os.path.join(here, "expectations"),
               "--port-cmd", "exec /usr/bin/python3 %s --port-name good" % fake,
               "--port-cmd", "exec /usr/bin/python3 %s --port-name bad --mode wrong-error" % fake,
               "--json", tmp + "/r.json", "--junit", tmp + "/r.xml", "--report", tmp + "/html"]
        p = subprocess.run(cmd + scen, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60)
        out = p.stdout
        print(out)
        print(p.stderr, file=sys.stderr)
        if p.returncode != 1:
            errors.append("expected exit status 1 (one fail), got %d" % p.returncode)
        lines = out.strip().splitlines()
        if lines[-1] != "# 1 passed, 1 failed, 2 skipped":
            errors.append("unexpected last line %r" % lines[-1])
        if "1..4" not in lines:
            errors.append("no TAP plan 1..4")
        if len([l for l in lines if re.match(r"(not )?ok \d+ - ", l)]) != 4:
            errors.append("expected 4 TAP result lines")
        # The column is port/start_method (the fake ports' default: fork).
        if not any(l.startswith("not ok") and "bad/fork basic.yaml" in l for l in lines):
            errors.append("expected 'not ok ... bad/fork basic.yaml'")
        if "seed 42" not in out:
            errors.append("the seed is not printed")
        recs = json.load(open(tmp + "/r.json"))
        got = sorted((r["port"], r["scenario"], r["outcome"]) for r in recs)
        want = [("bad", "basic.yaml", "fail"), ("bad", "needs-feature.yaml", "skip"),
                ("good", "basic.yaml", "pass"), ("good", "needs-feature.yaml", "skip")]
        if got != want:
            errors.append("JSON records %r, expected %r" % (got, want))
        for r in recs:
            for k in ("protocol", "scenario", "port", "repeat", "outcome", "duration_ms", "message"):
                if k not in r:
                    errors.append("JSON record lacks %s" % k)
            if r.get("start_method") != "fork":
                errors.append("JSON record: start_method %r, expected the default fork"
                              % r.get("start_method"))
            if "timeline" in r:
                errors.append("JSON records should not carry the timeline")
        doc = xml.dom.minidom.parse(tmp + "/r.xml")
        cases = doc.getElementsByTagName("testcase")
        if len(cases) != 4 or len(doc.getElementsByTagName("failure")) != 1 or \
                len(doc.getElementsByTagName("skipped")) != 2:
            errors.append("JUnit: expected 4 testcases, 1 failure, 2 skipped")
        html = open(tmp + "/html/index.html").read()
        if "Port &times; scenario" not in html:
            errors.append("HTML: no port x scenario matrix for two ports")
        if html.count("<svg") < 2:
            errors.append("HTML: expected a timeline SVG per run that started a driver")
        if "<th>good/fork</th>" not in html:
            errors.append("HTML: matrix columns should be labelled port/method")
        if "<script" in html:
            errors.append("HTML: must not need JavaScript")
    for e in errors:
        print("FAILED:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
