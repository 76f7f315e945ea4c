/* workloads.c: what fault-sweep runs while one fault point counts down.
 *
 * Each workload runs in its own process (fault-sweep --run ...), checks its
 * own results, and writes a verdict into the shared record. Faults are
 * allowed to fail work, never to lose it, corrupt it or resolve it twice:
 * every job must end with the right value or an accepted error type. */
#include "sweep.h"

#include <billiard/billiard.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sw_shared_t *S;
static const sw_accept_t *ACC;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  size_t used = strlen(S->detail);
  if (used + 2 >= sizeof S->detail) return;
  va_list ap;
  va_start(ap, fmt);
  if (used) S->detail[used++] = ';', S->detail[used++] = ' ';
  vsnprintf(S->detail + used, sizeof S->detail - used, fmt, ap);
  va_end(ap);
}

/* An error outcome is fine when its exception name (or OSError for -errno)
 * is in the profile's accept list. */
static int error_ok(int code, const char *where) {
  const char *name = code < 0 && !bl_err_is_billiard(code) ? "OSError"
                                                           : bl_err_exception(code);
  if (sw_accepts(ACC, name)) {
    S->errors++;
    return 1;
  }
  note("%s: unaccepted %s (%s)", where, name, bl_strerror(code));
  S->bad++;
  return 0;
}

/* ---------------------------------------------------------------- pool */
#define NAPPLY 8
#define NMAP 24
/* NAPPLY applies, then two maps: the shared map path, and the pipes (a
 * time limit needs a unit per chunk; docs/pool.md "Shared map path"). */
#define NJOBS (NAPPLY + 2)

static int t_echo(bl_task_ctx_t *ctx, const void *arg, size_t len) {
  return bl_task_return(ctx, arg, len);
}
static int t_square(bl_task_ctx_t *ctx, const void *arg, size_t len) {
  uint64_t x = 0;
  if (len != sizeof x) return bl_task_fail(ctx, "ValueError", "bad arg", NULL);
  memcpy(&x, arg, sizeof x);
  x *= x;
  return bl_task_return(ctx, &x, sizeof x);
}

static atomic_int resolved[NJOBS];

static void on_ok(bl_result_t *r, const void *v, size_t n, void *user) {
  atomic_fetch_add(&resolved[(intptr_t)user], 1);
}
static void on_err(bl_result_t *r, const bl_error_info_t *e, void *user) {
  atomic_fetch_add(&resolved[(intptr_t)user], 1);
}

/* method: NULL (fork) or "spawn" (workers re-exec this program, which
 * registers the tasks from a constructor: register_early below). */
