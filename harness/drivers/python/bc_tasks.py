"""Task catalogue and process targets of the billiard-conform driver protocol
(harness/INTERPRETING.md §5), shared by the python-billiard and
python-multiprocessing ports.

Everything a worker runs lives here, at module level, so it pickles by
reference and fork workers (which inherit this module) find it.  The driver
calls `set_impl()` before creating anything, so tasks raise the soft-limit
exception of the implementation under test.
"""
import ctypes
import os
import signal
import sys
import time

_SoftTimeLimitExceeded = None   # billiard's class; None under multiprocessing
_tasks_run = 0                  # per worker process: the `count` task
_init_ran = False
_hoard = []                     # `alloc` keeps its memory for the worker's life


def set_impl(impl):
    global _SoftTimeLimitExceeded
    # spawn/forkserver children import this module afresh: the environment
    # (inherited) tells them which implementation they run under.
    os.environ['BC_TASKS_IMPL'] = impl
    if impl == 'billiard':
        from billiard.exceptions import SoftTimeLimitExceeded
        _SoftTimeLimitExceeded = SoftTimeLimitExceeded


def __getattr__(name):
    """`fail` may raise any type name.  Unknown names become Exception
    subclasses created on demand here, so pickle finds `bc_tasks.<name>` in
    the parent as well as in the worker."""
    if name.startswith('__') or not name[:1].isupper():
        raise AttributeError(name)
    cls = type(name, (Exception,), {'__module__': __name__})
    globals()[name] = cls
    return cls


def exit_hook(fd, pool, pid, exitcode):
    """Pool(on_process_exit=...): runs in the worker as it exits; one
    line (atomic, < PIPE_BUF) to the driver's relay."""
    os.write(fd, b'%s %d %d\n' % (pool.encode(), pid, exitcode or 0))


def _exc_type(name):
    # The implementation's own exception classes first (billiard's
    # ProcessError family, CoroStop, WorkerLostError...), then builtins.
    impl = os.environ.get('BC_TASKS_IMPL')
    for modname in (('billiard.exceptions', 'billiard') if impl == 'billiard'
                    else ('multiprocessing',) if impl else ()):
        try:
            mod = __import__(modname, fromlist=['_'])
        except ImportError:
            continue
        t = getattr(mod, name, None)
        if isinstance(t, type) and issubclass(t, BaseException):
            return t
    import builtins
    t = getattr(builtins, name, None)
    if isinstance(t, type) and issubclass(t, BaseException):
        return t
    return getattr(sys.modules[__name__], name)


def _segv():
    ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGSEGV)   # not reached


def _signum(name):
    if isinstance(name, int):
        return name
    return int(getattr(signal, name))


def _sleep(seconds):
    deadline = time.monotonic() + float(seconds)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(left)


# -- tasks -------------------------------------------------------------------

def t_noop(a):
    return None


def t_echo(a):
    return a.get('value')


def t_square(a):
    return a['x'] * a['x']


def t_add(a):
    return a['a'] + a['b']


def t_pid(a):
    return os.getpid()


def t_sleep(a):
    _sleep(a.get('seconds', 0))
    return None


def t_busy(a):
    deadline = time.monotonic() + float(a.get('seconds', 0))
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return None


def t_soft_aware(a):
    if _SoftTimeLimitExceeded is None:
        _sleep(a.get('seconds', 0))
        return a.get('value')
    try:
        _sleep(a.get('seconds', 0))
    except _SoftTimeLimitExceeded:
        return {'soft': True}
    return a.get('value')


def t_fail(a):
    raise _exc_type(a.get('type', 'RuntimeError'))(a.get('message', ''))


def t_exit(a):
    os._exit(int(a.get('code', 0)))


def t_kill_self(a):
    os.kill(os.getpid(), _signum(a.get('signal', 'SIGKILL')))
    time.sleep(5)   # a handled signal may let the task go on
    return None


def t_crash(a):
    _segv()


def t_alloc(a):
    n = int(a.get('mib', 1)) * 1024 * 1024
    buf = bytearray(n)
    for i in range(0, n, 4096):
        buf[i] = 1
    _hoard.append(buf)
    return None


def t_sleep_echo(a):
    _sleep(a.get('seconds', 0))
    return a.get('value')


def t_count(a):
    return _tasks_run


def t_init_ran(a):
    return _init_ran


