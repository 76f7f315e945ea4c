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
import threading
import time

MODES = ["correct", "wrong-error", "lost-job", "dup-result", "late-limit",
         "leak-child", "garbage", "crash", "hang", "bad-version"]

T0 = time.monotonic()
LOCK = threading.Lock()  # the reaper thread also writes events


def send(obj):
    obj.setdefault("v", 1)
    with LOCK:
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
        self.workers = {}   # pid -> pool, for pools created with processes >= 2
        self.busy = {}      # pid -> job ("sleep" jobs run on a real sleeper process)
        self.cond = threading.Condition()

    def spawn(self, pool):
        pid = os.fork()
        if pid == 0:
            os.closerange(0, 3)
            while True:
                time.sleep(60)
        self.workers[pid] = pool
        event("worker.up", pool=pool, pid=pid)
        return pid

    def reaper(self):
        """Reports dead workers, fails their job, replaces them (like a pool)."""
        while True:
            try:
                pid, st = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            with self.cond:
                pool = self.workers.pop(pid, None)
                if pool is None:
                    continue
                code = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
                event("worker.down", pool=pool, pid=pid, exitcode=code)
                job = self.busy.pop(pid, None)
                if job:
                    self.jobs[job] = (False, ("WorkerLostError", "Worker exited prematurely: "
                                              "signal %d" % -code), None)
                    event("job.ready", job=job, ok=False)
                    self.cond.notify_all()
                if self.pools.get(pool) == "RUN":
                    self.spawn(pool)

    def teardown(self):
        with self.cond:
            for p in self.pools:
                self.pools[p] = "TERMINATE"
            for pid in list(self.workers):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # already reaped by the watcher thread: nothing to stop
        deadline = time.monotonic() + 5
        while self.workers and time.monotonic() < deadline:
            time.sleep(0.01)

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
            if (a.get("processes") or 1) >= 2 and self.mode == "correct":
                with self.cond:
                    pids = [self.spawn(p) for _ in range(a["processes"])]
                if not hasattr(self, "reaper_thread"):
                    self.reaper_thread = threading.Thread(target=self.reaper, daemon=True)
                    self.reaper_thread.start()
                return {"pool": p, "pids": pids}
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
            pool = a.get("pool")
            if a["task"] == "sleep" and any(v == pool for v in self.workers.values()):
                with self.cond:
                    idle = [w for w, p in self.workers.items() if p == pool and w not in self.busy]
                    w = idle[0]
                    self.busy[w] = j
                    self.jobs[j] = None  # pending until the worker dies (or forever)
                event("job.accepted", job=j, pid=w)
                return {"job": j}
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
            if self.jobs[j] is None:  # a sleeper job: resolves only when its worker dies
                with self.cond:
                    self.cond.wait_for(lambda: self.jobs[j] is not None,
                                       timeout=a.get("timeout") or 0.01)
                if self.jobs[j] is None:
                    if name == "result.get":
                        raise Err("TimeoutError", "")
                    return {"ready": False}
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
            if name == "pool.terminate":
                with self.cond:
                    for w, p in list(self.workers.items()):
                        if p == a["pool"]:
                            os.kill(w, signal.SIGKILL)
            return {}
        if name == "pool.join":
            return {}
        if name == "pool.info":
            with self.cond:
                pids = [w for w, p in self.workers.items() if p == a["pool"]]
                busy = {str(w): [j] for w, j in self.busy.items() if w in pids}
            return {"state": self.pools.get(a["pool"], "RUN"), "pids": pids or [os.getpid()],
                    "busy": busy}
        raise Err("Unsupported", "fake driver has no %s" % name)


class Err(Exception):
    def __init__(self, type_, message):
        super().__init__(message)
        self.type = type_
        self.message = message


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, default=os.environ.get("BC_FAKE_MODE", "correct"))
    ap.add_argument("--port-name", default="fake")
    opts = ap.parse_args()
    mode = opts.mode
    proto = 2 if mode == "bad-version" else 1
    send({"v": proto, "hello": {"port": opts.port_name, "impl": "fake-driver (%s)" % mode,
                                "protocol": proto,
                                "features": ["pool", "pool.callbacks.accept", "pool.events.worker"],
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
    fake.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