static int pool_workload(int threads, const char *method) {
  if (method) bl_set_executable(program_invocation_name); /* valgrind: see start_method_workload */
  bl_pool_options_t po;
  bl_pool_options_init(&po);
  po.processes = 2;
  po.threads = threads;
  po.start_method = method;
  po.max_restart_freq_ms = 1000;
  bl_pool_t *pool = NULL;
  int rc = bl_pool_new(&pool, &po);
  if (rc) return error_ok(rc, "pool_new") ? 0 : 1;

  bl_result_t *res[NJOBS] = {0};
  int submitted[NJOBS] = {0};
  uint64_t vals[NMAP];
  const void *args[NMAP];
  size_t lens[NMAP];
  for (int i = 0; i < NMAP; i++) {
    vals[i] = (uint64_t)i + 3;
    args[i] = &vals[i];
    lens[i] = sizeof vals[i];
  }
  for (int i = 0; i < NJOBS; i++) {
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.callback = on_ok;
    ao.error_callback = on_err;
    ao.user = (void *)(intptr_t)i;
    ao.chunksize = 3;
    if (i == NAPPLY + 1) ao.time_limit_ms = 60000;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "job-%d", i);
    rc = i < NAPPLY ? bl_pool_apply_async(pool, "sweep-echo", msg, (size_t)n, &ao, &res[i])
                    : bl_pool_map_async(pool, "sweep-square", args, lens, NMAP, &ao, &res[i]);
    if (rc) {
      if (!error_ok(rc, "submit")) break;
      continue;
    }
    submitted[i] = 1;
    S->jobs++;
  }
  for (int i = 0; i < NJOBS; i++) {
    if (!submitted[i]) continue;
    const void *v;
    size_t len;
    rc = bl_result_get(res[i], 20000, &v, &len, NULL);
    if (rc == BL_ETIMEOUT) {
      note("job %d unresolved after 20 s", i);
      S->bad++;
      continue;
    }
    if (rc) {
      error_ok(rc, i < NAPPLY ? "apply" : "map");
      continue;
    }
    if (i < NAPPLY) {
      char msg[32];
      int n = snprintf(msg, sizeof msg, "job-%d", i);
      if (len != (size_t)n || memcmp(v, msg, len) != 0) {
        note("job %d: wrong value", i);
        S->bad++;
      } else {
        S->ok++;
      }
      continue;
    }
    int good = bl_result_count(res[i]) == NMAP;
    for (size_t k = 0; good && k < NMAP; k++) {
      uint64_t x;
      good = bl_result_item(res[i], k, &v, &len) == 0 && len == sizeof x;
      if (good) memcpy(&x, v, sizeof x), good = x == vals[k] * vals[k];
    }
    if (good) S->ok++;
    else note("map: wrong items"), S->bad++;
  }
  bl_pool_close(pool);
  rc = bl_pool_join(pool, 20000);
  if (rc == BL_ETIMEOUT) note("pool join hung"), S->bad++;
  bl_pool_free(&pool);
  for (int i = 0; i < NJOBS; i++) {
    int n = atomic_load(&resolved[i]);
    if (submitted[i] && n != 1) note("job %d resolved %d times", i, n), S->bad++;
    bl_result_free(&res[i]);
  }
  return S->bad ? 1 : 0;
}

/* ------------------------------------------------------ process + pipe */
#define NMSG 5
static bl_conn_t *child_end, *parent_end;

static int conn_echo(const void *arg, size_t len) {
  bl_conn_free(&parent_end); /* else the parent's close never reads as EOF here */
  for (int i = 0; i < NMSG; i++) {
    void *m = NULL;
    size_t n;
    if (bl_conn_recv_bytes(child_end, &m, &n, 0) != 0) return 3;
    int rc = bl_conn_send_bytes(child_end, m, n, 0, BL_CONN_REST);
    free(m);
    if (rc) return 4;
  }
  return 0;
}

static int process_workload(void) {
  bl_register_target("sweep-conn-echo", conn_echo);
  int rc = bl_pipe(&parent_end, &child_end, 1);
  bl_conn_t *a = parent_end;
  if (rc) return error_ok(rc, "pipe") ? 0 : 1;
  bl_process_t *p = NULL;
  rc = bl_process_new(&p, "sweep-conn-echo", NULL, 0, NULL);
  if (rc) {
    error_ok(rc, "process_new");
    goto out;
  }
  S->jobs++;
  rc = bl_process_start(p);
  bl_conn_close(child_end); /* the child has its copy */
  if (rc) {
    error_ok(rc, "start");
    goto out;
  }
  int failed = 0;
  for (int i = 0; i < NMSG && !failed; i++) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "message %d of the round trip", i);
    rc = bl_conn_send_bytes(a, msg, (size_t)n, 0, BL_CONN_REST);
    if (rc) {
      error_ok(rc, "send");
      failed = 1;
      break;
    }
    if (bl_conn_poll(a, 20000) != 1) {
      note("no echo in 20 s"), S->bad++, failed = 1;
      break;
    }
    void *m = NULL;
    size_t len;
    rc = bl_conn_recv_bytes(a, &m, &len, 0);
    if (rc) {
      error_ok(rc, "recv");
      failed = 1;
    } else if (len != (size_t)n || memcmp(m, msg, len) != 0) {
      note("echo %d corrupted", i), S->bad++, failed = 1;
    }
    free(m);
  }
  bl_conn_close(a); /* a child blocked in recv sees EOF */
  if (bl_process_join(p, 20000) != 0) {
    note("child not joined in 20 s"), S->bad++;
    bl_process_kill(p);
    bl_process_join(p, -1);
  }
  int code = 0;
  bl_process_exitcode(p, &code);
  if (!failed && code == 0) S->ok++;
  else if (!failed && S->fired) S->errors++; /* the child's side failed */
  else if (!failed) note("child exit %d with no fault fired", code), S->bad++;
