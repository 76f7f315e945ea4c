#!/usr/bin/python3
"""billiard-conform driver for Python ports (protocol v1, harness/INTERPRETING.md).

  driver.py --impl billiard          port python-billiard (Debian python3-billiard)
  driver.py --impl multiprocessing   port python-multiprocessing (CPython stdlib)

The driver exposes the implementation as it is: it translates names and
values, never repairs a defect (billiard's None from a submit after close is
answered as a null handle/value, a wedged call blocks until the harness
deadline).  Exit 77 when the implementation cannot be imported.
"""
import argparse
import ctypes
import functools
import json
import os
import queue as stdqueue
import signal
import sys
import threading
import time
import traceback



def _select_sleep(secs):
    """time.sleep on select(2): under libfaketime with
    FAKETIME_DONT_FAKE_MONOTONIC (the harness's wall-clock fault) CPython's
    time.sleep (clock_nanosleep TIMER_ABSTIME) fails with EINVAL, which
    would crash billiard's Supervisor.  This repairs the test environment,
    not the implementation; it is installed before billiard is imported."""
    import select
    deadline = time.monotonic() + float(secs)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        select.select([], [], [], left)


if 'faketime' in os.environ.get('LD_PRELOAD', ''):
    time.sleep = _select_sleep

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bc_tasks must be importable in spawn and forkserver children too.  A
# runtime sys.path entry is not enough for billiard 4.1: its forkserver
# main() accepts the parent's sys_path but never applies it (CPython's does),
# so unpickling bc_tasks.target fails there and the child exits 255.
os.environ['PYTHONPATH'] = os.pathsep.join(
    [os.path.dirname(os.path.abspath(__file__))] +
    [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])
import bc_tasks  # noqa: E402

PROTOCOL = 1
CLONE_NEWTIME = 0x80

COMMON_FEATURES = [
    'pool', 'pool.apply', 'pool.apply_async', 'pool.map', 'pool.imap',
    'pool.imap_unordered', 'pool.starmap', 'pool.callbacks',
    'pool.initializer', 'pool.maxtasksperchild', 'pool.join-timeout',
    'wallclock', 'process', 'process.terminate', 'pipe', 'pipe.objects',
    'pool.context', 'exceptions', 'util.logger', 'util.noops',
    'context.executable', 'context.forkserver_preload', 'queue',
    'queue.joinable', 'queue.simple', 'lock', 'rlock', 'semaphore', 'event',
    'condition', 'barrier', 'value', 'array', 'context', 'util',
    'manager', 'manager.connect', 'manager.queue', 'manager.lock',
    'manager.event', 'manager.rlock', 'manager.semaphore',
    'manager.condition', 'manager.barrier', 'manager.array',
    'manager.joinable-queue', 'manager.register',
]
BILLIARD_FEATURES = [
    'pool.callbacks.accept', 'pool.callbacks.timeout', 'pool.events.worker',
    'pool.max_memory_per_child', 'pool.terminate_job', 'pool.grow',
    'pool.shrink', 'pool.restart', 'worker-loss', 'restart-freq',
    'time-limits.soft', 'time-limits.hard', 'time-limits.per-job',
    'pipe.nonblock', 'pool.synack', 'pool.putlocks', 'pool.events.exit',
    'util.soft_timeout',
]


class Unsupported(Exception):
    pass


class ProtocolError(Exception):
    pass


class DriverTimeout(Exception):
    """A bounded blocking call did not finish: reported as TimeoutError."""


# -- output ----------------------------------------------------------------------

_out_lock = threading.Lock()
_t0 = time.monotonic()


_out_fd = 1   # the protocol channel; main() moves it off fd 1


def _emit(obj):
    # Raw os.write under a plain lock: Python's buffered stdout has a lock
    # that a worker forked while another thread writes would inherit held
    # (it then hangs flushing stdout at exit).
    data = (json.dumps(obj, separators=(',', ':'), default=_jsonable)
            + '\n').encode('utf-8')
    with _out_lock:
        while data:
            n = os.write(_out_fd, data)
            data = data[n:]


def event(name, **fields):
    msg = {'v': PROTOCOL, 'event': name,
           't': round(time.monotonic() - _t0, 6)}
    msg.update(fields)
    _emit(msg)


def _jsonable(o):
    if isinstance(o, (bytes, bytearray)):
        return o.decode('utf-8', 'replace')
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    if isinstance(o, BaseException):
        return {'type': type(o).__name__, 'message': str(o)}
    return repr(o)


def log(msg):
    sys.stderr.write('driver: %s\n' % msg)
    sys.stderr.flush()


# -- the implementation under test ---------------------------------------------

class Impl:
    def __init__(self, name):
        self.name = name
        if name == 'billiard':
            import billiard
            import billiard.pool
            import billiard.exceptions
            self.mod = billiard
            self.ctx = billiard.get_context('fork')
            self.Pool = billiard.pool.Pool
            self.pool_mod = billiard.pool
            self.exc = billiard.exceptions
            self.port = 'python-billiard'
            self.version = 'billiard %s' % billiard.__version__
        else:
            import multiprocessing
            import multiprocessing.pool
            self.mod = multiprocessing
            self.ctx = multiprocessing.get_context('fork')
            self.Pool = multiprocessing.pool.Pool
            self.exc = None
            self.port = 'python-multiprocessing'
            self.version = 'multiprocessing (CPython %s)' % \
                sys.version.split()[0]
        bc_tasks.set_impl(name)

    @property
    def billiard(self):
        return self.name == 'billiard'


