"""bench/run.py: the ci/bench runner (Python 3 standard library only).

Runs every metric for libbilliard (bench_libbilliard), billiard and
multiprocessing (bench/py_bench.py under /usr/bin/python3, fork context) and
the raw-C floor (bench_floor), in rounds with the implementations in an
order rotated per metric and round; takes medians, and ratios WITHIN each
round then their median; checks the goals; prints a table, writes JSON and
(unless --no-docs / --quick) docs/performance.md with SVG charts.

Invoked by ci/bench, which builds first. Everything it needs is in the
repository (no /work/shared at run time).
"""
import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = '/usr/bin/python3'
IMPLS = ['ours', 'billiard', 'mp', 'floor']
NAMES = {'ours': 'libbilliard', 'billiard': 'billiard 4.1', 'mp': 'multiprocessing',
         'floor': 'raw-C floor'}


def P(**kw):
    return kw


# ---------------------------------------------------------------------------
# Metric table. Each row: id, title, unit, better ('higher'|'lower'), and per
# implementation a "probe": (program metric, params, field, pinned) with
# quick-mode params in 'q' (None = skipped in that mode, with a reason).
# Rows that name the same (impl, metric, params, pinned) share one run.
# ---------------------------------------------------------------------------
def probe(metric, field='value', pin=False, q='same', **params):
    return {'metric': metric, 'field': field, 'pin': pin, 'params': params,
            'quick': params if q == 'same' else q}


NA_MP_LOST = ('multiprocessing.Pool never fails the job of a killed worker: '
              'it hangs forever (perf-baseline §6.6)')
NA_MP_LIMITS = 'multiprocessing.Pool has no soft/hard time limits'
NA_BIL_N2 = ('billiard map is O(n²) with chunksize 1 (on_ready -> '
             'MapResult.worker_pids(), perf-baseline §6.1): 200 000 items took '
             '593 s once; sizes capped at 10 000 to keep a round short')
SKIP_QUICK = 'skipped in --quick (seconds per run)'


