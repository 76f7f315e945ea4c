"""py_bench.py: the Python side of ci/bench (billiard 4.1 and CPython
multiprocessing, both with the fork start method).

    /usr/bin/python3 bench/py_bench.py --impl billiard|mp METRIC [key=value...]

prints ONE JSON object on stdout (same metric names and units as
bench_libbilliard and bench_floor; see bench/run.py).

Wedge protection (billiard D2, perf-baseline §6): a watchdog thread dumps
the stacks, SIGKILLs every child this process started (by pid, found as
/proc entries whose parent is us) and exits 124. Pools are torn down with
terminate() under a 5 s guard, then the same SIGKILL of our children. The
figures are printed BEFORE any teardown, so a wedge cannot lose them.
"""
import faulthandler
import functools
import json
import os
import signal
import sys
import threading
import time

IMPL = None
ctx = None
monotonic = time.monotonic


# ---- tasks (module level: the fork context inherits them) ----
def noop(*a):
    return None


def square(x):
    return x * x


def echo(b):
    return b


def hang():
    time.sleep(3600)


def soft_task(limit):
    from billiard.exceptions import SoftTimeLimitExceeded
    t0 = monotonic()
    try:
        time.sleep(60)
    except SoftTimeLimitExceeded:
        return monotonic() - t0 - limit
    return None


START = None  # shared start times for the hard-limit metric


def hard_task(i):
    START[i] = monotonic()
    time.sleep(60)


# ---- children we started, and how to get rid of them ----
def our_children():
    me, kids = os.getpid(), []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                st = f.read()
        except OSError:
            continue
        # field 4 (ppid) comes after the parenthesised command name
        if int(st.rsplit(')', 1)[1].split()[1]) == me:
            kids.append(int(d))
    return kids


def kill_children():
    for pid in our_children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in our_children():
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass


def watchdog(seconds):
    def fire():
        time.sleep(seconds)
        sys.stderr.write('py_bench: watchdog after %ss, stacks:\n' % seconds)
        faulthandler.dump_traceback(all_threads=True)
        kill_children()
        os._exit(124)
    threading.Thread(target=fire, daemon=True).start()


def teardown(pool, guard=5.0):
    """terminate() under a guard; past it, log states and SIGKILL."""
    t = threading.Thread(target=pool.terminate, daemon=True)
    t.start()
    t.join(guard)
    if t.is_alive():
        states = []
        for pid in our_children():
            try:
                with open('/proc/%d/stat' % pid) as f:
                    states.append(f.read().split(')')[1].split()[0])
            except OSError:
                pass
        sys.stderr.write('py_bench: terminate() > %ss; children %s: SIGKILL\n'
                         % (guard, states))
        kill_children()


def emit(metric, **kw):
    kw = dict({'metric': metric}, **kw)
    sys.stdout.write(json.dumps(kw) + '\n')
    sys.stdout.flush()


def lat(samples, scale, unit):
    s = sorted(samples)
    n = len(s)

    def p(q):
        k = max(0, min(n - 1, int(q / 100.0 * n + 0.5) - 1))
        return s[k] * scale
    return dict(p50=p(50), p99=p(99), mean=sum(s) / n * scale, samples=n,
                unit=unit)


def Pool(n=2, **kw):
    if kw:  # billiard-only options: its Pool class takes them
        import billiard.pool
        return billiard.pool.Pool(n, context=ctx, **kw)
    return ctx.Pool(n)


# ---- metrics ----
def m_apply_async(a):
    n = int(a.get('n', 20000))
    pool = Pool()
    for _ in range(100):
        pool.apply(noop)
    t0 = monotonic()
    rs = [pool.apply_async(noop) for _ in range(n)]
    for r in rs:
        r.get()
    dt = monotonic() - t0
    emit('apply_async', value=n / dt, unit='tasks/s')
    teardown(pool)


def m_map(a):
    n, cs = int(a.get('n', 10000)), int(a.get('chunksize', 1))
    pool = Pool()
    for _ in range(100):
        pool.apply(noop)
    t0 = monotonic()
    out = pool.map(square, range(n), chunksize=cs)
    dt = monotonic() - t0
    assert out[-1] == (n - 1) ** 2
    emit('map', value=n / dt, unit='items/s', seconds=dt)
    teardown(pool)


def m_imap_unordered(a):
    n = int(a.get('n', 10000))
    pool = Pool()
    for _ in range(100):
        pool.apply(noop)
    t0 = monotonic()
    got = sum(1 for _ in pool.imap_unordered(square, range(n), chunksize=1))
    dt = monotonic() - t0
    assert got == n
    emit('imap_unordered', value=n / dt, unit='items/s')
    teardown(pool)