out:
  bl_process_free(&p);
  bl_conn_free(&parent_end);
  bl_conn_free(&child_end);
  return S->bad ? 1 : 0;
}

/* ------------------------------------------------- queue producer/consumer */
#define NITEMS 40
#define BIG 9000 /* > ring: streamed in chunks (reaches mid-stream points) */
static bl_queue_t *Q;

static size_t item_len(uint32_t seq) { return seq % 10 == 7 ? BIG : 16 + seq % 13; }
static void item_fill(uint8_t *b, uint32_t seq, size_t len) {
  memcpy(b, &seq, sizeof seq);
  for (size_t i = sizeof seq; i < len; i++) b[i] = (uint8_t)(seq * 31 + i);
}
static int item_check(const uint8_t *b, size_t len, uint32_t *seq) {
  if (len < sizeof *seq) return 0;
  memcpy(seq, b, sizeof *seq);
  if (*seq >= NITEMS || len != item_len(*seq)) return 0;
  for (size_t i = sizeof *seq; i < len; i++)
    if (b[i] != (uint8_t)(*seq * 31 + i)) return 0;
  return 1;
}

static int producer(const void *arg, size_t len) {
  static uint8_t buf[BIG];
  for (uint32_t s = 0; s < NITEMS; s++) {
    size_t n = item_len(s);
    item_fill(buf, s, n);
    if (bl_queue_put(Q, buf, n, 10000) != 0) return 3;
  }
  return 0;
}

/* Takes items until the producer is done and the ring is drained: strictly
 * increasing sequence, intact bytes. A gap is allowed only when a fault
 * fired (an item lost with the process that was moving it). */
static int consume(int patience_ms) {
  int waited = 0;
  for (;;) {
    void *b = NULL;
    size_t n;
    int done = atomic_load(&S->q_done) != 0;
    int rc = bl_queue_get(Q, &b, &n, 20);
    if (rc == BL_EEMPTY) {
      if (done) return 0; /* producer reaped before this empty get: drained */
      if ((waited += 20) >= patience_ms) return 5;
      continue;
    }
    if (rc) return 4;
    waited = 0;
    uint32_t seq;
    int k = item_check(b, n, &seq);
    free(b);
    if (k == 0) return 1;
    long want = atomic_load(&S->q_next);
    if ((long)seq < want || ((long)seq > want && !atomic_load(&S->fired))) return 2;
    atomic_store(&S->q_next, (long)seq + 1);
    atomic_fetch_add(&S->q_got, 1);
  }
}
static int consumer(const void *arg, size_t len) { return consume(20000); }