def rows():
    R = []

    def row(id, title, unit, better, ours=None, billiard=None, mp=None,
            floor=None, goals=(), na=None, group=None):
        R.append(dict(id=id, title=title, unit=unit, better=better,
                      probes=dict(ours=ours, billiard=billiard, mp=mp, floor=floor),
                      goals=list(goals), na=na or {}, group=group))

    row('apply_async', 'apply_async(noop) throughput, 2 workers', 'tasks/s', 'higher',
        ours=probe('apply_async', n=200000, q=dict(n=50000)),
        billiard=probe('apply_async', n=20000, q=dict(n=3000)),
        mp=probe('apply_async', n=20000, q=dict(n=3000)),
        floor=probe('pool_tps', n=1000000, items=1, q=dict(n=200000, items=1)),
        goals=[('vs_billiard', '>=', 30), ('vs_floor', '>=', 0.5)])
    for n in (2500, 5000, 10000, 200000):
        bq = dict(n=n, chunksize=1) if n <= 2500 else None
        row('map_cs1_%d' % n, 'map(square, %d items, chunksize=1)' % n, 'items/s', 'higher',
            ours=probe('map', n=n, chunksize=1),
            billiard=probe('map', n=n, chunksize=1, q=bq) if n <= 10000 else None,
            mp=probe('map', n=n, chunksize=1, q=bq),
            floor=probe('pool_tps', n=max(n, 1000000), items=1,
                        q=dict(n=max(n, 200000), items=1)),
            na={'billiard': NA_BIL_N2} if n > 10000 else {}, group='map_cs1')
    row('map_cs1_200000_wall', 'map 200 000 items, chunksize=1: wall time', 's', 'lower',
        ours=probe('map', 'seconds', n=200000, chunksize=1),
        mp=probe('map', 'seconds', n=200000, chunksize=1, q=None),
        na={'billiard': NA_BIL_N2}, goals=[('abs', '<', 1.0)])
    for n in (10000, 200000):
        row('map_cs64_%d' % n, 'map(square, %d items, chunksize=64)' % n, 'items/s', 'higher',
            ours=probe('map', n=n, chunksize=64),
            billiard=probe('map', n=n, chunksize=64, q='same' if n <= 10000 else None),
            mp=probe('map', n=n, chunksize=64, q='same' if n <= 10000 else None),
            floor=probe('pool_tps', n=10000000, items=64, q=dict(n=2000000, items=64)),
            goals=[('vs_floor', '>=', 0.5)] if n == 200000 else [], group='map_cs64')
    row('imap_unordered', 'imap_unordered(square), chunksize=1', 'items/s', 'higher',
        ours=probe('imap_unordered', n=100000, q=dict(n=20000)),
        billiard=probe('imap_unordered', n=10000, q=dict(n=2000)),
        mp=probe('imap_unordered', n=10000, q=dict(n=2000)),
        floor=probe('pool_tps', n=1000000, items=1, q=dict(n=200000, items=1)))
    for pin in (False, True):
        sfx, where = ('_cpu0', ', all on CPU 0') if pin else ('', ', unpinned')
        for f in ('p50', 'p99'):
            row('rtt_%s%s' % (f, sfx), 'sequential apply() round trip %s%s' % (f, where),
                'µs', 'lower',
                ours=probe('rtt', f, pin, n=5000, q=dict(n=1000)),
                billiard=probe('rtt', f, pin, n=1000, q=dict(n=300)),
                mp=probe('rtt', f, pin, n=1000, q=dict(n=300)),
                floor=probe('pingpong', f, pin, n=20000, q=dict(n=5000)),
                goals=[('vs_floor', '>=', 0.5)] if (pin and f == 'p50') else [])
    for size, label in ((1024, '1 KiB'), (65536, '64 KiB'), (1048576, '1 MiB')):
        n_c, n_p = (100000, 5000) if size == 1024 else (5000, 1000) if size == 65536 else (300, 100)
        row('echo_%s' % label.replace(' ', ''), 'echo %s payload (apply_async)' % label,
            'MB/s', 'higher',
            ours=probe('echo', size=size, n=n_c, q=dict(size=size, n=max(n_c // 5, 50))),
            billiard=probe('echo', size=size, n=n_p, q=dict(size=size, n=max(n_p // 5, 20))),
            mp=probe('echo', size=size, n=n_p, q=dict(size=size, n=max(n_p // 5, 20))),
            floor=probe('echo', size=size, n=n_c, q=dict(size=size, n=max(n_c // 5, 50))))
    row('queue', 'Queue put→get between 2 processes (64 B)', 'items/s', 'higher',
        ours=probe('queue', n=500000, q=dict(n=100000)),
        billiard=probe('queue', n=100000, q=dict(n=20000)),
        mp=probe('queue', n=100000, q=dict(n=20000)),
        floor=probe('stream', n=1000000, q=dict(n=200000)),
        goals=[('vs_floor', '>=', 0.5)])
    row('pipe_cpu0', 'Pipe send/recv_bytes ping-pong p50, same CPU', 'µs', 'lower',
        ours=probe('pipe', 'p50', True, n=20000, q=dict(n=5000)),
        billiard=probe('pipe', 'p50', True, n=10000, q=dict(n=2000)),
        mp=probe('pipe', 'p50', True, n=10000, q=dict(n=2000)),
        floor=probe('pingpong', 'p50', True, n=20000, q=dict(n=5000)))
    row('lock', 'Lock acquire+release, uncontended', 'ns', 'lower',
        ours=probe('lock', n=10000000, q=dict(n=2000000)),
        billiard=probe('lock', n=1000000, q=dict(n=200000)),
        mp=probe('lock', n=1000000, q=dict(n=200000)),
        floor=probe('mutex', n=10000000, q=dict(n=2000000)))
    row('lock_contended', '2 processes: Lock + shared Value increment', 'ops/s', 'higher',
        ours=probe('lock_contended', n=1000000, q=dict(n=200000)),
        billiard=probe('lock_contended', n=100000, q=dict(n=20000)),
        mp=probe('lock_contended', n=100000, q=dict(n=20000)),
        floor=probe('mutex_contended', n=2000000, q=dict(n=400000)))
    row('start', 'Pool(2) start until first result', 'ms', 'lower',
        ours=probe('start', reps=20, q=dict(reps=5)),
        billiard=probe('start', reps=5, q=dict(reps=2)),
        mp=probe('start', reps=5, q=dict(reps=2)),
        floor=probe('start', reps=20, q=dict(reps=5)))
    row('close_join', 'close()+join() of a warm Pool(2)', 'ms', 'lower',
        ours=probe('close_join', reps=20, q=dict(reps=5)),
        billiard=probe('close_join', reps=3, q=dict(reps=1)),
        mp=probe('close_join', reps=5, q=dict(reps=2)),
        floor=probe('close_join', reps=20, q=dict(reps=5)),
        goals=[('abs', '<=', 5.0)])
    row('replace_up', 'SIGKILLed idle worker: replacement up', 'ms', 'lower',
        ours=probe('replace', 'up', reps=10, q=dict(reps=3)),
        billiard=probe('replace', 'up', reps=3, q=None),
        mp=probe('replace', 'up', reps=5, q=dict(reps=2)),
        floor=probe('replace', 'up', reps=20, q=dict(reps=5)),
        na={'billiard': 'quick: ' + SKIP_QUICK})
    row('replace_serve', 'SIGKILLed worker of Pool(1): next job served', 'ms', 'lower',
        ours=probe('replace', 'value', reps=10, q=dict(reps=3)),
        floor=probe('replace', 'value', reps=20, q=dict(reps=5)),
        na={'billiard': 'killing the only idle worker wedges the pool (it holds '
                        'the inqueue read lock, perf-baseline §6.4)',
            'mp': 'same wedge as billiard (§6.4)'},
        goals=[('abs', '<=', 5.0)])
    row('lost', 'job in a SIGKILLed worker: death → WorkerLostError', 'ms', 'lower',
        ours=probe('lost', reps=10, q=dict(reps=3)),
        billiard=probe('lost', reps=1, q=None),
        floor=probe('lost', reps=20, q=dict(reps=5)),
        na={'mp': NA_MP_LOST, 'billiard': 'quick: ' + SKIP_QUICK +
            ' (10 s lost_worker_timeout)'},
        goals=[('abs', '<=', 20.0)])
    for kind in ('soft', 'hard'):
        for f in ('p50', 'p99'):
            h = 1 if kind == 'hard' else 0
            row('limit_%s_%s' % (kind, f), '%s time limit lateness %s (limit 20 ms)' % (kind, f),
                'ms', 'lower',
                ours=probe('limits', f, n=40, hard=h, limit_ms=20, q=dict(n=10, hard=h, limit_ms=20)),
                billiard=probe('limits', f, n=6, hard=h, limit_ms=20, q=None),
                floor=probe('lateness', f, n=200, limit_ms=20, q=dict(n=50, limit_ms=20)),
                na={'mp': NA_MP_LIMITS, 'billiard': 'quick: ' + SKIP_QUICK +
                    ' (1 s timeout-handler tick)'},
                goals=[('abs', '<=', 10.0)] if f == 'p99' else [], group='limits')
    return R


# ---------------------------------------------------------------------------
def machine_info(builddir):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ''
    model = sh("lscpu | sed -n 's/^Model name: *//p' | head -1")
    return {
        'cpu': model, 'nproc': sh('nproc'), 'kernel': platform.release(),
        'os': sh(". /etc/os-release && echo $PRETTY_NAME"),
        'gcc': sh('gcc --version | head -1'),
        'python': sh(PY + ' -c "import sys; print(sys.version.split()[0])"'),
        'billiard': sh(PY + ' -c "import billiard; print(billiard.__version__)"'),
        'libbilliard': (re.findall(r"[(,]\s*version:\s*'([^']*)'",
                                   open(os.path.join(ROOT, 'meson.build')).read()) or ['?'])[0],
        'git': sh('git -C %s rev-parse --short HEAD' % ROOT),
        'buildtype': sh("meson introspect --buildoptions %s 2>/dev/null | %s -c "
                        "\"import json,sys; print([o['value'] for o in json.load(sys.stdin) "
                        "if o['name']=='buildtype'][0])\"" % (builddir, PY)),
        'loadavg': open('/proc/loadavg').read().split()[:3],
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
    }


def run_probe(impl, pr, quick, builddir, timeout):
    params = pr['quick'] if quick else pr['params']
    kv = ['%s=%s' % (k, v) for k, v in params.items()]
    if impl == 'ours':
        cmd = [os.path.join(builddir, 'bench', 'bench_libbilliard'), pr['metric']] + kv
    elif impl == 'floor':
        cmd = [os.path.join(builddir, 'bench', 'bench_floor'), pr['metric']] + kv
    else:
        cmd = [PY, os.path.join(ROOT, 'bench', 'py_bench.py'), '--impl', impl,
               pr['metric']] + kv + ['watchdog=%d' % max(10, timeout - 10)]
    if pr['pin']:
        cmd = ['taskset', '-c', '0'] + cmd
    # Own session: on timeout the whole process group we started is killed.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {'error': 'timeout after %d s' % timeout}
    lines = [l for l in out.splitlines() if l.startswith('{')]
    if p.returncode != 0 or not lines:
        tail = (err.strip().splitlines() or ['exit %d' % p.returncode])[-1]
        return {'error': 'exit %d: %s' % (p.returncode, tail[:200])}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {'error': 'bad output: ' + lines[-1][:200]}


def probe_key(impl, pr, quick):
    params = pr['quick'] if quick else pr['params']
    return (impl, pr['metric'], pr['pin'], tuple(sorted(params.items())))


def speed(row, ours, other):
    """How many times faster ours is than other (>1 = ours faster)."""
    if ours is None or other is None or ours <= 0 or other <= 0:
        return None
    return ours / other if row['better'] == 'higher' else other / ours


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def check_goal(g, row):
    kind, op, target = g
    v = row['ratios'].get(kind[3:]) if kind.startswith('vs_') else row['median'].get('ours')
    if v is None:
        return None
    return v >= target if op == '>=' else v <= target if op == '<=' else v < target


def goal_text(g, unit):
    kind, op, target = g
    if kind == 'abs':
        return '%s %g %s' % (op.replace('>=', '≥').replace('<=', '≤'), target, unit)
    who = kind[3:]
    if target >= 1:
        return '≥ %g× %s' % (target, who)
    return '≥ %g of %s' % (target, who)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--no-docs', action='store_true')
    ap.add_argument('--json')
    ap.add_argument('--builddir', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--only', help='comma-separated row ids (debugging)')
    ap.add_argument('--no-conform', action='store_true',
                    help='skip the conformance wall time (billiard-conform not built)')
    a = ap.parse_args()
    quick = a.quick
    rounds = a.rounds or (1 if quick else 3)
    builddir = os.path.abspath(a.builddir)
    jpath = a.json or os.path.join(builddir, 'bench', 'results.json')
    timeout = 60 if quick else 200
    R = rows()
    if a.only:
        R = [r for r in R if r['id'] in a.only.split(',')]
    info = machine_info(builddir)
    print('==> ci/bench: %s mode, %d round(s); %s, %s CPUs, kernel %s, load %s'
          % ('quick' if quick else 'full', rounds, info['cpu'], info['nproc'],
             info['kernel'], ' '.join(info['loadavg'])), flush=True)
    t_start = time.monotonic()

    # results[round][probe_key] = dict
    results = []
    for rnd in range(rounds):
        cache = {}
        for ri, row in enumerate(R):
            order = IMPLS[(rnd + ri) % 4:] + IMPLS[:(rnd + ri) % 4]
            for impl in order:
                pr = row['probes'][impl]
                if pr is None or (quick and pr['quick'] is None):
                    continue
                k = probe_key(impl, pr, quick)
                if k in cache:
                    continue
                t0 = time.monotonic()
                cache[k] = run_probe(impl, pr, quick, builddir, timeout)
                cache[k]['_wall'] = time.monotonic() - t0
                if 'error' in cache[k]:
                    print('    round %d %-18s %-9s ERROR %s' % (rnd + 1, row['id'], impl,
                                                             cache[k]['error']), flush=True)
        results.append(cache)
        print('==> round %d done (%.0f s)' % (rnd + 1, time.monotonic() - t_start), flush=True)

    conform = {'value': None, 'note': 'n/a'}
    exe = os.path.join(builddir, 'harness', 'billiard-conform')
    if quick:
        conform['note'] = SKIP_QUICK
    elif a.no_conform:
        conform['note'] = 'billiard-conform did not build'
    elif os.access(exe, os.X_OK):
        t0 = time.monotonic()
        try:
            p = subprocess.run([exe, 'run', '--port', 'c', os.path.join(ROOT, 'scenarios')],
                               capture_output=True, text=True, timeout=600, cwd=ROOT)
            wall = time.monotonic() - t0
            last = ((p.stdout.strip() or p.stderr.strip()).splitlines() or [''])[-1]
            if p.returncode == 2:  # bad input: nothing was run
                conform = {'value': None, 'rc': 2, 'note': 'bad input (rc 2): ' + last[:160]}
            else:
                conform = {'value': wall, 'rc': p.returncode, 'note': last[:160]}
        except subprocess.TimeoutExpired:
            conform = {'value': None, 'note': 'timeout after 600 s'}
    else:
        conform['note'] = 'billiard-conform not built'

    # aggregate
    for row in R:
        row['rounds'] = {}
        row['median'] = {}
        row['errors'] = {}
        for impl in IMPLS:
            pr = row['probes'][impl]
            if pr is None or (quick and pr['quick'] is None):
                row['rounds'][impl] = None
                continue
            k = probe_key(impl, pr, quick)
            vals = []
            for cache in results:
                r = cache.get(k, {})
                v = r.get(pr['field'])
                vals.append(v if isinstance(v, (int, float)) else None)
                if 'error' in r:
                    row['errors'][impl] = r['error']
            row['rounds'][impl] = vals
            row['median'][impl] = med(vals)
        row['ratios'] = {}
        for other in ('billiard', 'mp', 'floor'):
            per = []
            o, t = row['rounds'].get('ours'), row['rounds'].get(other)
            if o and t:
                per = [speed(row, x, y) for x, y in zip(o, t)]
            row['ratios'][other] = med(per)
            row['ratios'][other + '_rounds'] = per
        row['met'] = [check_goal(g, row) for g in row['goals']]
    wall = time.monotonic() - t_start

    print_table(R, conform)
    out = {'mode': 'quick' if quick else 'full', 'rounds': rounds, 'machine': info,
           'wall_s': wall, 'conformance_run': conform,
           'ratio_definition': 'speed factor of libbilliard over X, taken within each '
                               'round, median over rounds: >1 = libbilliard faster',
           'rows': [{k: v for k, v in r.items() if k != 'probes'} for r in R]}
    for r, o in zip(R, out['rows']):
        o['goals'] = [dict(goal=goal_text(g, r['unit']), met=m)
                      for g, m in zip(r['goals'], r['met'])]
        o['probes'] = {i: (None if p is None else
                           dict(metric=p['metric'], field=p['field'], pinned=p['pin'],
                                params=p['quick'] if quick else p['params']))
                       for i, p in r['probes'].items()}
    os.makedirs(os.path.dirname(os.path.abspath(jpath)), exist_ok=True)
    with open(jpath, 'w') as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    print('==> JSON: %s (%.0f s in all)' % (jpath, wall))
    if not quick and not a.no_docs:
        sys.path.insert(0, os.path.join(ROOT, 'bench'))
        import report
        report.write_docs(out, ROOT)
        print('==> docs/performance.md and docs/perf/*.svg regenerated')
    # ci/bench reports; it does not fail on missed goals (timing is noisy
    # on a shared VM). It fails when a metric could not be measured at all.
    bad = [r['id'] for r in R if r['errors']]
    if bad:
        print('==> errors in: %s' % ', '.join(bad))
        return 1
    return 0


def fmt(v, unit=''):
    if v is None:
        return '—'
    a = abs(v)
    if unit in ('tasks/s', 'items/s', 'msgs/s', 'ops/s'):
        if a >= 1e6:
            return '%.2f M' % (v / 1e6)
        if a >= 1e3:
            return '%.1f k' % (v / 1e3)
        return '%.0f' % v
    if a >= 1000:
        return '%.0f' % v
    if a >= 100:
        return '%.0f' % v
    if a >= 10:
        return '%.1f' % v
    if a >= 1:
        return '%.2f' % v
    return '%.3g' % v


def fmt_ratio(r):
    if r is None:
        return '—'
    if r >= 100:
        return '×%.0f' % r
    if r >= 10:
        return '×%.1f' % r
    return '×%.2f' % r


def met_text(row):
    if not row['goals']:
        return '', ''
    goals = '; '.join(goal_text(g, row['unit']) for g in row['goals'])
    met = '; '.join('n/a' if m is None else 'met' if m else 'MISSED'
                    for m in row['met'])
    return goals, met


def table_rows(R, conform):
    out = []
    for r in R:
        g, m = met_text(r)
        out.append([r['title'] + ' [%s]' % r['unit'],
                    fmt(r['median'].get('ours'), r['unit']),
                    fmt(r['median'].get('billiard'), r['unit']),
                    fmt(r['median'].get('mp'), r['unit']),
                    fmt(r['median'].get('floor'), r['unit']),
                    fmt_ratio(r['ratios'].get('billiard')),
                    fmt_ratio(r['ratios'].get('floor')), g, m])
    cv = conform.get('value')
    out.append(['conformance run wall time [s]', fmt(cv) if cv is not None else 'n/a',
                '', '', '', '', '', '', conform.get('note', '')[:40]])
    return out


HEAD = ['metric', 'libbilliard', 'billiard', 'mp', 'floor', 'vs billiard', 'vs floor',
        'goal', 'met?']


def print_table(R, conform):
    t = [HEAD] + table_rows(R, conform)
    w = [max(len(x[i]) for x in t) for i in range(len(HEAD))]
    w[0] = min(w[0], 62)
    for i, line in enumerate(t):
        cells = [line[0][:62].ljust(w[0])] + [c.rjust(w[j + 1]) if j < 6 else c.ljust(w[j + 1])
                                              for j, c in enumerate(line[1:])]
        print(' | '.join(cells).rstrip())
        if i == 0:
            print('-+-'.join('-' * x for x in w))
    print('ratios: speed factor of libbilliard over the column (time ratio, within each '
          'round, median); >1 = libbilliard faster.')


if __name__ == '__main__':
    sys.exit(main())
