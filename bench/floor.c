/* floor.c: the raw-C floor. No libbilliard: bare fork, pipes, pidfds and a
 * process-shared pthread mutex. Each metric is the cheapest achievable way
 * to do what the library metric does, so "ratio vs floor" says how much
 * the library's machinery costs.
 *
 *   cpool: 1 master + 2 workers, one in-pipe and one out-pipe per
 *   worker (no shared read lock), one message and one write() per task
 *   ([u32 len][u32 kind][payload]), buffered reads, a window of 256
 *   in-flight messages per worker (as perf-baseline's cpool),
 *   every result checked. The master never blocks on a write (poll), so
 *   large echoes cannot deadlock. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common.h"

enum { K_NOOP = 0, K_SQUARE = 1, K_ECHO = 2 };
typedef struct { uint32_t len, kind; } hdr_t;

static int xpipe(int fd[2]) { return pipe2(fd, O_CLOEXEC); }

static int write_all(int fd, const void *b, size_t n) {
  const char *p = b;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w, n -= (size_t)w;
  }
  return 0;
}

/* ---- worker side: buffered reader, batched replies ---- */
typedef struct { int fd; char *b; size_t cap, lo, hi; } rbuf_t;

static int rb_fill(rbuf_t *r, size_t need) {
  if (r->hi - r->lo >= need) return 0;
  if (r->lo) {
    memmove(r->b, r->b + r->lo, r->hi - r->lo);
    r->hi -= r->lo, r->lo = 0;
  }
  if (need > r->cap) {
    r->cap = need;
    r->b = realloc(r->b, r->cap);
    if (!r->b) die("oom");
  }
  while (r->hi - r->lo < need) {
    ssize_t n = read(r->fd, r->b + r->hi, r->cap - r->hi);
    if (n == 0) return 1;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    r->hi += (size_t)n;
  }
  return 0;
}

static void worker_loop(int in, int out) {
  rbuf_t r = {in, malloc(256 * 1024), 256 * 1024, 0, 0};
  size_t ocap = 256 * 1024, olen = 0;
  char *ob = malloc(ocap);
  for (;;) {
    if (r.hi == r.lo && olen) { /* nothing buffered: flush replies first */
      if (write_all(out, ob, olen)) _exit(3);
      olen = 0;
    }
    if (rb_fill(&r, sizeof(hdr_t))) break;
    hdr_t h;
    memcpy(&h, r.b + r.lo, sizeof h);
    if (rb_fill(&r, sizeof h + h.len)) break;
    const char *p = r.b + r.lo + sizeof h;
    size_t rlen = h.kind == K_NOOP ? 8 : h.len;
    if (olen + sizeof h + rlen > ocap) {
      if (write_all(out, ob, olen)) _exit(3);
      olen = 0;
      if (sizeof h + rlen > ocap) {
        ocap = sizeof h + rlen;
        ob = realloc(ob, ocap);
      }
    }
    hdr_t rh = {(uint32_t)rlen, h.kind};
    memcpy(ob + olen, &rh, sizeof rh);
    char *q = ob + olen + sizeof rh;
    if (h.kind == K_NOOP) {
      memset(q, 0, 8);
    } else if (h.kind == K_SQUARE) {
      for (size_t i = 0; i + 8 <= h.len; i += 8) {
        int64_t v;
        memcpy(&v, p + i, 8);
        v *= v;
        memcpy(q + i, &v, 8);
      }
    } else {
      memcpy(q, p, h.len);
    }
    olen += sizeof rh + rlen;
    r.lo += sizeof h + h.len;
    if (write_all(out, ob, olen)) _exit(3); /* one write per task */
    olen = 0;
  }
  if (olen) write_all(out, ob, olen);
  _exit(0);
}

typedef struct {
  pid_t pid;
  int in, out; /* master writes in, reads out */
  char *sb;    /* pending bytes to send */
  size_t slen, soff, scap;
  rbuf_t r;
  long inflight;
} wk_t;