def m_rtt(a):
    n = int(a.get('n', 2000))
    pool = Pool()
    for _ in range(200):
        pool.apply(noop)
    s = []
    for _ in range(n):
        t0 = monotonic()
        pool.apply(noop)
        s.append(monotonic() - t0)
    emit('rtt', **lat(s, 1e6, 'us'))
    teardown(pool)


def m_echo(a):
    size, n = int(a.get('size', 1024)), int(a.get('n', 5000))
    batch = min(n, max(1, (64 << 20) // size))
    buf = b'e' * size
    pool = Pool()
    for _ in range(100):
        pool.apply(noop)
    t0 = monotonic()
    done = 0
    while done < n:
        k = min(batch, n - done)
        rs = [pool.apply_async(echo, (buf,)) for _ in range(k)]
        for r in rs:
            assert len(r.get()) == size
        done += k
    dt = monotonic() - t0
    emit('echo', value=n * size / dt / 1e6, unit='MB/s')
    teardown(pool)


def _queue_put(q, n):
    item = b'q' * 64
    for _ in range(n):
        q.put(item)


def m_queue(a):
    n = int(a.get('n', 100000))
    q = ctx.Queue()
    p = ctx.Process(target=_queue_put, args=(q, n))
    p.start()
    t0 = monotonic()
    for _ in range(n):
        q.get()
    dt = monotonic() - t0
    emit('queue', value=n / dt, unit='items/s')
    p.join(10)
    kill_children()


def _pipe_echo(c, parent_end):
    parent_end.close()
    try:
        while True:
            c.send_bytes(c.recv_bytes())
    except EOFError:
        pass


def m_pipe(a):
    n = int(a.get('n', 10000))
    x, y = ctx.Pipe()
    p = ctx.Process(target=_pipe_echo, args=(y, x))
    p.start()
    y.close()
    m = b'p' * 64
    s = []
    for i in range(-n // 10, n):
        t0 = monotonic()
        x.send_bytes(m)
        m = x.recv_bytes()
        if i >= 0:
            s.append(monotonic() - t0)
    emit('pipe', **lat(s, 1e6, 'us'))
    x.close()
    p.join(10)
    kill_children()


def m_lock(a):
    n = int(a.get('n', 1000000))
    lk = ctx.Lock()
    acq, rel = lk.acquire, lk.release
    for _ in range(n // 10):
        acq()
        rel()
    t0 = monotonic()
    for _ in range(n):
        acq()
        rel()
    dt = monotonic() - t0
    emit('lock', value=dt / n * 1e9, unit='ns')


def _lock_incr(v, n):
    lk = v.get_lock()
    for _ in range(n):
        with lk:
            v.value += 1


def m_lock_contended(a):
    n = int(a.get('n', 100000))
    v = ctx.Value('l', 0)  # billiard's table has no 'q'
    t0 = monotonic()
    ps = [ctx.Process(target=_lock_incr, args=(v, n)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    dt = monotonic() - t0
    assert v.value == 2 * n
    emit('lock_contended', value=2 * n / dt, unit='ops/s')


def m_start(a):
    reps = int(a.get('reps', 5))
    s = []
    for _ in range(reps):
        t0 = monotonic()
        pool = Pool()
        pool.apply(noop)
        s.append(monotonic() - t0)
        teardown(pool)
    emit('start', value=sorted(s)[len(s) // 2] * 1e3, unit='ms')


def m_close_join(a):
    reps = int(a.get('reps', 3))
    s = []
    for _ in range(reps):
        pool = Pool()
        for _ in range(20):
            pool.apply(noop)
        done = threading.Event()

        def cj():
            pool.close()
            pool.join()
            done.set()
        t0 = monotonic()
        threading.Thread(target=cj, daemon=True).start()
        if not done.wait(60):
            emit('close_join', error='close+join > 60 s')
            teardown(pool)
            return
        s.append(monotonic() - t0)
    emit('close_join', value=sorted(s)[len(s) // 2] * 1e3, unit='ms')


def _syscall_nr(pid):
    try:
        with open('/proc/%d/syscall' % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def m_replace(a):
    """Pool(2): SIGKILL the idle worker that does NOT hold the inqueue read
    lock (blocked in futex, not read(): killing the holder wedges both
    pools, perf-baseline §6.4); time until a replacement with a pid is in
    pool._pool (billiard adds it before it has one, §6.5)."""
    reps = int(a.get('reps', 5))
    pool = Pool()
    s = []
    for _ in range(reps):
        for _ in range(20):
            pool.apply(noop)
        old = [w.pid for w in pool._pool]
        victim = None
        dl = monotonic() + 5
        while victim is None and monotonic() < dl:
            for pid in old:
                if pid and _syscall_nr(pid) not in (0, -1):  # not read()
                    victim = pid
                    break
            time.sleep(0.001)
        if victim is None:
            emit('replace', error='no idle worker outside read()')
            teardown(pool)
            return
        t0 = monotonic()
        os.kill(victim, signal.SIGKILL)
        dl = t0 + 10
        while monotonic() < dl:
            pids = [w.pid for w in list(pool._pool)]
            if any(p and p not in old for p in pids):
                break
            time.sleep(0.0002)
        else:
            emit('replace', error='no replacement within 10 s')
            teardown(pool)
            return
        s.append(monotonic() - t0)
    emit('replace', value=sorted(s)[len(s) // 2] * 1e3, up=sorted(s)[len(s) // 2] * 1e3,
         unit='ms', note='up = new worker pid in pool._pool')
    teardown(pool)


def m_lost(a):
    """billiard only: a running job's worker is SIGKILLed; time until
    get() raises WorkerLostError (lost_worker_timeout default 10 s)."""
    reps = int(a.get('reps', 1))
    pool = Pool()
    s = []
    for _ in range(reps):
        for _ in range(5):
            pool.apply(noop)
        r = pool.apply_async(hang)
        dl = monotonic() + 5
        while not r._worker_pid and monotonic() < dl:
            time.sleep(0.001)
        pid = r._worker_pid
        time.sleep(0.01)
        t0 = monotonic()
        os.kill(pid, signal.SIGKILL)
        try:
            r.get(timeout=60)
            emit('lost', error='job did not fail')
            teardown(pool)
            return
        except Exception as e:  # billiard wraps it: ExceptionWithTraceback
            if 'WorkerLostError' not in repr(e) + str(e):
                raise
            s.append(monotonic() - t0)
    emit('lost', value=sorted(s)[len(s) // 2] * 1e3, unit='ms')
    teardown(pool)


def m_limits(a):
    """billiard only: lateness of soft/hard limits, (fire - (start+limit))."""
    global START
    n, limit = int(a.get('n', 6)), int(a.get('limit_ms', 20)) / 1e3
    hard = int(a.get('hard', 0))
    START = ctx.RawArray('d', n)
    fire = [0.0] * n
    pool = None
    late = []
    if not hard:
        pool = Pool(2, enable_timeouts=True)
        for _ in range(20):
            pool.apply(noop)
    if hard:
        # One job per worker per pool: with more hard-limited jobs queued
        # than workers, billiard 4.1 wedges after the first kills (the
        # replacements block in futex and never take the queued jobs; seen
        # while writing this benchmark), so each pool gets 2 jobs.
        def on_err(i, exc):
            fire[i] = monotonic()
        i = 0
        while i < n:
            if pool is None:
                pool = Pool(2, enable_timeouts=True)
                for _ in range(5):
                    pool.apply(noop)
            k = min(2, n - i)
            rs = [pool.apply_async(hard_task, (j,), timeout=limit,
                                   error_callback=functools.partial(on_err, j))
                  for j in range(i, i + k)]
            for r in rs:
                r.wait(30)
            for j in range(i, i + k):
                if not fire[j]:
                    time.sleep(0.1)
                late.append(fire[j] - START[j] - limit)
            teardown(pool)
            pool = None
            i += k
    else:
        rs = [pool.apply_async(soft_task, (limit,), soft_timeout=limit)
              for _ in range(n)]
        late = [r.get(60) for r in rs]
    emit('limits', **lat(late, 1e3, 'ms'))
    if pool is not None:
        teardown(pool)


METRICS = {k[2:]: v for k, v in list(globals().items()) if k.startswith('m_')}


def main():
    global IMPL, ctx
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != '--impl' or args[2] not in METRICS:
        sys.stderr.write(__doc__ + '\nmetrics: %s\n' % ' '.join(sorted(METRICS)))
        sys.exit(2)
    IMPL, metric = args[1], args[2]
    kv = dict(x.split('=', 1) for x in args[3:])
    watchdog(float(kv.pop('watchdog', 150)))
    if IMPL == 'billiard':
        import billiard
        ctx = billiard.get_context('fork')
    elif IMPL == 'mp':
        import multiprocessing
        ctx = multiprocessing.get_context('fork')
    else:
        sys.exit('unknown impl ' + IMPL)
    rc = 0
    try:
        METRICS[metric](kv)
    except BaseException:
        import traceback
        traceback.print_exc()
        rc = 1
    # os._exit: no atexit joins of pools/feeders that might wedge.
    kill_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == '__main__':
    main()
