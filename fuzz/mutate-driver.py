#!/usr/bin/env python3
"""mutate-driver.py HARNESS SEEDS_DIR OUT_DIR SECONDS SCENARIO [SEED]

A small mutation fuzzer for the driver-protocol parser, which is not
callable on its own (static in harness/src/runner.c): each case is a mutated
driver transcript replayed through billiard-conform with fuzz/pace-driver.sh.
A case where billiard-conform dies by a signal, hangs, or exits 86 (ASan or
UBSan report, see replay-driver.sh) is saved to OUT_DIR/artifacts/."""
import json, os, random, subprocess, sys, time

harness, seeds, out, secs, scenario = sys.argv[1:6]
rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(out, "artifacts"), exist_ok=True)
corpus = [open(os.path.join(seeds, f), "rb").read() for f in sorted(os.listdir(seeds))]
ODD = [None, True, False, 0, -1, 2**63, 1e308, "", "x" * 300, [], {}, [1, [2, [3]]],
       {"v": 1}, "\u0000", "\udc80".encode("utf-8", "surrogatepass").decode("latin-1")]


def mutate_json(v):
    if isinstance(v, dict) and v:
        k = rng.choice(list(v))
        r = rng.random()
        if r < 0.3:
            del v[k]
        elif r < 0.6:
            v[k] = rng.choice(ODD)
        else:
            v[k] = mutate_json(v[k])
    elif isinstance(v, list) and v:
        i = rng.randrange(len(v))
        v[i] = mutate_json(v[i]) if rng.random() < 0.5 else rng.choice(ODD)
    elif rng.random() < 0.5:
        return rng.choice(ODD)
    return v


def mutate(data):
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        i = rng.randrange(len(lines))
        if r < 0.45:
            try:
                lines[i] = json.dumps(mutate_json(json.loads(lines[i]))).encode()
            except Exception:
                pass
        elif r < 0.6:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif r < 0.7 and len(lines) > 1:
            del lines[i]
        elif r < 0.85 and lines[i]:
            b = bytearray(lines[i])
            b[rng.randrange(len(b))] = rng.randrange(256)
            lines[i] = bytes(b)
        else:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return b"\n".join(lines)


env = dict(os.environ)
env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":exitcode=86:detect_leaks=1"
env["UBSAN_OPTIONS"] = env.get("UBSAN_OPTIONS", "") + ":exitcode=86:halt_on_error=1"
case = os.path.join(out, "case")
end = time.monotonic() + float(secs)
n = found = 0
while time.monotonic() < end:
    data = mutate(rng.choice(corpus))
    open(case, "wb").write(data)
    try:
        p = subprocess.run([harness, "run", "--jobs", "1", "--seed", "1", "--port-cmd",
                            f"'{here}/pace-driver.sh' '{case}'", scenario],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=60)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = "hang"
    n += 1
    if rc not in (0, 1):
        found += 1
        name = os.path.join(out, "artifacts", f"crash-{n}-{rc}")
        open(name, "wb").write(data)
        print(f"case {n}: exit {rc}, saved {name}", flush=True)
print(f"fuzz driver-proto: {secs}s, {n} execs, crashes {found}")
sys.exit(1 if found else 0)