static void wk_start(wk_t *w) {
  int a[2], b[2];
  if (xpipe(a) || xpipe(b)) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) { /* keep only our two ends: other workers' must close */
    int in = fcntl(a[0], F_DUPFD, 100), out = fcntl(b[1], F_DUPFD, 100);
    if (in < 0 || out < 0 || dup2(in, 3) < 0 || dup2(out, 4) < 0) _exit(4);
    syscall(SYS_close_range, 5u, ~0u, 0u);
    worker_loop(3, 4);
  }
  close(a[0]), close(b[1]);
  memset(w, 0, sizeof *w);
  w->pid = pid, w->in = a[1], w->out = b[0];
  w->r.fd = b[0];
}

static void wk_stop(wk_t *w) {
  close(w->in);
  close(w->out);
  int st;
  while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR) {}
  free(w->sb);
  free(w->r.b);
  memset(w, 0, sizeof *w);
}

static void wk_queue(wk_t *w, uint32_t kind, const void *p, size_t len) {
  size_t need = w->slen + sizeof(hdr_t) + len;
  if (need > w->scap) {
    w->scap = need * 2;
    w->sb = realloc(w->sb, w->scap);
    if (!w->sb) die("oom");
  }
  hdr_t h = {(uint32_t)len, kind};
  memcpy(w->sb + w->slen, &h, sizeof h);
  memcpy(w->sb + w->slen + sizeof h, p, len);
  w->slen += sizeof h + len;
  w->inflight++;
  /* one write() per task while the pipe takes it; else left for POLLOUT */
  if (w->slen - w->soff == sizeof h + len) {
    ssize_t n = write(w->in, w->sb + w->soff, w->slen - w->soff);
    if (n > 0) w->soff += (size_t)n;
    if (w->soff == w->slen) w->soff = w->slen = 0;
  }
}

/* Run `msgs` messages of `len` payload bytes over nw workers, window per
 * worker; returns elapsed seconds. items_per_msg int64 items for SQUARE. */
static double cpool_run(wk_t *w, int nw, uint32_t kind, long msgs, size_t len,
                        long window) {
  char *payload = calloc(1, len ? len : 1);
  for (size_t i = 0; i + 8 <= len; i += 8) {
    int64_t v = (int64_t)(i / 8);
    memcpy(payload + i, &v, 8);
  }
  for (int i = 0; i < nw; i++) {
    fcntl(w[i].in, F_SETFL, O_NONBLOCK);
    fcntl(w[i].out, F_SETFL, O_NONBLOCK);
    if (!w[i].r.b) {
      w[i].r.cap = 256 * 1024 > len + 64 ? 256 * 1024 : len + 64;
      w[i].r.b = malloc(w[i].r.cap);
    }
  }
  long sent = 0, done = 0;
  uint64_t t0 = now_ns();
  struct pollfd pf[64];
  while (done < msgs) {
    for (int i = 0; i < nw; i++) {
      while (sent < msgs && w[i].inflight < window) {
        wk_queue(&w[i], kind, payload, len);
        sent++;
      }
      pf[2 * i] = (struct pollfd){w[i].in, w[i].slen > w[i].soff ? POLLOUT : 0, 0};
      pf[2 * i + 1] = (struct pollfd){w[i].out, POLLIN, 0};
    }
    if (poll(pf, (nfds_t)(2 * nw), 10000) <= 0) die("cpool stalled");
    for (int i = 0; i < nw; i++) {
      wk_t *k = &w[i];
      if (pf[2 * i].revents & (POLLOUT | POLLERR)) {
        ssize_t n = write(k->in, k->sb + k->soff, k->slen - k->soff);
        if (n > 0) k->soff += (size_t)n;
        if (k->soff == k->slen) k->soff = k->slen = 0;
      }
      if (pf[2 * i + 1].revents & (POLLIN | POLLHUP)) {
        rbuf_t *r = &k->r;
        if (r->lo && r->hi == r->lo) r->lo = r->hi = 0;
        if (r->cap - r->hi < 65536) {
          memmove(r->b, r->b + r->lo, r->hi - r->lo);
          r->hi -= r->lo, r->lo = 0;
        }
        ssize_t n = read(k->out, r->b + r->hi, r->cap - r->hi);
        if (n == 0) die("worker died");
        if (n > 0) r->hi += (size_t)n;
        for (;;) {
          hdr_t h;
          if (r->hi - r->lo < sizeof h) break;
          memcpy(&h, r->b + r->lo, sizeof h);
          if (r->hi - r->lo < sizeof h + h.len) {
            if (sizeof h + h.len > r->cap) {
              r->cap = sizeof h + h.len;
              r->b = realloc(r->b, r->cap);
            }
            break;
          }
          const char *p = r->b + r->lo + sizeof h;
          if (kind == K_SQUARE) { /* check the last item */
            int64_t v, want = (int64_t)(h.len / 8 - 1);
            memcpy(&v, p + h.len - 8, 8);
            if (v != want * want) die("bad square");
          } else if (kind == K_ECHO && h.len != len) {
            die("bad echo");
          }
          r->lo += sizeof h + h.len;
          k->inflight--;
          done++;
        }
      }
    }
  }
  double dt = (double)(now_ns() - t0) / 1e9;
  for (int i = 0; i < nw; i++) {
    fcntl(w[i].in, F_SETFL, 0);
    fcntl(w[i].out, F_SETFL, 0);
  }
  free(payload);
  return dt;
}