def error_of(e):
    """A Python exception → protocol error {type, message}."""
    e = unwrap(e)
    if isinstance(e, stdqueue.Full):
        return {'type': 'Full', 'message': str(e)}
    if isinstance(e, stdqueue.Empty):
        return {'type': 'Empty', 'message': str(e)}
    if isinstance(e, DriverTimeout):
        return {'type': 'TimeoutError', 'message': str(e)}
    if isinstance(e, Unsupported):
        return {'type': 'Unsupported', 'message': str(e)}
    name = type(e).__name__
    if name == 'ExceptionInfo':          # billiard.einfo.ExceptionInfo
        return error_of(e.exception)
    return {'type': name, 'message': str(e)}


def unwrap(e):
    # billiard wraps parent-made errors in ExceptionWithTraceback (.exc)
    for _ in range(4):
        if type(e).__name__ == 'ExceptionWithTraceback' and hasattr(e, 'exc'):
            e = e.exc
        elif type(e).__name__ == 'ExceptionInfo' and hasattr(e, 'exception'):
            e = e.exception
        else:
            break
    return e


def bounded(fn, timeout, what):
    """Run fn() in a daemon thread; DriverTimeout if it is not done in time.
    timeout None = wait forever (in this thread)."""
    if timeout is None:
        return fn()
    box = {}

    def body():
        try:
            box['value'] = fn()
        except BaseException as e:   # noqa: B902 - relayed to the caller
            box['error'] = e
    th = threading.Thread(target=body, name='bounded-' + what, daemon=True)
    th.start()
    th.join(max(0.0, float(timeout)))
    if th.is_alive():
        raise DriverTimeout('%s did not return within %ss' % (what, timeout))
    if 'error' in box:
        raise box['error']
    return box.get('value')


def seconds(v):
    return None if v is None else float(v)


# -- driver state --------------------------------------------------------------

class PoolRec:
    def __init__(self, name, pool):
        self.name = name
        self.pool = pool
        self.busy = {}           # job name -> pid (accepted, not ready)
        self.pids_seen = set()


class JobRec:
    def __init__(self, name, pool, kind):
        self.name = name
        self.pool = pool          # PoolRec
        self.kind = kind
        self.result = None
        self.pid = None


class IterRec:
    def __init__(self, name, it):
        self.name = name
        self.it = it
        self.pending = None       # a next() still running from a timed-out call


