/* bench_libbilliard.c: libbilliard's side of ci/bench, through the public
 * API only (<billiard/billiard.h>, linked against the shared library).
 * `bench_libbilliard METRIC [key=value...]` prints one JSON object; the
 * metric names match bench/py_bench.py and bench/floor.c (see bench/run.py).
 * Pools have 2 workers, as in perf-baseline.md. */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include <billiard/billiard.h>

#include "common.h"

#define CHECK(x)                                                          \
  do {                                                                    \
    int rc_ = (x);                                                        \
    if (rc_) die("%s:%d: %s -> %s", __FILE__, __LINE__, #x, bl_err_name(rc_)); \
  } while (0)

/* ---- tasks (registered before any pool forks) ---- */
static int tk_noop(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c, (void)a, (void)n;
  return 0;
}
static int tk_square(bl_task_ctx_t *c, const void *a, size_t n) {
  int64_t v = 0;
  if (n >= 8) memcpy(&v, a, 8);
  v *= v;
  return bl_task_return(c, &v, sizeof v);
}
static int tk_echo(bl_task_ctx_t *c, const void *a, size_t n) {
  return bl_task_return(c, a, n);
}
static int tk_hang(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c, (void)a, (void)n;
  for (;;) pause();
  return 0;
}
/* Limits: slot i of a shared page gets the task's start time (hard limit:
 * the parent computes lateness); the soft task returns its own lateness. */
static volatile uint64_t *g_start;
static uint32_t g_limit_ms;
static int tk_limit_hard(bl_task_ctx_t *c, const void *a, size_t n) {
  int64_t i = 0;
  if (n >= 8) memcpy(&i, a, 8);
  g_start[i] = now_ns();
  (void)c;
  for (;;) pause();
  return 0;
}
static int tk_limit_soft(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  uint64_t t0 = now_ns();
  int rc = bl_task_sleep(c, 60000);
  int64_t late = (int64_t)(now_ns() - t0) - (int64_t)g_limit_ms * 1000000;
  if (rc != BL_ESOFTTIMELIMIT) late = INT64_MAX;
  return bl_task_return(c, &late, sizeof late);
}

static bl_pool_t *pool_new(unsigned procs, bl_pool_options_t *o) {
  bl_pool_options_t d;
  if (!o) {
    bl_pool_options_init(&d);
    o = &d;
  }
  o->processes = procs;
  bl_pool_t *p = NULL;
  CHECK(bl_pool_new(&p, o));
  return p;
}
static void apply_noop(bl_pool_t *p) {
  CHECK(bl_pool_apply(p, "noop", "x", 1, NULL, NULL, NULL, NULL));
}
static void warm(bl_pool_t *p, int n) {
  for (int i = 0; i < n; i++) apply_noop(p);
}

/* ---- throughput ---- */
static void m_apply_async(const char *name) {
  long n = arg_long("n", 100000);
  bl_pool_t *p = pool_new(2, NULL);
  bl_result_t **r = calloc((size_t)n, sizeof *r);
  warm(p, 100);
  uint64_t t0 = now_ns();
  for (long i = 0; i < n; i++) CHECK(bl_pool_apply_async(p, "noop", "x", 1, NULL, &r[i]));
  for (long i = 0; i < n; i++) {
    CHECK(bl_result_get(r[i], -1, NULL, NULL, NULL));
    bl_result_free(&r[i]);
  }
  double dt = (double)(now_ns() - t0) / 1e9;
  bl_pool_close(p);
  bl_pool_join(p, -1);
  bl_pool_free(&p);
  free(r);
  out_begin(name);
  out_num("value", (double)n / dt);
  out_str("unit", "tasks/s");
  out_end();
}

static int64_t *g_items;
static const void **g_args;
static size_t *g_lens;
static void make_items(long n) {
  g_items = malloc(sizeof(int64_t) * (size_t)n);
  g_args = malloc(sizeof(void *) * (size_t)n);
  g_lens = malloc(sizeof(size_t) * (size_t)n);
  for (long i = 0; i < n; i++) {
    g_items[i] = i;
    g_args[i] = &g_items[i];
    g_lens[i] = 8;
  }
}

static void m_map(const char *name) {
  long n = arg_long("n", 10000), cs = arg_long("chunksize", 1);
  make_items(n);
  bl_pool_t *p = pool_new(2, NULL);
  warm(p, 100);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = (size_t)cs;
  bl_result_t *r = NULL;
  uint64_t t0 = now_ns();
  CHECK(bl_pool_map(p, "square", g_args, g_lens, (size_t)n, &ao, &r, NULL));
  double dt = (double)(now_ns() - t0) / 1e9;
  const void *v;
  size_t l;
  int64_t last;
  CHECK(bl_result_item(r, (size_t)n - 1, &v, &l));
  memcpy(&last, v, 8);
  if (last != (int64_t)(n - 1) * (n - 1)) die("map: wrong result");
  bl_result_free(&r);
  bl_pool_close(p);
  bl_pool_join(p, -1);
  bl_pool_free(&p);
  out_begin(name);
  out_num("value", (double)n / dt);
  out_str("unit", "items/s");
  out_num("seconds", dt);
  out_end();
}

static void m_imap_unordered(const char *name) {
  long n = arg_long("n", 10000);
  make_items(n);
  bl_pool_t *p = pool_new(2, NULL);
  warm(p, 100);
  bl_imap_t *it = NULL;
  uint64_t t0 = now_ns();
  CHECK(bl_pool_imap_unordered(p, "square", g_args, g_lens, (size_t)n, NULL, &it));
  long got = 0;
  for (;;) {
    const void *v;
    size_t l;
    int rc = bl_imap_next(it, -1, &v, &l, NULL);
    if (rc == BL_EEOF) break;
    CHECK(rc);
    got++;
  }
  double dt = (double)(now_ns() - t0) / 1e9;
  if (got != n) die("imap: %ld items", got);
  bl_imap_free(&it);
  bl_pool_close(p);
  bl_pool_join(p, -1);
  bl_pool_free(&p);
  out_begin(name);
  out_num("value", (double)n / dt);
  out_str("unit", "items/s");
  out_end();
}

static void m_rtt(const char *name) {
  long n = arg_long("n", 5000);
  bl_pool_t *p = pool_new(2, NULL);
  warm(p, 200);
  double *lat = malloc(sizeof(double) * (size_t)n);
  for (long i = 0; i < n; i++) {
    uint64_t t0 = now_ns();
    apply_noop(p);
    lat[i] = (double)(now_ns() - t0) / 1e9;
  }
  bl_pool_close(p);
  bl_pool_join(p, -1);
  bl_pool_free(&p);
  out_begin(name);
  out_lat("us", 1e6, lat, (size_t)n);
  out_end();
}

static void m_echo(const char *name) {
  long size = arg_long("size", 1024), n = arg_long("n", 10000);
  long batch = (64L << 20) / size;
  if (batch > n) batch = n;
  char *buf = malloc((size_t)size);
  memset(buf, 'e', (size_t)size);
  bl_pool_t *p = pool_new(2, NULL);
  warm(p, 100);
  bl_result_t **r = calloc((size_t)batch, sizeof *r);
  uint64_t t0 = now_ns();
  for (long done = 0; done < n; done += batch) {
    long k = n - done < batch ? n - done : batch;
    for (long i = 0; i < k; i++)
      CHECK(bl_pool_apply_async(p, "echo", buf, (size_t)size, NULL, &r[i]));
    for (long i = 0; i < k; i++) {
      size_t l;
      CHECK(bl_result_get(r[i], -1, NULL, &l, NULL));
      if (l != (size_t)size) die("echo: %zu bytes", l);
      bl_result_free(&r[i]);
    }
  }
  double dt = (double)(now_ns() - t0) / 1e9;
  bl_pool_close(p);
  bl_pool_join(p, -1);
  bl_pool_free(&p);
  out_begin(name);
  out_num("value", (double)n * (double)size / dt / 1e6);
  out_str("unit", "MB/s");
  out_end();
}

/* ---- Queue, Pipe, Lock (children via bl_process; they inherit globals) ---- */
static bl_queue_t *g_q;
static bl_conn_t *g_conn, *g_conn_parent;
static bl_value_t *g_val;
static long g_n;

static int tg_queue_put(const void *a, size_t l) {
  (void)a, (void)l;
  char item[64] = {1};
  for (long i = 0; i < g_n; i++)
    if (bl_queue_put(g_q, item, sizeof item, -1)) return 1;
  return 0;
}
static int tg_pipe_echo(const void *a, size_t l) {
  (void)a, (void)l;
  bl_conn_free(&g_conn_parent); /* or the parent's close never reads as EOF */
  char buf[64];
  for (;;) {
    size_t got;
    if (bl_conn_recv_bytes_into(g_conn, buf, sizeof buf, 0, &got)) return 0;
    if (bl_conn_send_bytes(g_conn, buf, got, 0, BL_CONN_REST)) return 1;
  }
}
static int tg_lock_incr(const void *a, size_t l) {
  (void)a, (void)l;
  bl_lock_t *lk = bl_value_get_lock(g_val);
  volatile int64_t *x = bl_value_ptr(g_val);
  for (long i = 0; i < g_n; i++) {
    bl_lock_acquire(lk, -1);
    (*x)++;
    bl_lock_release(lk);
  }
  return 0;
}

static bl_process_t *spawn(const char *target) {
  bl_process_t *pr = NULL;
  CHECK(bl_process_new(&pr, target, NULL, 0, NULL));
  CHECK(bl_process_start(pr));
  return pr;
}
static void reap(bl_process_t **pr) {
  CHECK(bl_process_join(*pr, -1));
  int code = -1;
  bl_process_exitcode(*pr, &code);
  if (code != 0) die("child exited %d", code);
  bl_process_free(pr);
}

static void m_queue(const char *name) {
  g_n = arg_long("n", 200000);
  CHECK(bl_queue_new(&g_q, NULL));
  bl_process_t *pr = spawn("queue_put");
  uint64_t t0 = now_ns();
  for (long i = 0; i < g_n; i++) {
    void *b;
    size_t l;
    CHECK(bl_queue_get(g_q, &b, &l, -1));
    free(b);
  }
  double dt = (double)(now_ns() - t0) / 1e9;
  reap(&pr);
  bl_queue_free(&g_q);
  out_begin(name);
  out_num("value", (double)g_n / dt);
  out_str("unit", "items/s");
  out_end();
}

static void m_pipe(const char *name) {
  long n = arg_long("n", 20000);
  CHECK(bl_pipe(&g_conn_parent, &g_conn, 1));
  bl_conn_t *a = g_conn_parent;
  bl_process_t *pr = spawn("pipe_echo");
  bl_conn_free(&g_conn);
  double *lat = malloc(sizeof(double) * (size_t)n);
  char m[64] = {1};
  for (long i = -n / 10; i < n; i++) {
    uint64_t t0 = now_ns();
    size_t got;
    CHECK(bl_conn_send_bytes(a, m, sizeof m, 0, BL_CONN_REST));
    CHECK(bl_conn_recv_bytes_into(a, m, sizeof m, 0, &got));
    if (i >= 0) lat[i] = (double)(now_ns() - t0) / 1e9;
  }
  bl_conn_free(&g_conn_parent);
  reap(&pr);
  out_begin(name);
  out_lat("us", 1e6, lat, (size_t)n);
  out_end();
}

static void m_lock(const char *name) {
  long n = arg_long("n", 5000000);
  bl_lock_t *l = NULL;
  CHECK(bl_lock_new(&l));
  for (long i = 0; i < n / 10; i++) bl_lock_acquire(l, -1), bl_lock_release(l);
  uint64_t t0 = now_ns();
  for (long i = 0; i < n; i++) bl_lock_acquire(l, -1), bl_lock_release(l);
  double dt = (double)(now_ns() - t0);
  bl_lock_free(&l);
  out_begin(name);
  out_num("value", dt / (double)n);
  out_str("unit", "ns");
  out_end();
}

static void m_lock_contended(const char *name) {
  g_n = arg_long("n", 500000);
  CHECK(bl_value_new(&g_val, 'q', NULL));
  uint64_t t0 = now_ns();
  bl_process_t *a = spawn("lock_incr"), *b = spawn("lock_incr");
  reap(&a), reap(&b);
  double dt = (double)(now_ns() - t0) / 1e9;
  if (*(int64_t *)bl_value_ptr(g_val) != 2 * g_n) die("lost increments");
  bl_value_free(&g_val);
  out_begin(name);
  out_num("value", 2.0 * (double)g_n / dt);
  out_str("unit", "ops/s");
  out_end();
}

/* ---- lifecycle ---- */
static void m_start(const char *name) {
  long reps = arg_long("reps", 20);
  double *v = malloc(sizeof(double) * (size_t)reps);
  for (long i = 0; i < reps; i++) {
    uint64_t t0 = now_ns();
    bl_pool_t *p = pool_new(2, NULL);
    apply_noop(p);
    v[i] = (double)(now_ns() - t0) / 1e9;
    bl_pool_close(p);
    bl_pool_join(p, -1);
    bl_pool_free(&p);
  }
  out_begin(name);
  out_num("value", pct(v, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

static void m_close_join(const char *name) {
  long reps = arg_long("reps", 20);
  double *v = malloc(sizeof(double) * (size_t)reps);
  for (long i = 0; i < reps; i++) {
    bl_pool_t *p = pool_new(2, NULL);
    warm(p, 20);
    uint64_t t0 = now_ns();
    CHECK(bl_pool_close(p));
    CHECK(bl_pool_join(p, -1));
    v[i] = (double)(now_ns() - t0) / 1e9;
    bl_pool_free(&p);
  }
  out_begin(name);
  out_num("value", pct(v, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* Replacement: Pool(2), SIGKILL one idle worker; "up" = on_process_up for
 * the replacement. "value" (serve) = Pool(1): SIGKILL its only worker, then
 * apply() at once: time until that job's result is back. */
static _Atomic uint64_t g_up_ns;
static _Atomic pid_t g_up_pid;
static void on_up(bl_pool_t *p, pid_t pid, void *u) {
  (void)p, (void)u;
  atomic_store(&g_up_pid, pid);
  atomic_store(&g_up_ns, now_ns());
}

static void m_replace(const char *name) {
  long reps = arg_long("reps", 10);
  double *up = malloc(sizeof(double) * (size_t)reps),
         *serve = malloc(sizeof(double) * (size_t)reps);
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.on_process_up = on_up;
  o.max_restarts = 0; /* the limiter is not what is measured */
  bl_pool_t *p = pool_new(2, &o);
  for (long i = 0; i < reps; i++) {
    warm(p, 20);
    pid_t pids[2];
    if (bl_pool_pids(p, pids, 2) != 2) die("replace: pids");
    atomic_store(&g_up_ns, 0);
    uint64_t t0 = now_ns();
    kill(pids[0], SIGKILL);
    uint64_t deadline = t0 + 5000000000u;
    while (atomic_load(&g_up_ns) == 0 || atomic_load(&g_up_pid) == pids[0]) {
      if (now_ns() > deadline) die("replace: no replacement in 5 s");
      sched_yield();
    }
    up[i] = (double)(atomic_load(&g_up_ns) - t0) / 1e9;
  }
  bl_pool_free(&p);
  bl_pool_options_init(&o);
  o.max_restarts = 0;
  p = pool_new(1, &o);
  for (long i = 0; i < reps; i++) {
    warm(p, 5);
    pid_t pid;
    if (bl_pool_pids(p, &pid, 1) != 1) die("replace: pid");
    uint64_t t0 = now_ns();
    kill(pid, SIGKILL);
    apply_noop(p);
    serve[i] = (double)(now_ns() - t0) / 1e9;
  }
  bl_pool_free(&p);
  out_begin(name);
  out_num("value", pct(serve, (size_t)reps, 50) * 1e3);
  out_num("up", pct(up, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* A job runs (accepted) in a worker that is SIGKILLed: time from the kill
 * until its result fails with BL_EWORKERLOST. */
static void m_lost(const char *name) {
  long reps = arg_long("reps", 10);
  double *v = malloc(sizeof(double) * (size_t)reps);
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.max_restarts = 0;
  bl_pool_t *p = pool_new(2, &o);
  for (long i = 0; i < reps; i++) {
    warm(p, 5);
    bl_result_t *r = NULL;
    CHECK(bl_pool_apply_async(p, "hang", NULL, 0, NULL, &r));
    uint64_t dl = now_ns() + 5000000000u;
    while (!bl_result_accepted(r)) {
      if (now_ns() > dl) die("lost: never accepted");
      sleep_ms(1);
    }
    pid_t pid = bl_result_worker_pid(r);
    uint64_t t0 = now_ns();
    kill(pid, SIGKILL);
    int rc = bl_result_get(r, 60000, NULL, NULL, NULL);
    v[i] = (double)(now_ns() - t0) / 1e9;
    if (rc != BL_EWORKERLOST) die("lost: got %s", bl_err_name(rc));
    bl_result_free(&r);
  }
  bl_pool_free(&p);
  out_begin(name);
  out_num("value", pct(v, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* Soft and hard limit lateness: (time the limit takes effect) - (start +
 * limit). Soft: seen by the task; hard: the parent's error callback. */
static _Atomic uint64_t *g_fire;
static void on_hard_err(bl_result_t *r, const bl_error_info_t *e, void *u) {
  (void)r, (void)e;
  atomic_store(&g_fire[(intptr_t)u], now_ns());
}

static void m_limits(const char *name) {
  long n = arg_long("n", 20);
  g_limit_ms = (uint32_t)arg_long("limit_ms", 20);
  const char *kind = arg_long("hard", 0) ? "hard" : "soft";
  g_start = mmap(NULL, 8 * (size_t)n + 4096, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  g_fire = calloc((size_t)n, sizeof *g_fire);
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.max_restarts = 0;
  bl_pool_t *p = pool_new(2, &o);
  warm(p, 20);
  bl_result_t **r = calloc((size_t)n, sizeof *r);
  double *late = malloc(sizeof(double) * (size_t)n);
  for (long i = 0; i < n; i++) {
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    int64_t idx = i;
    if (*kind == 'h') {
      ao.time_limit_ms = g_limit_ms;
      ao.error_callback = on_hard_err;
      ao.user = (void *)(intptr_t)i;
      CHECK(bl_pool_apply_async(p, "limit_hard", &idx, 8, &ao, &r[i]));
    } else {
      ao.soft_time_limit_ms = g_limit_ms;
      CHECK(bl_pool_apply_async(p, "limit_soft", &idx, 8, &ao, &r[i]));
    }
  }
  for (long i = 0; i < n; i++) {
    const void *v;
    size_t l;
    int rc = bl_result_get(r[i], 60000, &v, &l, NULL);
    if (*kind == 'h') {
      if (rc != BL_ETIMELIMIT) die("hard limit: got %s", bl_err_name(rc));
      /* the error callback may run just after get() sees the result */
      for (uint64_t dl = now_ns() + 2000000000u; !atomic_load(&g_fire[i]);)
        if (now_ns() > dl) die("hard limit: no error callback");
      late[i] = ((double)atomic_load(&g_fire[i]) - (double)g_start[i]) / 1e9 -
                g_limit_ms / 1e3;
    } else {
      int64_t ns;
      if (rc || l != 8) die("soft limit: got %s", bl_err_name(rc));
      memcpy(&ns, v, 8);
      if (ns == INT64_MAX) die("soft limit never fired");
      late[i] = (double)ns / 1e9;
    }
    bl_result_free(&r[i]);
  }
  bl_pool_free(&p);
  out_begin(name);
  out_lat("ms", 1e3, late, (size_t)n);
  out_end();
}

int main(int argc, char **argv) {
  g_argc = argc, g_argv = argv;
  if (argc < 2) die("usage: bench_libbilliard METRIC [key=value...]");
  bl_register_task("noop", tk_noop);
  bl_register_task("square", tk_square);
  bl_register_task("echo", tk_echo);
  bl_register_task("hang", tk_hang);
  bl_register_task("limit_hard", tk_limit_hard);
  bl_register_task("limit_soft", tk_limit_soft);
  bl_register_target("queue_put", tg_queue_put);
  bl_register_target("pipe_echo", tg_pipe_echo);
  bl_register_target("lock_incr", tg_lock_incr);
  static const struct { const char *name; void (*fn)(const char *); } t[] = {
      {"apply_async", m_apply_async}, {"map", m_map},
      {"imap_unordered", m_imap_unordered}, {"rtt", m_rtt},
      {"echo", m_echo},               {"queue", m_queue},
      {"pipe", m_pipe},               {"lock", m_lock},
      {"lock_contended", m_lock_contended}, {"start", m_start},
      {"close_join", m_close_join},   {"replace", m_replace},
      {"lost", m_lost},               {"limits", m_limits},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(argv[1], t[i].name)) {
      t[i].fn(argv[1]);
      return 0;
    }
  die("unknown metric %s", argv[1]);
}
