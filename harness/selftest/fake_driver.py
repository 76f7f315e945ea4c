#!/usr/bin/env python3
"""fake_driver.py: a deliberately broken billiard-conform driver (protocol 1).

Used only by the harness self-tests: each --mode breaks the contract in one
way, and a self-test asserts that billiard-conform reports exactly the
outcome that breakage deserves. Standard library only; no real pool: jobs
resolve at submission.

modes: correct, wrong-error, lost-job, dup-result, late-limit, leak-child,
       garbage, crash, hang, bad-version
"""
import argparse
import json
import os
import signal
import sys
import time

MODES = ["correct", "wrong-error", "lost-job", "dup-result", "late-limit",
         "leak-child", "garbage", "crash", "hang", "bad-version"]

T0 = time.monotonic()


def send(obj):
    obj.setdefault("v", 1)
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def event(name, **fields):
    send(dict(event=name, t=time.monotonic() - T0, **fields))


class Fake:
    def __init__(self, mode):
        self.mode = mode
        self.jobs = {}      # handle -> (ok, value | (type, message), time_limit)
        self.pools = {}
        self.n = 0
        self.commands = 0

    def run_task(self, task, args, time_limit):
        if task == "echo":
            return True, args.get("value")
        if task == "square":
            return True, args["x"] * args["x"]
        if task == "noop":
            return True, None
        if task == "fail":
            t = args.get("type", "ValueError")
            if self.mode == "wrong-error":
                t = "RuntimeError"
            return False, (t, args.get("message", ""))
        if task == "sleep":
            if time_limit is not None and time_limit < args.get("seconds", 0):
                return False, ("TimeLimitExceeded", "TimeLimitExceeded(%s,)" % time_limit)
            return True, None
        return False, ("ValueError", "unknown task %s" % task)

    def op(self, name, a):
        if name == "pool.new":
            p = a.get("as", "p%d" % len(self.pools))
            self.pools[p] = "RUN"
            if self.mode == "leak-child":
                if os.fork() == 0:
                    # A "worker" that outlives the driver, in its process group.
                    os.closerange(0, 3)
                    time.sleep(60)
                    os._exit(0)
            return {"pool": p, "pids": [os.getpid()]}
        if name == "pool.apply_async":
            self.n += 1
            j = a.get("as", "j%d" % self.n)
            ok, val = self.run_task(a["task"], a.get("args") or {}, a.get("time_limit"))
            self.jobs[j] = (ok, val, a.get("time_limit"))
            event("job.accepted", job=j, pid=os.getpid())
            if self.mode != "lost-job":
                event("job.ready", job=j, ok=ok)
                if self.mode == "dup-result":
                    event("job.ready", job=j, ok=ok)
            return {"job": j}
        if name in ("result.get", "result.wait", "result.ready"):
            j = a["job"]
            if j not in self.jobs:
                raise Err("ValueError", "unknown job %s" % j)
            ok, val, tl = self.jobs[j]
            if self.mode == "lost-job":
                if name == "result.get":
                    time.sleep(a.get("timeout") or 0)
                    raise Err("TimeoutError", "")
                if name == "result.wait":
                    time.sleep(min(a.get("timeout") or 0, 0.2))
                return {"ready": False}
            if name != "result.get":
                return {"ready": True}
            if self.mode == "late-limit" and tl is not None:
                time.sleep(1.5)  # the limit "fires" far too late
            if ok:
                return {"value": val}
            raise Err(*val)
        if name in ("pool.close", "pool.terminate"):
            self.pools[a["pool"]] = "CLOSE" if name == "pool.close" else "TERMINATE"
            return {}
        if name == "pool.join":
            return {}
        if name == "pool.info":
            return {"state": self.pools.get(a["pool"], "RUN"), "pids": [os.getpid()], "busy": {}}
        raise Err("Unsupported", "fake driver has no %s" % name)


class Err(Exception):
    def __init__(self, type_, message):
        super().__init__(message)
        self.type = type_
        self.message = message


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, default=os.environ.get("BC_FAKE_MODE", "correct"))
    mode = ap.parse_args().mode
    proto = 2 if mode == "bad-version" else 1
    send({"v": proto, "hello": {"port": "fake", "impl": "fake-driver (%s)" % mode,
                                "protocol": proto, "features": ["pool"],
                                "start_methods": ["fork"], "tasks": ["echo", "fail", "sleep"]}})
    fake = Fake(mode)
    for line in sys.stdin:
        msg = json.loads(line)
        fake.commands += 1
        print("fake driver (%s): %s" % (mode, msg["op"]), file=sys.stderr, flush=True)
        if mode == "garbage" and fake.commands == 2:
            sys.stdout.write("this is not JSON\n")
            sys.stdout.flush()
        if mode == "crash" and fake.commands == 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "hang" and fake.commands == 2:
            while True:
                time.sleep(60)
        try:
            send({"id": msg["id"], "ok": True, "result": fake.op(msg["op"], msg.get("args") or {})})
        except Err as e:
            send({"id": msg["id"], "ok": False, "error": {"type": e.type, "message": e.message}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