TASKS = {
    'noop': t_noop, 'echo': t_echo, 'square': t_square, 'add': t_add,
    'pid': t_pid, 'sleep': t_sleep, 'busy': t_busy,
    'soft_aware': t_soft_aware, 'fail': t_fail, 'exit': t_exit,
    'kill_self': t_kill_self, 'crash': t_crash, 'alloc': t_alloc,
    'sleep_echo': t_sleep_echo, 'count': t_count, 'init_ran': t_init_ran,
}


def run(task, args):
    """The one function the pool runs: `task` by name with its args object."""
    global _tasks_run
    _tasks_run += 1
    return TASKS[task](args or {})


def run_item(task, args):
    """map/imap: functools.partial(run_item, task) applied to each item."""
    return run(task, args)


# -- initializers ------------------------------------------------------------

def init_ok(a):
    global _init_ran
    _init_ran = True


def init_fail(a):
    raise _exc_type(a.get('type', 'RuntimeError'))(a.get('message', ''))


def init_exit(a):
    os._exit(int(a.get('code', 0)))


def init_crash(a):
    _segv()


INITIALIZERS = {'init_ok': init_ok, 'init_fail': init_fail,
                'init_exit': init_exit, 'init_crash': init_crash}


def initializer(name, args):
    INITIALIZERS[name](args or {})


# -- process targets -----------------------------------------------------------
# The driver resolves handle names (queue, lock, event, value, conn, barrier)
# to the objects before start; fork children inherit them.

def p_exit(a):
    os._exit(int(a.get('code', 0)))


def p_sleep(a):
    _sleep(a.get('seconds', 0))


def p_kill_self(a):
    os.kill(os.getpid(), _signum(a.get('signal', 'SIGKILL')))
    time.sleep(5)


def p_queue_put(a):
    q = a['queue']
    vals = list(a.get('values', []))
    if 'data' in a:            # a generated (large) string item, put last
        vals.append(payload(a['data']))
    for v in vals:
        if a.get('delay'):
            _sleep(a['delay'])
        q.put(v)
    if hasattr(q, 'close') and hasattr(q, 'join_thread'):
        q.close()
        q.join_thread()   # flush the feeder before exiting


def p_queue_get(a):
    q = a['queue']
    want = a.get('sha256')
    for _ in range(int(a.get('count', 1))):
        v = q.get()
        if want is not None and not (isinstance(v, str) and
                                     digest(v)['sha256'] == want):
            os._exit(3)


def p_lock_hold(a):
    lk = a['lock']
    lk.acquire()
    _sleep(a.get('seconds', 0))
    lk.release()


def p_lock_hold_die(a):
    a['lock'].acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def p_event_wait(a):
    if not a['event'].wait(a.get('timeout')):
        os._exit(1)


def p_value_add(a):
    v = a['value']
    for _ in range(int(a.get('n', 1))):
        with v.get_lock():
            v.value += 1


def p_conn_send(a):
    if 'obj' in a:             # an object: Connection.send
        a['conn'].send(a['obj'])
    elif a.get('as_object'):   # a generated string, as an object
        a['conn'].send(payload(a.get('data', '')))
    else:
        a['conn'].send_bytes(encode(a.get('data', '')))


def p_conn_recv(a):
    a['conn'].recv_bytes()


def p_barrier_wait(a):
    try:
        a['barrier'].wait(a.get('timeout'))
    except Exception:
        os._exit(1)


# -- manager proxies (INTERPRETING.md §6, "Managers") --------------------------
# proxy.call whitelist: typeid -> methods.
PROXY_METHODS = {
    'dict': ('__getitem__', '__setitem__', '__delitem__', '__len__',
             '__contains__', 'get', 'keys'),
    'list': ('append', '__getitem__', '__setitem__', '__len__'),
    'Namespace': ('getattr', 'setattr'),
    'Queue': ('put', 'get', 'qsize', 'empty'),
    'JoinableQueue': ('put', 'get', 'qsize', 'empty', 'task_done', 'join'),
    'Lock': ('acquire', 'release'),
    'RLock': ('acquire', 'release'),
    'Semaphore': ('acquire', 'release'),
    'BoundedSemaphore': ('acquire', 'release'),
    'Condition': ('acquire', 'release', 'wait', 'notify', 'notify_all'),
    'Barrier': ('wait', 'abort', 'reset', 'parties', 'n_waiting', 'broken'),
    'Event': ('set', 'clear', 'is_set', 'wait'),
    'Value': ('get', 'set'),
    'Array': ('__getitem__', '__setitem__', '__len__'),
    'Counter': ('incr', 'get'),
}