/* one blocking round trip on worker w (noop) */
static void cpool_rtt(wk_t *w) {
  hdr_t h = {8, K_NOOP};
  char m[16] = {0};
  memcpy(m, &h, sizeof h);
  if (write_all(w->in, m, sizeof m)) die("write");
  size_t got = 0;
  while (got < sizeof m) {
    ssize_t n = read(w->out, m + got, sizeof m - got);
    if (n <= 0) die("rtt read");
    got += (size_t)n;
  }
}

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* ---- metrics ---- */
static void m_pool_tps(const char *name) {
  long n = arg_long("n", 1000000), items = arg_long("items", 1);
  long msgs = (n + items - 1) / items;
  wk_t w[2];
  wk_start(&w[0]), wk_start(&w[1]);
  cpool_run(w, 2, K_SQUARE, msgs / 10 + 1, (size_t)items * 8, 256); /* warm */
  double dt = cpool_run(w, 2, K_SQUARE, msgs, (size_t)items * 8, 256);
  wk_stop(&w[0]), wk_stop(&w[1]);
  out_begin(name);
  out_num("value", (double)(msgs * items) / dt);
  out_str("unit", "items/s");
  out_num("seconds", dt);
  out_end();
}

static void m_echo(const char *name) {
  long size = arg_long("size", 1024), n = arg_long("n", 10000);
  long window = (4 << 20) / size;
  if (window < 1) window = 1;
  if (window > 256) window = 256;
  wk_t w[2];
  wk_start(&w[0]), wk_start(&w[1]);
  cpool_run(w, 2, K_ECHO, n / 10 + 1, (size_t)size, window);
  double dt = cpool_run(w, 2, K_ECHO, n, (size_t)size, window);
  wk_stop(&w[0]), wk_stop(&w[1]);
  out_begin(name);
  out_num("value", (double)n * (double)size / dt / 1e6);
  out_str("unit", "MB/s");
  out_end();
}

/* 64-byte ping-pong over two pipes: round-trip latency. */
static void m_pingpong(const char *name) {
  long n = arg_long("n", 20000);
  int a[2], b[2];
  if (xpipe(a) || xpipe(b)) die("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    char m[64];
    close(a[1]), close(b[0]);
    for (;;) {
      ssize_t r = read(a[0], m, sizeof m);
      if (r <= 0) _exit(0);
      if (write_all(b[1], m, (size_t)r)) _exit(1);
    }
  }
  close(a[0]), close(b[1]);
  double *lat = malloc(sizeof(double) * (size_t)n);
  char m[64] = {1};
  for (long i = -n / 10; i < n; i++) {
    uint64_t t0 = now_ns();
    if (write_all(a[1], m, 64)) die("write");
    size_t got = 0;
    while (got < 64) {
      ssize_t r = read(b[0], m + got, 64 - got);
      if (r <= 0) die("read");
      got += (size_t)r;
    }
    if (i >= 0) lat[i] = (double)(now_ns() - t0) / 1e9;
  }
  close(a[1]), close(b[0]);
  waitpid(pid, NULL, 0);
  out_begin(name);
  out_lat("us", 1e6, lat, (size_t)n);
  out_end();
  free(lat);
}