class Driver:
    def __init__(self, impl):
        self.impl = impl
        self.h = {}               # handle -> object
        self.pools = {}
        self.jobs = {}
        self.job_by_id = {}       # billiard job id -> JobRec (timeout hooks)
        self.lock = threading.Lock()
        self.nhandle = 0
        self.processes = []
        self.managers = []        # started here: shut down at teardown
        self.worker_pids = set()
        self.timens = False
        self.features = list(COMMON_FEATURES)
        if impl.billiard:
            self.features += BILLIARD_FEATURES
        if self._timens_possible():
            self.features.append('clock.worker-offset')
        self._install_log_relay()

    # -- helpers
    def name(self, args, prefix):
        n = args.get('as')
        if n is None:
            self.nhandle += 1
            n = '%s%d' % (prefix, self.nhandle)
        if n in self.h:
            raise ValueError('handle %r already exists' % n)
        return n

    def get(self, args, key, types=None):
        n = args.get(key)
        if n not in self.h:
            raise ProtocolError('unknown %s handle %r' % (key, n))
        return self.h[n]

    def _install_log_relay(self):
        """billiard reports pool failures (e.g. RestartFreqExceeded in the
        Supervisor) only through its logger: relay errors as events."""
        if not self.impl.billiard:
            return
        import logging
        drv = self

        class Relay(logging.Handler):
            def emit(self, record):
                try:
                    msg = record.getMessage()
                except Exception:
                    msg = str(record.msg)
                event('log', message='billiard %s: %s' % (
                    record.levelname, msg.splitlines()[0][:500]))
                if record.exc_info and record.exc_info[1] is not None:
                    e = record.exc_info[1]
                    if type(e).__name__ == 'RestartFreqExceeded':
                        for p in list(drv.pools.values()):
                            event('pool.error', pool=p.name,
                                  error=error_of(e))
        from billiard import util
        lg = util.get_logger()   # billiard logs nothing until this exists
        lg.addHandler(Relay(logging.WARNING))
        lg.setLevel(logging.WARNING)
        lg.propagate = False

    def _timens_possible(self):
        pid = os.fork()
        if pid == 0:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                os._exit(0 if libc.unshare(CLONE_NEWTIME) == 0 else 1)
            except BaseException:
                os._exit(1)
        _, st = os.waitpid(pid, 0)
        return os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0

    def hello(self):
        _emit({'v': PROTOCOL, 'hello': {
            'port': self.impl.port, 'impl': self.impl.version,
            'protocol': PROTOCOL, 'features': self.features,
            # fork first: the driver's default (Impl.ctx)
            'start_methods': ['fork'] + [
                m for m in self.impl.mod.get_all_start_methods() if m != 'fork'],
            'tasks': sorted(bc_tasks.TASKS) + sorted(bc_tasks.INITIALIZERS)}})

    # -- dispatch
    def handle(self, msg):
        op = msg.get('op')
        fn = getattr(self, 'op_' + str(op).replace('.', '_'), None)
        if fn is None:
            raise Unsupported('op %s not implemented by this driver' % op)
        return fn(msg.get('args') or {})

    # ===== pools ===============================================================
    def op_pool_new(self, a):
        name = self.name(a, 'pool')
        im = self.impl
        kw = {}
        if a.get('processes') is not None:
            kw['processes'] = a['processes']
        if a.get('initializer'):
            ini = a['initializer']
            kw['initializer'] = bc_tasks.initializer
            kw['initargs'] = (ini['task'], ini.get('args') or {})
        if a.get('maxtasksperchild') is not None:
            kw['maxtasksperchild'] = a['maxtasksperchild']
        billiard_only = {'time_limit': 'timeout',
                         'soft_time_limit': 'soft_timeout',
                         'lost_worker_timeout': 'lost_worker_timeout',
                         'max_restarts': 'max_restarts',
                         'max_restart_freq': 'max_restart_freq',
                         'max_memory_per_child': 'max_memory_per_child',
                         'allow_restart': 'allow_restart',
                         'enable_timeouts': 'enable_timeouts'}
        for k, pk in billiard_only.items():
            if a.get(k) is not None:
                if not im.billiard:
                    raise Unsupported('%s: no such pool option' % k)
                kw[pk] = a[k]
        if a.get('threads') is not None and a['threads'] is not True:
            raise Unsupported('threads=false needs a caller-driven pool')
        extra = [k for k in ('synack', 'putlocks', 'semaphore',
                             'on_process_exit') if a.get(k) is not None]
        if extra and not im.billiard:
            raise Unsupported('%s: no such pool option' % ', '.join(extra))
        if a.get('synack') is not None:
            kw['synack'] = bool(a['synack'])
        if a.get('putlocks') is not None:
            kw['putlocks'] = bool(a['putlocks'])
        if a.get('semaphore') is not None:
            # billiard's own kind: the pool calls grow/shrink/clear on it
            kw['semaphore'] = im.pool_mod.LaxBoundedSemaphore(
                int(a['semaphore']))
        rec = PoolRec(name, None)
        ctx = self._ctx(a)
        if a.get('on_process_exit'):
            if a.get('start_method') not in (None, 'fork'):
                raise Unsupported('on_process_exit relay needs fork workers')
            kw['on_process_exit'] = functools.partial(
                bc_tasks.exit_hook, self._exit_relay(), name)
        if im.billiard:
            kw['context'] = ctx

            def up(w):
                if w.pid is not None:
                    rec.pids_seen.add(w.pid)
                    self.worker_pids.add(w.pid)
                event('worker.up', pool=name, pid=w.pid)

            def down(w):
                event('worker.down', pool=name, pid=w.pid,
                      exitcode=w.exitcode)

            def tset(job, soft, hard):
                j = self._job_of(job)
                if j is not None:   # pool.apply's internal job has no handle
                    event('timeout.set', job=j, soft=soft, hard=hard)

            def tcancel(job):
                j = self._job_of(job)
                if j is not None:
                    event('timeout.cancel', job=j)
            kw.update(on_process_up=up, on_process_down=down,
                      on_timeout_set=tset, on_timeout_cancel=tcancel)
            pool = im.Pool(**kw)
        else:
            pool = ctx.Pool(**kw)
        rec.pool = pool
        self.h[name] = rec
        self.pools[name] = rec
        pids = [w.pid for w in list(pool._pool) if w.pid is not None]
        for p in pids:
            rec.pids_seen.add(p)
            self.worker_pids.add(p)
        return {'pool': name, 'pids': pids}

    def _exit_relay(self):
        """The write end of a pipe on which workers report on_process_exit
        (it runs in the worker); a thread here turns each line into a
        worker.exit event."""
        if getattr(self, 'exit_w', None) is None:
            r, self.exit_w = os.pipe()

            def relay():
                buf = b''
                while True:
                    chunk = os.read(r, 4096)
                    if not chunk:
                        return
                    buf += chunk
                    while b'\n' in buf:
                        line, buf = buf.split(b'\n', 1)
                        pool, pid, code = line.decode().split()
                        event('worker.exit', pool=pool, pid=int(pid),
                              exitcode=int(code))
            threading.Thread(target=relay, name='exit-relay',
                             daemon=True).start()
        return self.exit_w

    def _job_of(self, res):
        with self.lock:
            j = self.job_by_id.get(getattr(res, '_job', None))
        return j.name if j else None

    def _pool(self, a):
        rec = self.get(a, 'pool')
        if not isinstance(rec, PoolRec):
            raise ProtocolError('%r is not a pool' % a.get('pool'))
        return rec

    def _callbacks(self, rec, job):
        """callback / error_callback / accept_callback emitting events."""
        def ready(ok):
            rec.busy.pop(job.name, None)
            event('job.ready', job=job.name, ok=ok)

        def cb(value):
            ready(True)
            event('job.callback', job=job.name, value=value)

        def ecb(exc):
            ready(False)
            event('job.error_callback', job=job.name, error=error_of(exc))

        def acb(pid, *_):
            job.pid = pid
            if job.name and not (job.result is not None and
                                 job.result.ready()):
                rec.busy[job.name] = pid
            event('job.accepted', job=job.name, pid=pid)
        return cb, ecb, acb

    def _submit(self, rec, job, submit):
        """Register the job under self.lock so pool hooks can name it."""
        with self.lock:
            res = submit()
            job.result = res
            if res is not None and hasattr(res, '_job'):
                self.job_by_id[res._job] = job
        self.jobs[job.name] = job
        self.h[job.name] = job
        return res

    def op_pool_apply_async(self, a):
        rec = self._pool(a)
        name = self.name(a, 'job')
        job = JobRec(name, rec, 'apply')
        cb, ecb, acb = self._callbacks(rec, job)
        targs = (a['task'], a.get('args') or {})
        kw = {'callback': cb, 'error_callback': ecb}
        if self.impl.billiard:
            kw['accept_callback'] = acb
            if a.get('time_limit') is not None:
                kw['timeout'] = a['time_limit']
            if a.get('soft_time_limit') is not None:
                kw['soft_timeout'] = a['soft_time_limit']
        elif a.get('time_limit') is not None or \
                a.get('soft_time_limit') is not None:
            raise Unsupported('no per-job time limits')
        if getattr(rec.pool, 'putlocks', False) and \
                rec.pool._putlock is not None:
            # billiard's own waitforslot step, taken here rather than inside
            # _submit: the pool's hooks need self.lock to name jobs, and a
            # wait for a slot under it would stop the result handler from
            # ever freeing the slot.
            rec.pool._putlock.acquire()
            kw['waitforslot'] = False
        res = self._submit(rec, job, lambda: rec.pool.apply_async(
            bc_tasks.run, targs, **kw))
        if res is None:   # billiard outside RUN: reported as-is
            return {'job': None}
        return {'job': name}

    def op_pool_apply(self, a):
        rec = self._pool(a)
        t = seconds(a.get('timeout'))
        targs = (a['task'], a.get('args') or {})
        return {'value': bounded(lambda: rec.pool.apply(bc_tasks.run, targs),
                                 t, 'apply')}

    def _items(self, a, star):
        task = a['task']
        items = a.get('items') or []
        if star:
            return bc_tasks.run, [(task, it) for it in items]
        return functools.partial(bc_tasks.run_item, task), list(items)

    def _map_async(self, a, star):
        rec = self._pool(a)
        name = self.name(a, 'job')
        job = JobRec(name, rec, 'map')
        cb, ecb, _ = self._callbacks(rec, job)
        fn, items = self._items(a, star)
        meth = rec.pool.starmap_async if star else rec.pool.map_async
        res = self._submit(rec, job, lambda: meth(
            fn, items, a.get('chunksize'), callback=cb, error_callback=ecb))
        return {'job': name if res is not None else None}

    def op_pool_map_async(self, a):
        return self._map_async(a, False)

    def op_pool_starmap_async(self, a):
        return self._map_async(a, True)

    def _map(self, a, star):
        rec = self._pool(a)
        fn, items = self._items(a, star)
        meth = rec.pool.starmap if star else rec.pool.map
        return {'value': bounded(lambda: meth(fn, items, a.get('chunksize')),
                                 seconds(a.get('timeout')), 'map')}

    def op_pool_map(self, a):
        return self._map(a, False)

    def op_pool_starmap(self, a):
        return self._map(a, True)

    def _imap(self, a, unordered):
        rec = self._pool(a)
        name = self.name(a, 'iter')
        fn, items = self._items(a, False)
        meth = rec.pool.imap_unordered if unordered else rec.pool.imap
        cs = a.get('chunksize')
        it = meth(fn, items) if cs is None else meth(fn, items, cs)
        if it is None:
            return {'iter': None}
        self.h[name] = IterRec(name, it)
        return {'iter': name}

    def op_pool_imap(self, a):
        return self._imap(a, False)

    def op_pool_imap_unordered(self, a):
        return self._imap(a, True)

    def op_iter_next(self, a):
        ir = self.get(a, 'iter')
        t = seconds(a.get('timeout'))
        it = ir.it
        if hasattr(it, 'next') and ir.pending is None:
            try:
                return {'value': it.next(t)}
            except self.impl.mod.TimeoutError:
                raise
        # a plain generator (billiard imap with chunksize > 1): next() in a
        # thread, resumed by the next call if this one times out.
        if ir.pending is None:
            box = {'done': threading.Event()}

            def body():
                try:
                    box['value'] = next(it)
                except BaseException as e:  # noqa: B902
                    box['error'] = e
                box['done'].set()
            threading.Thread(target=body, daemon=True).start()
            ir.pending = box
        box = ir.pending
        if not box['done'].wait(t):
            raise DriverTimeout('iter.next: no item within %ss' % t)
        ir.pending = None
        if 'error' in box:
            raise box['error']
        return {'value': box['value']}

    def op_pool_close(self, a):
        self._pool(a).pool.close()
        return {}

    def op_pool_terminate(self, a):
        self._pool(a).pool.terminate()
        return {}

    def op_pool_join(self, a):
        # A timed-out join keeps running in its thread; a later join waits
        # for that same call instead of starting a second, concurrent one
        # (billiard's join is not reentrant: the second one fails EBADF).
        rec = self._pool(a)
        th = getattr(rec, 'join_thread', None)
        if th is None:
            box = {}

            def body():
                try:
                    rec.pool.join()
                except BaseException as e:   # noqa: B902 - relayed below
                    box['error'] = e
            th = threading.Thread(target=body, name='bounded-pool.join',
                                  daemon=True)
            th.box = box
            rec.join_thread = th
            th.start()
        timeout = seconds(a.get('timeout'))
        th.join(None if timeout is None else max(0.0, timeout))
        if th.is_alive():
            raise DriverTimeout('pool.join did not return within %ss' %
                                a.get('timeout'))
        rec.join_thread = None
        if 'error' in th.box:
            raise th.box['error']
        return {}

    def _billiard_only(self, what):
        if not self.impl.billiard:
            raise Unsupported('%s: not in multiprocessing' % what)

    def op_pool_grow(self, a):
        self._billiard_only('grow')
        self._pool(a).pool.grow(int(a.get('n', 1)))
        return {}

    def op_pool_shrink(self, a):
        self._billiard_only('shrink')
        self._pool(a).pool.shrink(int(a.get('n', 1)))
        return {}

    def op_pool_restart(self, a):
        self._billiard_only('restart')
        self._pool(a).pool.restart()
        return {}

    def op_pool_terminate_job(self, a):
        self._billiard_only('terminate_job')
        rec = self._pool(a)
        pid = a.get('pid')
        if a.get('job') is not None:
            job = self.get(a, 'job')
            pid = job.pid
            if pid is None and job.result is not None:
                pid = getattr(job.result, '_worker_pid', None)
            if pid is None:
                raise ValueError('job %s has no worker' % job.name)
        sig = a.get('signal')
        rec.pool.terminate_job(int(pid), bc_tasks._signum(sig)
                               if sig is not None else None)
        return {}

    def op_pool_info(self, a):
        rec = self._pool(a)
        p = rec.pool
        st = p._state
        state = {0: 'RUN', 1: 'CLOSE', 2: 'TERMINATE'}.get(st, str(st))
        pids = [w.pid for w in list(p._pool) if w.pid is not None]
        busy = {}
        for jn, pid in list(rec.busy.items()):
            busy.setdefault(str(pid), []).append(jn)
        # map jobs have no accept_callback: billiard records the ACKing pid
        # of each chunk (a finished chunk's pid stays listed until ready).
        for j in list(self.jobs.values()):
            if j.pool is rec and j.kind == 'map' and j.result is not None \
                    and not j.result.ready() \
                    and hasattr(j.result, 'worker_pids'):
                for pid in set(j.result.worker_pids()):
                    busy.setdefault(str(pid), []).append(j.name)
        return {'state': state, 'pids': pids, 'busy': busy}

    # ===== results =============================================================
    def _job(self, a):
        j = self.get(a, 'job')
        if not isinstance(j, JobRec):
            raise ProtocolError('%r is not a job' % a.get('job'))
        return j

    def op_result_get(self, a):
        j = self._job(a)
        return {'value': j.result.get(seconds(a.get('timeout')))}

    def op_result_wait(self, a):
        j = self._job(a)
        j.result.wait(seconds(a.get('timeout')))
        return {'ready': j.result.ready()}

    def op_result_ready(self, a):
        return {'ready': self._job(a).result.ready()}

    def op_result_successful(self, a):
        return {'successful': self._job(a).result.successful()}

    def op_result_pid(self, a):
        j = self._job(a)
        if not self.impl.billiard:
            raise Unsupported('multiprocessing does not record the worker')
        pid = j.pid or getattr(j.result, '_worker_pid', None)
        return {'pid': pid}

    def _ctx(self, a):
        """The context of the op's start_method (INTERPRETING.md §6), else
        the driver's fork context; never the global default."""
        m = a.get('start_method')
        return self.impl.ctx if m is None else self.impl.mod.get_context(m)

    # ===== contexts and utilities ==============================================
    def op_context_get_start_method(self, a):
        return {'method': self.impl.mod.get_start_method(
            allow_none=bool(a.get('allow_none')))}

    def op_context_set_start_method(self, a):
        self.impl.mod.set_start_method(a.get('method'),
                                       force=bool(a.get('force')))
        return {}

    def op_context_get_all_start_methods(self, a):
        return {'methods': list(self.impl.mod.get_all_start_methods())}

    def op_util_cpu_count(self, a):
        return {'n': self.impl.mod.cpu_count()}

    def op_util_current_process(self, a):
        p = self.impl.mod.current_process()
        return {'name': p.name, 'pid': p.pid}

    def op_util_active_children(self, a):
        kids = self.impl.mod.active_children()
        return {'n': len(kids), 'names': [p.name for p in kids],
                'pids': [p.pid for p in kids]}

    LEVELS = ('SUBDEBUG', 'DEBUG', 'INFO', 'SUBWARNING', 'WARNING', 'ERROR',
              'CRITICAL')

    def _level(self, name):
        import logging
        if name not in self.LEVELS:
            raise ValueError('unknown level %r' % (name,))
        lv = logging.getLevelName(name)
        if not isinstance(lv, int):   # SUBDEBUG/SUBWARNING: billiard's
            lv = {'SUBDEBUG': 5, 'SUBWARNING': 25}[name]
        return lv

    def op_util_log_to_stderr(self, a):
        lv = a.get('level')
        self.impl.mod.log_to_stderr(None if lv is None else self._level(lv))
        return {}

    def op_util_log(self, a):
        """Log through get_logger() with fd 2 captured: the line the
        logger wrote to stderr, or null."""
        import select
        lg = self.impl.mod.get_logger()
        lv = self._level(a.get('level', 'WARNING'))
        sys.stderr.flush()
        r, w = os.pipe()
        saved = os.dup(2)
        try:
            os.dup2(w, 2)
            lg.log(lv, a.get('message', ''))
            for h in lg.handlers:
                h.flush()
            sys.stderr.flush()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(w)
        out = b''
        while select.select([r], [], [], 0)[0]:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            out += chunk
        os.close(r)
        text = out.decode('utf-8', 'replace').rstrip('\n')
        return {'line': text if text else None}

    def op_util_freeze_support(self, a):
        self.impl.mod.freeze_support()
        return {}

    def op_util_allow_connection_pickling(self, a):
        self.impl.mod.allow_connection_pickling()
        return {}

    def op_context_set_executable(self, a):
        path = a.get('path')
        self.impl.mod.set_executable(sys.executable if path is None else path)
        return {}

    PRELOAD = {'marker': 'bc_preload'}

    def op_context_set_forkserver_preload(self, a):
        names = list(a.get('names') or [])
        unknown = [n for n in names if n not in self.PRELOAD]
        if unknown:
            raise ValueError('unknown preload unit(s) %r' % unknown)
        self.impl.mod.set_forkserver_preload([self.PRELOAD[n] for n in names])
        return {}

    # ===== processes ===========================================================
    RESOLVE = ('queue', 'lock', 'event', 'value', 'conn', 'barrier', 'proxy')

    def op_process_start(self, a):
        name = self.name(a, 'process')
        targs = dict(a.get('args') or {})
        for k in self.RESOLVE:
            if k in targs:
                targs[k] = self.h[targs[k]]
        kw = {'target': bc_tasks.target, 'args': (a['target'], targs)}
        if a.get('name') is not None:
            kw['name'] = a['name']
        p = self._ctx(a).Process(**kw)
        if a.get('daemon') is not None:
            p.daemon = bool(a['daemon'])
        p.start()
        self.processes.append(p)
        self.h[name] = p
        return {'process': name, 'pid': p.pid, 'name': p.name}

    def op_process_join(self, a):
        p = self.get(a, 'process')
        p.join(seconds(a.get('timeout')))
        return {'exitcode': p.exitcode, 'alive': p.is_alive()}

    def op_process_terminate(self, a):
        self.get(a, 'process').terminate()
        return {}

    def op_process_kill(self, a):
        p = self.get(a, 'process')
        if hasattr(p, 'kill'):
            p.kill()
        else:   # billiard 4.1's Process has no kill()
            os.kill(p.pid, signal.SIGKILL)
        return {}

    def op_process_info(self, a):
        p = self.get(a, 'process')
        return {'pid': p.pid, 'alive': p.is_alive(), 'exitcode': p.exitcode,
                'name': p.name, 'daemon': p.daemon}

    # ===== pipes ===============================================================
    def op_pipe_new(self, a):
        name = self.name(a, 'pipe')
        duplex = a.get('duplex', True)
        nb = {k: bool(a[k]) for k in ('rnonblock', 'wnonblock') if a.get(k)}
        if nb and not self.impl.billiard:
            raise Unsupported('Pipe(rnonblock, wnonblock): not in '
                              'multiprocessing')
        c1, c2 = self.impl.ctx.Pipe(bool(duplex), **nb)
        self.h[name + '.a'], self.h[name + '.b'] = c1, c2
        return {'a': name + '.a', 'b': name + '.b'}

    def op_conn_send_bytes(self, a):
        c = self.get(a, 'conn')
        data = bc_tasks.encode(a.get('data', ''))
        off = a.get('offset', 0) or 0
        size = a.get('size')
        c.send_bytes(data, off, size)
        return {}

    def _data(self, a, b):
        if a.get('digest'):
            import hashlib
            return {'len': len(b), 'sha256': hashlib.sha256(b).hexdigest()}
        return b.decode('utf-8', 'replace')

    def op_conn_recv_bytes(self, a):
        c = self.get(a, 'conn')
        t = a.get('timeout')
        if t is not None and not c.poll(float(t)):
            raise DriverTimeout('recv_bytes: nothing within %ss' % t)
        b = c.recv_bytes(a.get('maxlength'))
        return {'data': self._data(a, b)}

    def op_conn_send(self, a):
        c = self.get(a, 'conn')
        c.send(bc_tasks.payload(a['data']) if 'data' in a else a.get('value'))
        return {}

    def op_conn_recv(self, a):
        c = self.get(a, 'conn')
        t = a.get('timeout')
        if t is not None and not c.poll(float(t)):
            raise DriverTimeout('recv: nothing within %ss' % t)
        v = c.recv()
        return {'value': bc_tasks.digest(v) if a.get('digest') else v}

    def op_conn_recv_bytes_into(self, a):
        c = self.get(a, 'conn')
        buf = bytearray(int(a.get('size', 0)))
        n = c.recv_bytes_into(buf)
        return {'n': n, 'data': self._data(a, bytes(buf[:n]))}

    def op_conn_poll(self, a):
        t = a.get('timeout', 0)
        return {'ready': self.get(a, 'conn').poll(seconds(t))}

    def op_conn_close(self, a):
        self.get(a, 'conn').close()
        return {}

    # ===== queues ==============================================================
    def op_queue_new(self, a):
        name = self.name(a, 'queue')
        kind = a.get('kind', 'Queue')
        ctx = self._ctx(a)   # objects for a spawn child come from its context
        if kind == 'SimpleQueue':
            q = ctx.SimpleQueue()
        elif kind in ('Queue', 'JoinableQueue'):
            q = getattr(ctx, kind)(a.get('maxsize', 0) or 0)
        else:
            raise Unsupported('queue kind %s' % kind)
        self.h[name] = q
        return {'queue': name}

    def op_queue_put(self, a):
        q = self.get(a, 'queue')
        v = bc_tasks.payload(a['data']) if 'data' in a else a.get('value')
        if type(q).__name__ == 'SimpleQueue':
            q.put(v)
            return {}
        q.put(v, a.get('block', True), seconds(a.get('timeout')))
        return {}

    def op_queue_get(self, a):
        q = self.get(a, 'queue')
        t = seconds(a.get('timeout'))
        if type(q).__name__ == 'SimpleQueue':
            if not a.get('block', True):
                t = 0.0
            if t is not None and not q._reader.poll(t):
                raise stdqueue.Empty()
            v = q.get()
        else:
            v = q.get(a.get('block', True), t)
        return {'value': bc_tasks.digest(v) if a.get('digest') else v}

    def op_queue_qsize(self, a):
        return {'n': self.get(a, 'queue').qsize()}

    def op_queue_empty(self, a):
        return {'empty': self.get(a, 'queue').empty()}

    def op_queue_full(self, a):
        return {'full': self.get(a, 'queue').full()}

    def op_queue_close(self, a):
        self.get(a, 'queue').close()
        return {}

    def op_queue_task_done(self, a):
        self.get(a, 'queue').task_done()
        return {}

    def op_queue_join(self, a):
        q = self.get(a, 'queue')
        bounded(q.join, seconds(a.get('timeout')), 'queue.join')
        return {}

    # ===== synchronisation ======================================================
    def op_lock_new(self, a):
        name = self.name(a, 'lock')
        kind = a.get('kind', 'Lock')
        ctx = self._ctx(a)   # objects for a spawn child come from its context
        if kind in ('Lock', 'RLock'):
            lk = getattr(ctx, kind)()
        elif kind in ('Semaphore', 'BoundedSemaphore'):
            lk = getattr(ctx, kind)(a.get('value', 1))
        else:
            raise Unsupported('lock kind %s' % kind)
        self.h[name] = lk
        return {'lock': name}

    def op_lock_acquire(self, a):
        lk = self.get(a, 'lock')
        block = a.get('block', True)
        t = seconds(a.get('timeout'))
        got = lk.acquire(block, t) if block else lk.acquire(False)
        return {'acquired': bool(got)}

    def op_lock_release(self, a):
        self.get(a, 'lock').release()
        return {}

    def op_event_new(self, a):
        name = self.name(a, 'event')
        self.h[name] = self._ctx(a).Event()
        return {'event': name}

    def op_event_set(self, a):
        self.get(a, 'event').set()
        return {}

    def op_event_clear(self, a):
        self.get(a, 'event').clear()
        return {}

    def op_event_is_set(self, a):
        return {'set': self.get(a, 'event').is_set()}

    def op_event_wait(self, a):
        return {'set': bool(self.get(a, 'event').wait(
            seconds(a.get('timeout'))))}

    def op_condition_new(self, a):
        name = self.name(a, 'condition')
        lk = self.h[a['lock']] if a.get('lock') else None
        self.h[name] = self._ctx(a).Condition(lk)
        return {'condition': name}

    def op_condition_acquire(self, a):
        self.get(a, 'condition').acquire()
        return {}

    def op_condition_release(self, a):
        self.get(a, 'condition').release()
        return {}

    def op_condition_wait(self, a):
        c = self.get(a, 'condition')
        return {'notified': bool(c.wait(seconds(a.get('timeout'))))}

    def op_condition_notify(self, a):
        n = a.get('n', 1)
        c = self.get(a, 'condition')
        c.notify() if n == 1 else c.notify(n)   # billiard: notify() has no n
        return {}

    def op_condition_notify_all(self, a):
        self.get(a, 'condition').notify_all()
        return {}

    def op_barrier_new(self, a):
        name = self.name(a, 'barrier')
        self.h[name] = self._ctx(a).Barrier(
            int(a['parties']), None, seconds(a.get('timeout')))
        return {'barrier': name}

    def op_barrier_wait(self, a):
        return {'index': self.get(a, 'barrier').wait(
            seconds(a.get('timeout')))}

    def op_barrier_abort(self, a):
        self.get(a, 'barrier').abort()
        return {}

    def op_barrier_reset(self, a):
        self.get(a, 'barrier').reset()
        return {}

    def op_barrier_info(self, a):
        b = self.get(a, 'barrier')
        return {'parties': b.parties, 'n_waiting': b.n_waiting,
                'broken': b.broken}

    def op_value_new(self, a):
        name = self.name(a, 'value')
        lock = a.get('lock', True)
        self.h[name] = self._ctx(a).Value(a.get('typecode', 'i'),
                                           a.get('value', 0), lock=lock)
        return {'value': name}

    def op_value_get(self, a):
        return {'value': self.get(a, 'value').value}

    def op_value_set(self, a):
        self.get(a, 'value').value = a['set']
        return {}

    def op_array_new(self, a):
        name = self.name(a, 'array')
        init = a.get('init')
        if init is None:
            init = int(a.get('size', 0))
        self.h[name] = self._ctx(a).Array(a.get('typecode', 'i'), init,
                                           lock=a.get('lock', True))
        return {'array': name}

    def op_array_get(self, a):
        return {'value': list(self.get(a, 'array')[:])}

    def op_array_set(self, a):
        self.get(a, 'array')[int(a['index'])] = a['set']
        return {}


    # ===== managers ============================================================
    def _sync_manager(self):
        return bc_tasks.manager_class()

    def op_manager_start(self, a):
        name = self.name(a, 'manager')
        key = a.get('authkey')
        m = self._sync_manager()(
            authkey=None if key is None else key.encode('utf-8'),
            ctx=self.impl.ctx)
        m.start()
        self.managers.append(m)
        self.h[name] = m
        return {'manager': name, 'address': str(m.address),
                'pid': m._process.pid}

    def op_manager_connect(self, a):
        name = self.name(a, 'manager')
        m = self.get(a, 'manager')
        key = a.get('authkey')
        key = bytes(m._authkey) if key is None else key.encode('utf-8')
        c = self._sync_manager()(address=m.address, authkey=key)
        c.connect()
        self.h[name] = c
        return {'manager': name}

    def op_manager_shutdown(self, a):
        self.get(a, 'manager').shutdown()
        return {}

    def op_manager_kill(self, a):
        m = self.get(a, 'manager')
        p = getattr(m, '_process', None)
        if p is None or p.pid is None:
            raise ValueError('this handle did not start a manager')
        sig = bc_tasks._signum(a.get('signal', 'SIGKILL'))
        os.kill(p.pid, sig)
        return {'pid': p.pid}

    def op_manager_new(self, a):
        m = self.get(a, 'manager')
        typeid = a.get('typeid')
        if typeid not in bc_tasks.PROXY_METHODS:
            raise KeyError(typeid)
        name = self.name(a, 'proxy')
        ta = a.get('args') or {}
        if typeid == 'list':
            px = m.list(ta.get('init', []))
        elif typeid == 'Value':
            px = m.Value(ta.get('typecode', 'i'), ta.get('value', 0))
        elif typeid in ('Queue', 'JoinableQueue'):
            px = getattr(m, typeid)(ta.get('maxsize', 0) or 0)
        elif typeid in ('Semaphore', 'BoundedSemaphore'):
            px = getattr(m, typeid)(ta.get('value', 1))
        elif typeid == 'Barrier':
            px = m.Barrier(int(ta.get('parties', 1)), None,
                           seconds(ta.get('timeout')))
        elif typeid == 'Array':
            init = ta.get('init')
            px = m.Array(ta.get('typecode', 'i'),
                         init if init is not None else [0] * int(ta['size']))
        elif typeid == 'Counter':
            px = m.Counter(ta.get('start', 0))
        else:
            px = getattr(m, typeid)()
        self.h[name] = px
        return {'proxy': name}

    def op_proxy_call(self, a):
        px = self.get(a, 'proxy')
        return {'value': bc_tasks.proxy_call(px, a.get('method'),
                                              a.get('args') or [])}

    # ===== clock and faults ====================================================
    def op_clock_jump(self, a):
        raise Unsupported('no injectable monotonic clock in %s' %
                          self.impl.port)

    def op_fault_arm(self, a):
        raise Unsupported('no libfiu points in %s' % self.impl.port)

    op_fault_disarm = op_fault_arm

    def op_clock_worker_offset(self, a):
        if self.pools or self.processes:
            raise ValueError('clock.worker_offset must precede pool.new')
        libc = ctypes.CDLL(None, use_errno=True)
        if not self.timens:
            if libc.unshare(CLONE_NEWTIME) != 0:
                raise Unsupported('unshare(CLONE_NEWTIME): %s' %
                                  os.strerror(ctypes.get_errno()))
            self.timens = True
        s = float(a.get('seconds', 0))
        sec = int(s // 1)
        nsec = int(round((s - sec) * 1e9))
        try:
            with open('/proc/self/timens_offsets', 'w') as f:
                f.write('monotonic %d %d\n' % (sec, nsec))
        except OSError as e:
            raise Unsupported('timens_offsets: %s' % e)
        return {}

    # ===== teardown ============================================================
    def teardown(self):
        def stop():
            for rec in list(self.pools.values()):
                try:
                    rec.pool.terminate()
                except Exception as e:
                    log('terminate: %r' % e)
        th = threading.Thread(target=stop, daemon=True)
        th.start()
        th.join(2.0)
        if th.is_alive():
            log('pool terminate wedged; killing workers')
        for m in self.managers:
            p = getattr(m, '_process', None)
            if p is not None and p.pid is not None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except OSError:
                    pass
        pids = set(self.worker_pids)
        for rec in self.pools.values():
            for w in list(rec.pool._pool):
                if w.pid is not None:
                    pids.add(w.pid)
        for p in self.processes:
            if p.pid is not None:
                pids.add(p.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # reap what is ours
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)


def _stdin_lines():
    """Lines from fd 0 read with os.read: sys.stdin's buffer lock, held by
    a blocked readline(), would be inherited locked by workers forked from
    pool threads, and their start-up sys.stdin.close() would hang."""
    buf = b''
    while True:
        i = buf.find(b'\n')
        if i >= 0:
            line, buf = buf[:i + 1], buf[i + 1:]
            yield line
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            if buf:
                yield buf
            return
        buf += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--impl', choices=['billiard', 'multiprocessing'],
                    default='billiard')
    opts = ap.parse_args()
    try:
        impl = Impl(opts.impl)
    except ImportError as e:
        log('cannot import %s: %s' % (opts.impl, e))
        os._exit(77)
    # Protocol output on a private fd; fd 1 becomes stderr so that anything
    # printed by a task or a library cannot corrupt the protocol.
    global _out_fd
    _out_fd = os.dup(1)
    os.dup2(2, 1)
    # Children must not hold the protocol channel: if the driver dies, the
    # harness has to see EOF even while workers live on.
    os.register_at_fork(after_in_child=lambda: os.close(_out_fd))
    drv = Driver(impl)
    drv.hello()
    for line in _stdin_lines():
        if not line.strip():
            continue
        mid = None
        try:
            msg = json.loads(line)
            mid = msg.get('id')
            if msg.get('v') != PROTOCOL:
                raise ProtocolError('protocol version %r' % msg.get('v'))
            res = drv.handle(msg)
            reply = {'v': PROTOCOL, 'id': mid, 'ok': True,
                     'result': res or {}}
        except Exception as e:
            if not isinstance(e, (Unsupported, ProtocolError)):
                log('%s -> %s' % (line.decode(errors='replace').strip()[:200],
                                  ''.join(traceback.format_exception_only(
                                      type(e), e)).strip()))
            reply = {'v': PROTOCOL, 'id': mid, 'ok': False,
                     'error': error_of(e)}
        _emit(reply)
    drv.teardown()
    os._exit(0)


if __name__ == '__main__':
    main()
