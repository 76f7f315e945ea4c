#!/usr/bin/env python3
"""check_vocabulary.py: the harness's op table and catalogues (from
`billiard-conform list --vocabulary`) must match the documents they come
from: harness/INTERPRETING.md (§4 events, §5 tasks and targets, §6 ops) and
docs/scenario-format.md (harness ops, top-level keys, flags, faults,
invariants). Either side having a name the other lacks is a failure.

usage: check_vocabulary.py HARNESS SOURCE_DIR
"""
import re
import subprocess
import sys


def section(text, start, end):
    i = text.index(start)
    j = text.index(end, i) if end else len(text)
    return text[i:j]


def ticked(text):
    return re.findall(r"`([^`]+)`", text)


def main():
    harness, src = sys.argv[1], sys.argv[2]
    out = subprocess.run([harness, "list", "--vocabulary"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    have = {}
    for line in out.splitlines():
        kind, name = line.split(" ", 1)
        have.setdefault(kind, set()).add(name)
    interp = open(src + "/harness/INTERPRETING.md").read()
    fmt = open(src + "/docs/scenario-format.md").read()
    want = {}

    # §6 ops: `a.b`, with `a.b`/`c` and `a.b` / `a.c` spellings.
    ops = set()
    s6 = section(interp, "## 6. Operations", "Faults the harness performs")
    for m in re.finditer(r"`([a-z_]+)\.([a-z_]+)`((?:\s*/\s*`[a-z_.]+`)*)", s6):
        ops.add(m.group(1) + "." + m.group(2))
        for extra in re.findall(r"`([a-z_.]+)`", m.group(3)):
            ops.add(extra if "." in extra else m.group(1) + "." + extra)
    want["op"] = ops

    s4 = section(interp, "## 4. Events", "## 5.")
    want["event"] = set(re.findall(r"^\| `([a-z_.]+)` \|", s4, re.M))
    s5 = section(interp, "## 5. Values", "Process targets")
    tasks = set(re.findall(r"^\| `([a-z_]+)` \|", s5, re.M))
    tasks |= set(t for t in ticked(s5) if t.startswith("init_"))
    tasks.discard("initializer")
    want["task"] = tasks
    targets = section(interp, "Process targets", "Byte payloads")
    want["target"] = set(re.findall(r"`([a-z_]+)` \{", targets)) | set(
        re.findall(r"`([a-z_]+)` \(", targets))

    harness_tbl = section(fmt, "**Harness operations.**", "## Invariants")
    hops = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", harness_tbl, re.M):
        hops |= set(ticked(row))
    want["harness-op"] = hops
    keys_tbl = section(fmt, "## Top-level keys", "Durations are")
    want["key"] = set(re.findall(r"^\| `([a-z_]+)` \|", keys_tbl, re.M))
    flags_row = re.search(r"^\| `flags` \|.*$", keys_tbl, re.M).group(0)
    want["flag"] = set(re.findall(r"`([a-z]+)` \(", flags_row))
    faults_row = re.search(r"^\| `faults` \|.*$", keys_tbl, re.M).group(0)
    want["fault"] = set(t for t in ticked(faults_row) if t != "faults")
    inv = section(fmt, "## Invariants", "## Outcomes")
    want["invariant"] = set(re.findall(r"^- `([a-z-]+)`", inv, re.M))

    errors = 0
    for kind in sorted(want):
        missing = want[kind] - have.get(kind, set())
        extra = have.get(kind, set()) - want[kind]
        for n in sorted(missing):
            print("FAILED: %s %s is documented but unknown to the harness" % (kind, n))
        for n in sorted(extra):
            print("FAILED: %s %s is known to the harness but not documented" % (kind, n))
        errors += len(missing) + len(extra)
        print("%-11s %3d documented, %3d known" % (kind, len(want[kind]),
                                                  len(have.get(kind, set()))))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
