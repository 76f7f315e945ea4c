#!/usr/bin/env python3
"""check_lint.py: billiard-conform lint must reject a malformed file with
exit status 2 and 'path:line:col: error: ...' at the place named by the
file's '# expect: LINE:COL SUBSTRING' comment lines.

usage: check_lint.py HARNESS FILE      (a scenario file)
       check_lint.py HARNESS --expectations DIR FILE   (an expectations file
                                       in DIR; the good basic.yaml is linted)
"""
import os
import re
import subprocess
import sys


def main():
    harness = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.argv[2] == "--expectations":
        exp_dir, target = sys.argv[3], sys.argv[4]
        cmd = [harness, "lint", "--expectations", exp_dir,
               os.path.join(here, "scenarios", "basic.yaml")]
    else:
        target = sys.argv[2]
        cmd = [harness, "lint", "--no-expectations", target]
    wants = re.findall(r"^# expect: (\d+):(\d+) (.*)$", open(target).read(), re.M)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=30)
    print(p.stdout)
    errors = []
    if p.returncode != 2:
        errors.append("expected exit status 2, got %d" % p.returncode)
    if not wants:
        errors.append("no '# expect:' line in %s" % target)
    for line, col, sub in wants:
        prefix = "%s:%s:%s: error: " % (target, line, col)
        if not any(l.startswith(prefix) and sub in l for l in p.stdout.splitlines()):
            errors.append("expected a line starting %r containing %r" % (prefix, sub))
    for e in errors:
        print("FAILED:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
