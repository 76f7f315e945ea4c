"""bench/report.py: docs/performance.md and docs/perf/*.svg from ci/bench's
JSON (standard library only; the SVG is written by hand, no matplotlib).

    /usr/bin/python3 bench/report.py RESULTS.json   # regenerate the docs

The hand-written part ("What remains and why") lives in
bench/performance-remains.md and is copied in verbatim.
"""
import html
import json
import math
import os
import sys

COLORS = {'ours': '#1f77b4', 'billiard': '#d62728', 'mp': '#2ca02c', 'floor': '#7f7f7f'}
NAMES = {'ours': 'libbilliard', 'billiard': 'billiard 4.1', 'mp': 'multiprocessing',
         'floor': 'raw-C floor'}


def _fmt_axis(v):
    if v >= 1e6:
        return '%gM' % (v / 1e6)
    if v >= 1e3:
        return '%gk' % (v / 1e3)
    if v >= 1:
        return '%g' % v
    return '%g' % v


def _log_ticks(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10 ** e for e in range(a, b + 1)]


def svg_lines(title, xlabel, ylabel, series, width=760, height=400):
    """series: [(name, color, dash, [(x, y), ...])], log-log axes."""
    pts = [p for s in series for p in s[3] if p[1] and p[1] > 0]
    if not pts:
        return None
    xt = _log_ticks(min(p[0] for p in pts), max(p[0] for p in pts))
    yt = _log_ticks(min(p[1] for p in pts), max(p[1] for p in pts))
    L, R, T, B = 70, 260, 40, 50
    W, H = width - L - R, height - T - B

    def X(x):
        return L + (math.log10(x) - math.log10(xt[0])) / (math.log10(xt[-1]) - math.log10(xt[0])) * W

    def Y(y):
        return T + H - (math.log10(y) - math.log10(yt[0])) / (math.log10(yt[-1]) - math.log10(yt[0])) * H
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="12">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>'
         % (L, html.escape(title))]
    for t in xt:
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (X(t), T, X(t), T + H))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (X(t), T + H + 16, _fmt_axis(t)))
    for t in yt:
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, Y(t), L + W, Y(t)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L - 6, Y(t) + 4, _fmt_axis(t)))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (L, T, W, H))
    o.append('<text x="%d" y="%d" text-anchor="middle">%s</text>'
             % (L + W // 2, height - 10, html.escape(xlabel)))
    o.append('<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>'
             % (T + H // 2, T + H // 2, html.escape(ylabel)))
    ly = T + 10
    for name, color, dash, sp in series:
        sp = [p for p in sp if p[1] and p[1] > 0]
        if not sp:
            continue
        d = ' '.join('%.1f,%.1f' % (X(x), Y(y)) for x, y in sp)
        o.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                 % (d, color, ' stroke-dasharray="6,4"' if dash else ''))
        for x, y in sp:
            o.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (X(x), Y(y), color))
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                 % (L + W + 12, ly, L + W + 36, ly, color, ' stroke-dasharray="6,4"' if dash else ''))
        o.append('<text x="%d" y="%d">%s</text>' % (L + W + 42, ly + 4, html.escape(name)))
        ly += 18
    o.append('</svg>')
    return '\n'.join(o) + '\n'


def svg_bars(title, ylabel, groups, series, width=700, height=380):
    """groups: [label]; series: [(name, color, [value or None per group])];
    log y axis (lateness spans µs to a second)."""
    vals = [v for s in series for v in s[2] if v and v > 0]
    if not vals:
        return None
    yt = _log_ticks(min(vals), max(vals))
    if len(yt) < 2:
        yt = [yt[0], yt[0] * 10]
    L, R, T, B = 70, 200, 40, 50
    W, H = width - L - R, height - T - B

    def Y(y):
        return T + H - (math.log10(y) - math.log10(yt[0])) / (math.log10(yt[-1]) - math.log10(yt[0])) * H
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="12">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>'
         % (L, html.escape(title))]
    for t in yt:
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, Y(t), L + W, Y(t)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L - 6, Y(t) + 4, '%g' % t))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (L, T, W, H))
    gw = W / len(groups)
    bw = gw * 0.8 / len(series)
    for gi, g in enumerate(groups):
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                 % (L + gw * (gi + 0.5), T + H + 16, html.escape(g)))
        for si, (name, color, vs) in enumerate(series):
            v = vs[gi]
            x = L + gw * gi + gw * 0.1 + bw * si
            if v is None or v <= 0:
                o.append('<text x="%.1f" y="%d" font-size="9" text-anchor="middle">n/a</text>'
                         % (x + bw / 2, T + H - 4))
                continue
            y = max(T, Y(max(v, yt[0])))
            o.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.3g</title></rect>'
                     % (x, y, bw - 1, T + H - y, color, html.escape(name), v))
    o.append('<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>'
             % (T + H // 2, T + H // 2, html.escape(ylabel)))
    ly = T + 10
    for name, color, _ in series:
        o.append('<rect x="%d" y="%d" width="14" height="10" fill="%s"/>' % (L + W + 12, ly - 8, color))
        o.append('<text x="%d" y="%d">%s</text>' % (L + W + 32, ly + 1, html.escape(name)))
        ly += 18
    o.append('</svg>')
    return '\n'.join(o) + '\n'


def _row(out, rid):
    return next((r for r in out['rows'] if r['id'] == rid), None)


def charts(out):
    res = {}
    series = []
    for cs, dash in ((1, False), (64, True)):
        for impl in ('ours', 'billiard', 'mp', 'floor'):
            pts = []
            for r in out['rows']:
                if r.get('group') == 'map_cs%d' % cs:
                    n = int(r['id'].rsplit('_', 1)[1])
                    v = r['median'].get(impl)
                    if v:
                        pts.append((n, v))
            if pts:
                label = ('floor, %d item%s/message' % (cs, 's' if cs > 1 else '')
                         if impl == 'floor' else '%s, chunksize %d' % (NAMES[impl], cs))
                series.append((label, COLORS[impl], dash, sorted(pts)))
    res['map-scaling.svg'] = svg_lines(
        'Pool.map(square) throughput vs n (2 workers)', 'items (n)', 'items/s (log)', series)
    groups, data = [], {i: [] for i in ('ours', 'billiard', 'floor')}
    for kind in ('soft', 'hard'):
        for f in ('p50', 'p99'):
            r = _row(out, 'limit_%s_%s' % (kind, f))
            if not r:
                continue
            groups.append('%s %s' % (kind, f))
            for i in data:
                data[i].append(r['median'].get(i))
    if groups:
        res['lateness.svg'] = svg_bars(
            'Time-limit lateness: fire time − deadline (limit 20 ms)', 'ms late (log)',
            groups, [(NAMES[i] if i != 'floor' else 'floor (clock_nanosleep)', COLORS[i],
                      data[i]) for i in data])
    return res


def md_table(out):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run
    lines = ['| ' + ' | '.join(run.HEAD) + ' |', '|' + '---|' * len(run.HEAD)]
    rows = []
    for r in out['rows']:
        goals = '; '.join(g['goal'] for g in r['goals'])
        met = '; '.join('n/a' if g['met'] is None else 'met' if g['met'] else '**MISSED**'
                        for g in r['goals'])
        ours = run.fmt(r['median'].get('ours'), r['unit'])
        rv = [v for v in (r['rounds'].get('ours') or []) if v is not None]
        if len(rv) > 1:  # the spread says how far one round can be trusted
            ours += ' [%s–%s]' % (run.fmt(min(rv), r['unit']), run.fmt(max(rv), r['unit']))
        rows.append([r['title'] + ' [%s]' % r['unit'], ours,
                     run.fmt(r['median'].get('billiard'), r['unit']),
                     run.fmt(r['median'].get('mp'), r['unit']),
                     run.fmt(r['median'].get('floor'), r['unit']),
                     run.fmt_ratio(r['ratios'].get('billiard')),
                     run.fmt_ratio(r['ratios'].get('floor')), goals, met])
    c = out['conformance_run']
    rows.append(['conformance run wall time (`billiard-conform run --port c scenarios/`) [s]',
                 run.fmt(c['value']) if c.get('value') is not None else 'n/a',
                 '', '', '', '', '', '', html.escape(c.get('note', ''))])
    for x in rows:
        lines.append('| ' + ' | '.join(x) + ' |')
    return '\n'.join(lines)


def write_docs(out, root):
    docs = os.path.join(root, 'docs')
    os.makedirs(os.path.join(docs, 'perf'), exist_ok=True)
    svgs = charts(out)
    for name, body in svgs.items():
        if body:
            with open(os.path.join(docs, 'perf', name), 'w') as f:
                f.write(body)
    m = out['machine']
    na = []
    for r in out['rows']:
        for impl, why in sorted(r.get('na', {}).items()):
            if r['median'].get(impl) is None:
                na.append('* **%s**, %s: %s' % (r['title'], impl, why))
    errs = ['* **%s**, %s: %s' % (r['title'], i, e)
            for r in out['rows'] for i, e in sorted(r.get('errors', {}).items())]
    missed = [r['title'] + ' (' + g['goal'] + ')' for r in out['rows'] for g in r['goals']
              if g['met'] is False]
    p = []
    p.append('# Performance: libbilliard beside billiard, multiprocessing and a raw-C floor\n')
    p.append('<!-- Generated by `ci/bench` (bench/run.py + bench/report.py) from one full run;'
             ' do not edit by hand except bench/performance-remains.md. -->\n')
    p.append('Run: %s, %s mode, %d rounds, %.0f s. Machine: %s, %s CPUs, kernel %s, %s; '
             'gcc: %s; Python %s with billiard %s (fork context); libbilliard %s '
             '(git %s, %s build); load average at start %s.\n'
             % (m['date'], out['mode'], out['rounds'], out['wall_s'], m['cpu'], m['nproc'],
                m['kernel'], m['os'], m['gcc'], m['python'], m['billiard'], m['libbilliard'],
                m['git'], m['buildtype'], ' '.join(m['loadavg'])))
    p.append('## Method\n')
    p.append('''* One process per (implementation, metric) run: `bench_libbilliard` (public API
  `<billiard/...>`, shared library), `bench/py_bench.py` under `/usr/bin/python3` for
  billiard and multiprocessing (fork context), `bench_floor` for the raw-C floor
  (bare fork + one in-pipe and one out-pipe per worker, one `write()` per task, 256
  messages in flight per worker; bare pipe ping-pong/stream; process-shared pthread mutex;
  pidfd death notice; `clock_nanosleep` lateness). Pools have 2 workers.
* Every metric warms up first; each round runs the implementations in an order rotated
  per metric and per round. Figures are the **median over rounds**; a latency metric's
  per-run figure is that run's p50 or p99.
* **Ratios** are speed factors of libbilliard over the column (time per operation of the
  column ÷ ours), taken **within each round**; the table gives the median of the per-round
  ratios. ×2 = libbilliard twice as fast; ×0.5 = half the speed of the floor.
* "CPU 0" rows run the whole process tree under `taskset -c 0`: on this VM a cross-vCPU
  wake-up costs ≈20–50 µs, so unpinned latencies are bimodal and CPU-cost ratios come
  from the pinned rows.
* Python workloads run under a watchdog (stack dump, SIGKILL of the children they started,
  by pid) and tear pools down with `terminate()` under a 5 s guard, after the figures
  are printed.
* Goals are checked here only (never in unit tests); `ci/bench` reports MISSED but exits
  non-zero only when a metric could not be measured.
''')
    p.append('## Results\n')
    p.append(md_table(out) + '\n')
    p.append('libbilliard figures are medians with the [min–max] of the rounds. '
             'Goals missed in this run: %s.\n' % ('; '.join(missed) if missed else 'none'))
    if 'map-scaling.svg' in svgs:
        p.append('![map scaling](perf/map-scaling.svg)\n')
        p.append('Map throughput by size (solid: chunksize 1, dashed: chunksize 64). A flat '
                 'line is O(n); billiard falls with n (O(n²), capped at 10 000).\n')
    if 'lateness.svg' in svgs:
        p.append('![limit lateness](perf/lateness.svg)\n')
        p.append('Soft and hard limit lateness, p50/p99 of (fire time − deadline). Soft: seen '
                 'by the task; hard: the parent\'s error callback. billiard checks limits '
                 'from a thread that sleeps 1 s between scans; the floor is a bare '
                 '`clock_nanosleep` to an absolute deadline.\n')
    if na:
        p.append('## Not measured, and why\n')
        p.append('\n'.join(na) + '\n')
    if errs:
        p.append('## Errors in this run\n')
        p.append('\n'.join(errs) + '\n')
    rem = os.path.join(root, 'bench', 'performance-remains.md')
    if os.path.exists(rem):
        with open(rem) as f:
            p.append(f.read())
    with open(os.path.join(docs, 'performance.md'), 'w') as f:
        f.write('\n'.join(p))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    write_docs(data, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print('docs/performance.md regenerated from %s' % sys.argv[1])