class Counter:
    """The registered user type of the protocol (manager.new typeid
    Counter): BaseManager.register('Counter', Counter)."""

    def __init__(self, start=0):
        self.value = start

    def incr(self, n=1):
        self.value += n
        return self.value

    def get(self):
        return self.value


_manager_class = None


def manager_class():
    """SyncManager with Counter registered (a subclass, as billiard's
    register() is meant to be used); importable for spawn children."""
    global _manager_class
    if _manager_class is None:
        import importlib
        base = importlib.import_module(
            ('billiard' if os.environ.get('BC_TASKS_IMPL') == 'billiard'
             else 'multiprocessing') +
            '.managers').SyncManager

        class BCManager(base):
            pass
        BCManager.register('Counter', Counter)
        _manager_class = BCManager
    return _manager_class


def proxy_call(px, method, args):
    typeid = px._token.typeid
    if method not in PROXY_METHODS.get(typeid, ()):
        raise AttributeError('%s proxy has no method %s' % (typeid, method))
    if typeid == 'Namespace':
        if method == 'getattr':
            return getattr(px, args[0])
        setattr(px, args[0], args[1])
        return None
    attr = getattr(px, method)
    return attr(*args) if callable(attr) else attr   # Barrier properties


def p_proxy_call(a):
    if a.get('calls') is not None:
        for c in a['calls']:
            proxy_call(a['proxy'], c['method'], c.get('args') or [])
        return
    for _ in range(int(a.get('times', 1))):
        proxy_call(a['proxy'], a['method'], a.get('args') or [])


def p_proxy_add(a):
    v, lk = a['proxy'], a['lock']
    for _ in range(int(a.get('n', 1))):
        lk.acquire()
        v.set(v.get() + 1)
        lk.release()


def p_preload_marked(a):
    """Exit 0 when the preload unit `marker` (module bc_preload) was
    loaded before this process started running its target."""
    # sys.exit, not os._exit: billiard 4.1's forkserver reports only exit
    # codes that return through spawn._main (see the expectations file).
    sys.exit(0 if 'bc_preload' in sys.modules else 1)


def p_soft_handler(a):
    """Install billiard's soft_timeout_sighandler for SIGUSR1, set the
    `event` (ready), then sleep: exit 0 when SoftTimeLimitExceeded
    interrupts the sleep, 1 when it never comes."""
    from billiard.pool import soft_timeout_sighandler
    from billiard.exceptions import SoftTimeLimitExceeded
    signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
    a['event'].set()
    try:
        _sleep(a.get('seconds', 5))
    except SoftTimeLimitExceeded:
        os._exit(0)
    os._exit(1)


TARGETS = {
    'preload_marked': p_preload_marked, 'soft_handler': p_soft_handler,
    'proxy_call': p_proxy_call, 'proxy_add': p_proxy_add,
    'exit': p_exit, 'sleep': p_sleep, 'kill_self': p_kill_self,
    'queue_put': p_queue_put, 'queue_get': p_queue_get,
    'lock_hold': p_lock_hold, 'lock_hold_die': p_lock_hold_die,
    'event_wait': p_event_wait, 'value_add': p_value_add,
    'conn_send': p_conn_send, 'conn_recv': p_conn_recv,
    'barrier_wait': p_barrier_wait,
}


def target(name, args):
    TARGETS[name](args)


def payload(data):
    """A generated string object (INTERPRETING.md §5 `data`): a string or
    {"repeat": s, "n": N}."""
    if isinstance(data, dict) and 'repeat' in data:
        return str(data['repeat']) * int(data['n'])
    return data if isinstance(data, str) else str(data)


def digest(v):
    """`digest: true` replies: a string as {len, sha256} of its UTF-8
    bytes; any other value unchanged."""
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
    elif isinstance(v, str):
        b = v.encode('utf-8')
    else:
        return v
    import hashlib
    return {'len': len(b), 'sha256': hashlib.sha256(b).hexdigest()}


def encode(data):
    """Protocol byte payloads: a string, or {"repeat": s, "n": N}."""
    if isinstance(data, dict) and 'repeat' in data:
        return (str(data['repeat']) * int(data['n'])).encode('utf-8')
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return str(data).encode('utf-8')


if os.environ.get('BC_TASKS_IMPL') and _SoftTimeLimitExceeded is None:
    set_impl(os.environ['BC_TASKS_IMPL'])
