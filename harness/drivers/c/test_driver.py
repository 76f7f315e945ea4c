#!/usr/bin/env python3
"""Smoke test of bc-driver-c (protocol v1): hello, a pool, a job, a worker
killed from outside, close/join, a pipe, then EOF -> exit 0.

Usage: test_driver.py path/to/bc-driver-c [scenarios/features.txt]
(std-lib only; meson suite driver)
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

DEADLINE = 40.0


class Driver:
    def __init__(self, exe):
        self.p = subprocess.Popen([exe], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, bufsize=0,
                                  start_new_session=True)
        self.buf = b''
        self.events = []
        self.nid = 0
        self.t0 = time.monotonic()

    def line(self, timeout):
        end = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError('no line from the driver in time')
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError('driver closed stdout')
                self.buf += chunk
        ln, self.buf = self.buf.split(b'\n', 1)
        msg = json.loads(ln)
        assert msg.get('v') == 1, msg
        return msg

    def cmd(self, op, _wait=15.0, **args):
        self.nid += 1
        self.p.stdin.write((json.dumps({'v': 1, 'id': self.nid, 'op': op,
                                        'args': args}) + '\n').encode())
        while True:
            m = self.line(_wait)
            if 'event' in m:
                self.events.append(m)
                continue
            assert m.get('id') == self.nid, m
            return m

    def ok(self, op, **args):
        m = self.cmd(op, **args)
        assert m['ok'], (op, m)
        return m['result']

    def wait_event(self, name, timeout=10.0, **match):
        end = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e['event'] == name and all(e.get(k) == v
                                              for k, v in match.items()):
                    return e
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError('no %s %r event' % (name, match))
            m = self.line(left)
            assert 'event' in m, m
            self.events.append(m)


def main():
    exe = sys.argv[1]
    d = Driver(exe)
    hello = d.line(10)['hello']
    assert hello['port'] == 'c' and hello['protocol'] == 1, hello
    assert hello['impl'].startswith('libbilliard '), hello
    assert 'pool' in hello['features'] and 'echo' in hello['tasks'], hello
    if len(sys.argv) > 2:   # every announced feature must be a known name
        with open(sys.argv[2]) as f:
            known = {ln.split()[0] for ln in f
                     if ln.strip() and not ln.startswith('#')}
        unknown = set(hello['features']) - known
        assert not unknown, 'features not in features.txt: %s' % unknown

    r = d.ok('pool.new', processes=2, **{'as': 'p'})
    assert r['pool'] == 'p' and len(r['pids']) == 2, r

    assert d.ok('pool.apply_async', pool='p', task='echo',
                args={'value': [1, 'two']}, **{'as': 'j1'}) == {'job': 'j1'}
    assert d.ok('result.get', job='j1', timeout=10) == {'value': [1, 'two']}
    d.wait_event('job.callback', job='j1')
    assert d.ok('result.successful', job='j1') == {'successful': True}

    m = d.cmd('pool.apply_async', pool='p', task='fail',
              args={'type': 'KeyError', 'message': 'boom'}, **{'as': 'jf'})
    assert m['ok'], m
    m = d.cmd('result.get', job='jf', timeout=10)
    assert not m['ok'] and m['error']['type'] == 'KeyError', m
    assert m['error']['message'] == 'boom', m

    # a busy worker killed from outside fails exactly its job
    d.ok('pool.apply_async', pool='p', task='sleep', args={'seconds': 30},
         **{'as': 'slow'})
    acc = d.wait_event('job.accepted', job='slow')
    info = d.ok('pool.info', pool='p')
    assert info['state'] == 'RUN', info
    assert info['busy'].get(str(acc['pid'])) == ['slow'], info
    os.kill(acc['pid'], signal.SIGKILL)
    m = d.cmd('result.get', job='slow', timeout=10)
    assert not m['ok'] and m['error']['type'] == 'WorkerLostError', m
    assert 'signal 9 (SIGKILL)' in m['error']['message'], m
    down = d.wait_event('worker.down', pid=acc['pid'])
    assert down['exitcode'] == -9, down

    # a short get times out without consuming anything
    d.ok('pool.apply_async', pool='p', task='sleep_echo',
         args={'seconds': 0.5, 'value': 7}, **{'as': 'late'})
    m = d.cmd('result.get', job='late', timeout=0.01)
    assert not m['ok'] and m['error']['type'] == 'TimeoutError', m
    assert d.ok('result.get', job='late', timeout=10) == {'value': 7}

    assert d.ok('pool.map', pool='p', task='square',
                items=[{'x': i} for i in range(5)],
                timeout=10) == {'value': [0, 1, 4, 9, 16]}
    m = d.cmd('pool.join', pool='p', timeout=1)
    assert not m['ok'] and m['error']['type'] == 'AssertionError', m
    d.ok('pool.close', pool='p')
    d.ok('pool.join', pool='p', timeout=10)
    assert d.ok('pool.info', pool='p')['state'] == 'CLOSE'
    m = d.cmd('pool.apply_async', pool='p', task='noop')
    assert not m['ok'] and m['error']['type'] == 'ValueError', m

    # threads=false: the driver steps the pool itself; events still flow
    d.ok('pool.new', processes=1, threads=False, **{'as': 'q'})
    d.ok('pool.apply_async', pool='q', task='sleep_echo',
         args={'seconds': 30, 'value': 1}, **{'as': 'qj'})
    acc = d.wait_event('job.accepted', job='qj')
    os.kill(acc['pid'], signal.SIGKILL)
    m = d.cmd('result.get', job='qj', timeout=10)
    assert not m['ok'] and m['error']['type'] == 'WorkerLostError', m
    d.wait_event('worker.down', pool='q', pid=acc['pid'])
    assert d.ok('pool.apply', pool='q', task='add', args={'a': 2, 'b': 3},
                timeout=10) == {'value': 5}
    d.ok('pool.close', pool='q')
    d.ok('pool.join', pool='q', timeout=10)

    # a pipe and a process target
    d.ok('pipe.new', duplex=False, **{'as': 'x'})
    d.ok('process.start', target='conn_send',
         args={'conn': 'x.b', 'data': 'hi'}, **{'as': 'pr'})
    assert d.ok('conn.recv_bytes', conn='x.a', timeout=10) == {'data': 'hi'}
    r = d.ok('process.join', process='pr', timeout=10)
    assert r == {'exitcode': 0, 'alive': False}, r

    # start methods: spawn/forkserver re-execute the driver for a
    # self-contained target or one given its objects (queue, lock, event,
    # value, barrier, conn) as process handles
    assert hello['start_methods'] == ['fork', 'spawn', 'forkserver'], hello
    for meth, code in (('spawn', 5), ('forkserver', 6)):
        r = d.ok('process.start', target='exit', args={'code': code},
                 start_method=meth, **{'as': 'sm-' + meth})
        assert r['pid'] > 0, r
        r = d.ok('process.join', process='sm-' + meth, timeout=10)
        assert r == {'exitcode': code, 'alive': False}, (meth, r)
        # a connection handed to the child as a process handle
        d.ok('process.start', target='conn_send',
             args={'conn': 'x.b', 'data': meth}, start_method=meth,
             **{'as': 'cs-' + meth})
        assert d.ok('conn.recv_bytes', conn='x.a', timeout=10) == {'data': meth}
        r = d.ok('process.join', process='cs-' + meth, timeout=10)
        assert r == {'exitcode': 0, 'alive': False}, (meth, r)
        # pools start spawn/forkserver workers now
        r = d.ok('pool.new', processes=1, start_method=meth,
                 **{'as': 'pool-' + meth})
        d.ok('pool.close', pool='pool-' + meth)
        d.ok('pool.join', pool='pool-' + meth, timeout=10)
        # a queue handed to the child as a process handle
        d.ok('queue.new', kind='Queue', **{'as': 'q-' + meth})
        d.ok('process.start', target='queue_put',
             args={'queue': 'q-' + meth, 'values': [meth]},
             start_method=meth, **{'as': 'qp-' + meth})
        r = d.ok('queue.get', queue='q-' + meth, timeout=10)
        assert r['value'] == meth, r
        r = d.ok('process.join', process='qp-' + meth, timeout=10)
        assert r == {'exitcode': 0, 'alive': False}, (meth, r)
    assert d.ok('util.current_process')['name'] == 'MainProcess'
    assert d.ok('util.cpu_count')['n'] >= 1
    assert d.ok('util.active_children')['n'] == 0

    m = d.cmd('no.such.op')
    assert not m['ok'] and m['error']['type'] == 'Unsupported', m

    d.p.stdin.close()
    rc = d.p.wait(timeout=10)
    assert rc == 0, rc
    print('bc-driver-c smoke test: ok (%.1fs)' % (time.monotonic() - d.t0))


if __name__ == '__main__':
    main()