static int queue_workload(void) {
  bl_register_target("sweep-producer", producer);
  bl_register_target("sweep-consumer", consumer);
  bl_queue_options_t qo;
  bl_queue_options_init(&qo);
  qo.ring_bytes = 4096;
  int rc = bl_queue_new(&Q, &qo);
  if (rc) return error_ok(rc, "queue_new") ? 0 : 1;
  bl_process_t *pc = NULL, *pp = NULL;
  S->jobs++;
  if ((rc = bl_process_new(&pc, "sweep-consumer", NULL, 0, NULL)) ||
      (rc = bl_process_start(pc))) {
    error_ok(rc, "consumer start");
    goto out;
  }
  if ((rc = bl_process_new(&pp, "sweep-producer", NULL, 0, NULL)) ||
      (rc = bl_process_start(pp))) {
    error_ok(rc, "producer start");
    atomic_store(&S->q_done, 1);
    goto join;
  }
  struct pollfd fds[2] = {{bl_process_sentinel(pp), POLLIN, 0},
                          {bl_process_sentinel(pc), POLLIN, 0}};
  int pcode = INT32_MIN, ccode = INT32_MIN;
  /* The producer ends first (normally): then the parent queues END. If
   * the consumer ends first (killed by a fault), the parent consumes in its
   * place, so the producer never blocks on a full ring. */
  for (;;) {
    if (pcode == INT32_MIN && poll(&fds[0], 1, 0) > 0) {
      bl_process_join(pp, -1);
      bl_process_exitcode(pp, &pcode);
      atomic_store(&S->q_done, 1);
    }
    if (ccode == INT32_MIN && poll(&fds[1], 1, 0) > 0) {
      bl_process_join(pc, -1);
      bl_process_exitcode(pc, &ccode);
    }
    if (ccode != INT32_MIN) {
      int k = consume(pcode == INT32_MIN ? 100 : 20000);
      if (k == 1 || k == 2 || k == 4) {
        note("parent consumer: %s", k == 1 ? "torn item" : k == 2 ? "reordered item" : "get failed");
        S->bad++;
        break;
      }
      if (pcode != INT32_MIN) break; /* drained */
      continue;
    }
    if (poll(fds, 2, 30000) <= 0) {
      note("queue workload hung"), S->bad++;
      break;
    }
  }
  if (ccode == 1 || ccode == 2) note("consumer saw a %s item", ccode == 1 ? "torn" : "reordered"), S->bad++;
  if (ccode == 5) note("consumer timed out"), S->bad++;
  if (pcode == 0 && ccode == 0 && atomic_load(&S->q_got) == NITEMS) S->ok++;
  else if (!S->fired) note("queue lost items with no fault (p=%d c=%d got=%ld)", pcode, ccode, (long)atomic_load(&S->q_got)), S->bad++;
  else S->errors++;
  goto out;
join:
  bl_process_join(pc, 30000);
out:
  if (pp && bl_process_is_alive(pp) == 1) bl_process_kill(pp), bl_process_join(pp, -1);
  if (pc && bl_process_is_alive(pc) == 1) bl_process_kill(pc), bl_process_join(pc, -1);
  bl_process_free(&pp);
  bl_process_free(&pc);
  bl_queue_free(&Q);
  return S->bad ? 1 : 0;
}

/* ------------------------------------- spawn / forkserver start methods */
/* A spawn child and the forkserver are fresh images of this program: their
 * targets must be registered before libbilliard's constructor looks. */
static int exit7(const void *arg, size_t len) {
  return len == 3 && memcmp(arg, "abc", 3) == 0 ? 7 : 1;
}
/* From a constructor: a spawn child (process or pool worker) re-execs
 * this program and must know the names before its main would run. */
__attribute__((constructor)) static void register_early(void) {
  bl_register_target("sweep-exit7", exit7);
  bl_register_task("sweep-echo", t_echo);
  bl_register_task("sweep-square", t_square);
}

static int start_method_workload(const char *method) {
  /* Under valgrind /proc/self/exe is valgrind's tool, not this program:
   * name the image explicitly (argv[0] is the absolute path the sweep ran). */
  bl_set_executable(program_invocation_name);
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = method;
  bl_process_t *p = NULL;
  int rc = bl_process_new(&p, "sweep-exit7", "abc", 3, &o);
  if (rc) return error_ok(rc, "process_new") ? 0 : 1;
  S->jobs++;
  rc = bl_process_start(p);
  if (rc) {
    error_ok(rc, "start");
  } else {
    if (bl_process_join(p, 20000) != 0) {
      note("child not joined in 20 s"), S->bad++;
      bl_process_kill(p);
      bl_process_join(p, -1);
    }
    int code = 0;
    bl_process_exitcode(p, &code);
    if (code == 7) S->ok++;
    else note("%s child exit %d, want 7", method, code), S->bad++;
  }
  bl_process_free(&p);
  return S->bad ? 1 : 0;
}

/* ------------------------------------------------------------ handles */
#define NHITEMS 4