/* 64-byte messages streamed one way (reader reads 64 at a time). */
static void m_stream(const char *name) {
  long n = arg_long("n", 1000000);
  int a[2];
  if (xpipe(a)) die("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(a[0]);
    char m[64] = {1};
    for (long i = 0; i < n; i++)
      if (write_all(a[1], m, 64)) _exit(1);
    _exit(0);
  }
  close(a[1]);
  char m[64];
  uint64_t t0 = now_ns();
  for (long i = 0; i < n; i++) {
    size_t got = 0;
    while (got < 64) {
      ssize_t r = read(a[0], m + got, 64 - got);
      if (r <= 0) die("read");
      got += (size_t)r;
    }
  }
  double dt = (double)(now_ns() - t0) / 1e9;
  close(a[0]);
  waitpid(pid, NULL, 0);
  out_begin(name);
  out_num("value", (double)n / dt);
  out_str("unit", "msgs/s");
  out_end();
}

static pthread_mutex_t *pmutex(void) {
  pthread_mutex_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) die("mmap");
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(m, &a);
  return m;
}

static void m_mutex(const char *name) {
  long n = arg_long("n", 10000000);
  pthread_mutex_t *m = pmutex();
  for (long i = 0; i < n / 10; i++) pthread_mutex_lock(m), pthread_mutex_unlock(m);
  uint64_t t0 = now_ns();
  for (long i = 0; i < n; i++) pthread_mutex_lock(m), pthread_mutex_unlock(m);
  double dt = (double)(now_ns() - t0);
  out_begin(name);
  out_num("value", dt / (double)n);
  out_str("unit", "ns");
  out_end();
}

static void m_mutex_contended(const char *name) {
  long n = arg_long("n", 1000000);
  pthread_mutex_t *m = pmutex();
  volatile int64_t *x = (volatile int64_t *)((char *)m + 2048);
  uint64_t t0 = now_ns();
  pid_t p[2];
  for (int k = 0; k < 2; k++) {
    p[k] = fork();
    if (p[k] == 0) {
      for (long i = 0; i < n; i++) pthread_mutex_lock(m), (*x)++, pthread_mutex_unlock(m);
      _exit(0);
    }
  }
  waitpid(p[0], NULL, 0), waitpid(p[1], NULL, 0);
  double dt = (double)(now_ns() - t0) / 1e9;
  if (*x != 2 * n) die("lost increments");
  out_begin(name);
  out_num("value", 2.0 * (double)n / dt);
  out_str("unit", "ops/s");
  out_end();
}

/* Pool start until first result: fork 2 workers, one round trip. */
static void m_start(const char *name) {
  long reps = arg_long("reps", 20);
  double *v = malloc(sizeof(double) * (size_t)reps);
  for (long i = 0; i < reps; i++) {
    wk_t w[2];
    uint64_t t0 = now_ns();
    wk_start(&w[0]), wk_start(&w[1]);
    cpool_rtt(&w[0]);
    v[i] = (double)(now_ns() - t0) / 1e9;
    wk_stop(&w[0]), wk_stop(&w[1]);
  }
  out_begin(name);
  out_num("value", pct(v, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* close+join: close the in-pipes, drain to EOF, reap both workers. */
static void m_close_join(const char *name) {
  long reps = arg_long("reps", 20);
  double *v = malloc(sizeof(double) * (size_t)reps);
  for (long i = 0; i < reps; i++) {
    wk_t w[2];
    wk_start(&w[0]), wk_start(&w[1]);
    cpool_rtt(&w[0]), cpool_rtt(&w[1]);
    uint64_t t0 = now_ns();
    wk_stop(&w[0]), wk_stop(&w[1]);
    v[i] = (double)(now_ns() - t0) / 1e9;
  }
  out_begin(name);
  out_num("value", pct(v, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* SIGKILL an idle worker; notice via its pidfd, reap, fork a replacement,
 * and serve one round trip on it. Also: time until the new pid exists. */
static void m_replace(const char *name) {
  long reps = arg_long("reps", 20);
  double *up = malloc(sizeof(double) * (size_t)reps),
         *serve = malloc(sizeof(double) * (size_t)reps);
  wk_t w[2];
  wk_start(&w[0]), wk_start(&w[1]);
  for (long i = 0; i < reps; i++) {
    cpool_rtt(&w[0]), cpool_rtt(&w[1]);
    int pfd = pidfd_open_(w[0].pid);
    if (pfd < 0) die("pidfd_open");
    uint64_t t0 = now_ns();
    kill(w[0].pid, SIGKILL);
    struct pollfd p = {pfd, POLLIN, 0};
    while (poll(&p, 1, -1) < 0) {}
    close(pfd);
    wk_stop(&w[0]);
    wk_start(&w[0]);
    up[i] = (double)(now_ns() - t0) / 1e9;
    cpool_rtt(&w[0]);
    serve[i] = (double)(now_ns() - t0) / 1e9;
  }
  wk_stop(&w[0]), wk_stop(&w[1]);
  out_begin(name);
  out_num("value", pct(serve, (size_t)reps, 50) * 1e3);
  out_num("up", pct(up, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* A busy worker is SIGKILLed: time until the master knows (pidfd). */
static void m_lost(const char *name) {
  long reps = arg_long("reps", 20);
  double *v = malloc(sizeof(double) * (size_t)reps);
  for (long i = 0; i < reps; i++) {
    int a[2];
    if (xpipe(a)) die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
      char c = 1;
      write_all(a[1], &c, 1);
      for (;;) pause();
    }
    close(a[1]);
    char c;
    if (read(a[0], &c, 1) != 1) die("lost: child");
    close(a[0]);
    int pfd = pidfd_open_(pid);
    uint64_t t0 = now_ns();
    kill(pid, SIGKILL);
    struct pollfd p = {pfd, POLLIN, 0};
    while (poll(&p, 1, -1) < 0) {}
    waitpid(pid, NULL, 0);
    v[i] = (double)(now_ns() - t0) / 1e9;
    close(pfd);
  }
  out_begin(name);
  out_num("value", pct(v, (size_t)reps, 50) * 1e3);
  out_str("unit", "ms");
  out_end();
}

/* Timer floor for limits: sleep to an absolute deadline, lateness. */
static void m_lateness(const char *name) {
  long n = arg_long("n", 50), ms = arg_long("limit_ms", 20);
  double *v = malloc(sizeof(double) * (size_t)n);
  for (long i = 0; i < n; i++) {
    uint64_t dl = now_ns() + (uint64_t)ms * 1000000u;
    struct timespec ts = {(time_t)(dl / 1000000000u), (long)(dl % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    v[i] = (double)(now_ns() - dl) / 1e9;
  }
  out_begin(name);
  out_lat("ms", 1e3, v, (size_t)n);
  out_end();
}

int main(int argc, char **argv) {
  g_argc = argc, g_argv = argv;
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) die("usage: bench_floor METRIC [key=value...]");
  const char *m = argv[1];
  static const struct { const char *name; void (*fn)(const char *); } t[] = {
      {"pool_tps", m_pool_tps},     {"echo", m_echo},
      {"pingpong", m_pingpong},     {"stream", m_stream},
      {"mutex", m_mutex},           {"mutex_contended", m_mutex_contended},
      {"start", m_start},           {"close_join", m_close_join},
      {"replace", m_replace},       {"lost", m_lost},
      {"lateness", m_lateness},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(m, t[i].name)) {
      t[i].fn(m);
      return 0;
    }
  die("unknown metric %s", m);
}