static int put_items(const void *arg, size_t len) {
  (void)arg, (void)len;
  bl_queue_t *q = NULL;
  if (bl_queue_attach(&q, 0) != 0) return 3;
  int rc = 0;
  for (int i = 0; i < NHITEMS && !rc; i++) {
    char m[16];
    int n = snprintf(m, sizeof m, "item-%d", i);
    if (bl_queue_put(q, m, (size_t)n, -1) != 0) rc = 4;
  }
  bl_queue_free(&q);
  return rc;
}

/* A Queue handed to a forked child by handle: the child puts, we get. */
static int handle_workload(void) {
  bl_register_target("sweep-put-items", put_items);
  bl_queue_t *q = NULL;
  int rc = bl_queue_new(&q, NULL);
  if (rc) return error_ok(rc, "queue_new") ? 0 : 1;
  bl_process_t *p = NULL;
  rc = bl_process_new(&p, "sweep-put-items", NULL, 0, NULL);
  if (rc) {
    error_ok(rc, "process_new");
    goto out;
  }
  S->jobs++;
  rc = bl_process_add_handle(p, BL_HANDLE_QUEUE, q);
  if (rc < 0) {
    error_ok(rc, "add_handle");
    goto out;
  }
  rc = bl_process_start(p);
  if (rc) {
    error_ok(rc, "start");
    goto out;
  }
  int got = 0;
  for (int i = 0; i < NHITEMS; i++) {
    void *b = NULL;
    size_t n;
    char want[16];
    int wn = snprintf(want, sizeof want, "item-%d", i);
    if (bl_queue_get(q, &b, &n, 20000) != 0) break;
    got += n == (size_t)wn && memcmp(b, want, n) == 0;
    free(b);
  }
  if (bl_process_join(p, 20000) != 0) {
    note("child not joined in 20 s"), S->bad++;
    bl_process_kill(p);
    bl_process_join(p, -1);
  }
  int code = -1;
  bl_process_exitcode(p, &code);
  if (code == 0 && got == NHITEMS) S->ok++;
  else note("child exit %d, %d of %d items", code, got, NHITEMS), S->bad++;
out:
  bl_process_free(&p);
  bl_queue_free(&q);
  return S->bad ? 1 : 0;
}

/* ------------------------------------------------------------ manager */
static int manager_workload(void) {
  bl_manager_t *m = NULL;
  int rc = bl_manager_new(&m, NULL);
  if (rc) return error_ok(rc, "manager_new") ? 0 : 1;
  S->jobs++;
  rc = bl_manager_start(m);
  if (rc) {
    error_ok(rc, "manager_start");
    bl_manager_free(&m);
    return S->bad ? 1 : 0;
  }
  bl_proxy_t *d = NULL;
  void *v = NULL;
  size_t len = 0;
  if ((rc = bl_manager_dict(m, &d)) || (rc = bl_dict_set(d, "k", "value", 5)) ||
      (rc = bl_dict_get(d, "k", &v, &len))) {
    error_ok(rc, "dict");
  } else if (len == 5 && memcmp(v, "value", 5) == 0) {
    S->ok++;
  } else {
    note("dict returned the wrong value"), S->bad++;
  }
  free(v);
  bl_proxy_free(&d);
  if (bl_manager_shutdown(m) != 0) note("manager shutdown failed"), S->bad++;
  bl_manager_free(&m);
  return S->bad ? 1 : 0;
}

int sw_run_workload(const char *name, sw_shared_t *shared, const sw_accept_t *acc) {
  S = shared;
  ACC = acc;
  if (strcmp(name, "pool") == 0) return pool_workload(1, NULL);
  if (strcmp(name, "pool-step") == 0) return pool_workload(0, NULL);
  if (strcmp(name, "pool-spawn") == 0) return pool_workload(1, "spawn");
  if (strcmp(name, "handles") == 0) return handle_workload();
  if (strcmp(name, "process") == 0) return process_workload();
  if (strcmp(name, "queue") == 0) return queue_workload();
  if (strcmp(name, "spawn") == 0) return start_method_workload("spawn");
  if (strcmp(name, "forkserver") == 0) return start_method_workload("forkserver");
  if (strcmp(name, "manager") == 0) return manager_workload();
  note("unknown workload %s", name);
  return 2;
}
