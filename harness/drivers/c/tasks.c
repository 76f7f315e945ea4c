/* tasks.c: the task catalogue (INTERPRETING.md §5) as registered bl_task_fn.
 *
 * Arguments arrive as JSON text (the driver dumps the command's `args`);
 * results go back as JSON text. Everything here runs in a worker: the
 * counters and the `alloc` hoard are per worker process (the driver itself
 * never runs a task, so a fork starts them at zero; a spawn or forkserver
 * worker is a fresh image where they start at zero anyway). Time limits are only
 * cooperative in C: sleep and busy watch the soft limit and return
 * BL_ESOFTTIMELIMIT when it fires (the pool reports SoftTimeLimitExceeded);
 * soft_aware observes it and still returns a value. */
#include "bcd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned tasks_run;       /* `count` */
static int init_ran;             /* `init_ran`: init_ok ran in this worker */

struct hoard {
  struct hoard *next;
  char mem[];
};
static struct hoard *hoard;      /* `alloc`: kept for the worker's life */

static int ret(bl_task_ctx_t *ctx, json_t *v) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(v);
  if (s == NULL)
    return bl_task_fail(ctx, "MemoryError", "cannot encode the result", NULL);
  int rc = bl_task_return(ctx, s, strlen(s));
  free(s);
  return rc;
}

static uint32_t ms_of(const json_t *a, const char *key) {
  double s = bcd_num(a, key, 0);
  int ms = bcd_ms(s);
  return (uint32_t)ms;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void plain_sleep(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Numbers: integers stay integers (square of 7 is 49, not 49.0). */
static json_t *num_op(const json_t *x, const json_t *y, int mul) {
  if (json_is_integer(x) && json_is_integer(y)) {
    json_int_t a = json_integer_value(x), b = json_integer_value(y);
    return json_integer(mul ? a * b : a + b);
  }
  if (json_is_number(x) && json_is_number(y)) {
    double a = json_number_value(x), b = json_number_value(y);
    return json_real(mul ? a * b : a + b);
  }
  if (!mul && json_is_string(x) && json_is_string(y)) {
    size_t la = json_string_length(x), lb = json_string_length(y);
    char *s = malloc(la + lb + 1);
    if (s == NULL)
      return NULL;
    memcpy(s, json_string_value(x), la);
    memcpy(s + la, json_string_value(y), lb);
    json_t *r = json_stringn(s, la + lb);
    free(s);
    return r;
  }
  return NULL;
}

/* ---- tasks: body(ctx, args) ---- */
static int t_noop(bl_task_ctx_t *c, json_t *a) {
  (void)a;
  return ret(c, json_null());
}

static int t_echo(bl_task_ctx_t *c, json_t *a) {
  json_t *v = json_object_get(a, "value");
  return ret(c, v ? json_incref(v) : json_null());
}

/* A missing argument fails as Python's a['x'] does. */
static int missing(bl_task_ctx_t *c, const char *key) {
  char msg[64];
  snprintf(msg, sizeof msg, "'%s'", key);
  return bl_task_fail(c, "KeyError", msg, NULL);
}

static int t_square(bl_task_ctx_t *c, json_t *a) {
  json_t *x = json_object_get(a, "x");
  if (x == NULL)
    return missing(c, "x");
  json_t *r = num_op(x, x, 1);
  return r ? ret(c, r) : bl_task_fail(c, "TypeError", "x is not a number",
                                      NULL);
}

static int t_add(bl_task_ctx_t *c, json_t *a) {
  if (json_object_get(a, "a") == NULL)
    return missing(c, "a");
  if (json_object_get(a, "b") == NULL)
    return missing(c, "b");
  json_t *r = num_op(json_object_get(a, "a"), json_object_get(a, "b"), 0);
  return r ? ret(c, r) : bl_task_fail(c, "TypeError", "cannot add a and b",
                                      NULL);
}

static int t_pid(bl_task_ctx_t *c, json_t *a) {
  (void)a;
  return ret(c, json_integer(getpid()));
}

static int t_sleep(bl_task_ctx_t *c, json_t *a) {
  int rc = bl_task_sleep(c, ms_of(a, "seconds"));
  return rc ? rc : ret(c, json_null());
}

static int t_busy(bl_task_ctx_t *c, json_t *a) {
  uint64_t end = now_ns() + (uint64_t)ms_of(a, "seconds") * 1000000u;
  volatile unsigned long spin = 0;
  while (now_ns() < end) {
    for (int i = 0; i < 10000; i++)
      spin++;
    if (bl_task_soft_limit_exceeded(c))
      return BL_ESOFTTIMELIMIT;
  }
  return ret(c, json_null());
}

static int t_soft_aware(bl_task_ctx_t *c, json_t *a) {
  if (bl_task_sleep(c, ms_of(a, "seconds")) == BL_ESOFTTIMELIMIT)
    return ret(c, json_pack("{s:b}", "soft", 1));
  json_t *v = json_object_get(a, "value");
  return ret(c, v ? json_incref(v) : json_null());
}

static int t_fail(bl_task_ctx_t *c, json_t *a) {
  const char *type = bcd_str(a, "type");
  const char *msg = bcd_str(a, "message");
  return bl_task_fail(c, type ? type : "RuntimeError", msg ? msg : "",
                      "Traceback (C task fail)");
}

static int t_exit(bl_task_ctx_t *c, json_t *a) {
  (void)c;
  int code = (int)bcd_num(a, "code", 0);
  json_decref(a); /* run() never gets it back: leave nothing to valgrind */
  _exit(code);
}

/* Send ourselves sig. Fault signals get their default action first, as a
 * Python process has them: sanitizer runtimes install handlers that would
 * turn the death into exit(1). */
static void kill_self(int sig) {
  if (sig <= 0)
    sig = SIGKILL;
  if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL)
    signal(sig, SIG_DFL);
  raise(sig);
}

static int t_kill_self(bl_task_ctx_t *c, json_t *a) {
  kill_self(bcd_signum(json_object_get(a, "signal")));
  plain_sleep(5000); /* a handled signal may let the task go on */
  return ret(c, json_null());
}

static void segv(void) {
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  _exit(139); /* not reached */
}

static int t_crash(bl_task_ctx_t *c, json_t *a) {
  (void)c;
  json_decref(a);
  segv();
  return 0;
}

static int t_alloc(bl_task_ctx_t *c, json_t *a) {
  size_t n = (size_t)bcd_num(a, "mib", 1) * 1024u * 1024u;
  struct hoard *h = malloc(sizeof *h + n);
  if (h == NULL)
    return bl_task_fail(c, "MemoryError", "alloc failed", NULL);
  memset(h->mem, 1, n);
  h->next = hoard;
  hoard = h;
  return ret(c, json_null());
}

static int t_sleep_echo(bl_task_ctx_t *c, json_t *a) {
  int rc = bl_task_sleep(c, ms_of(a, "seconds"));
  if (rc)
    return rc;
  json_t *v = json_object_get(a, "value");
  return ret(c, v ? json_incref(v) : json_null());
}

static int t_count(bl_task_ctx_t *c, json_t *a) {
  (void)a;
  return ret(c, json_integer(tasks_run));
}

static int t_init_ran(bl_task_ctx_t *c, json_t *a) {
  (void)a;
  return ret(c, json_boolean(init_ran));
}

/* ---- initializers ---- */
static int i_ok(bl_task_ctx_t *c, json_t *a) {
  (void)c;
  (void)a;
  init_ran = 1;
  return 0;
}

static int i_fail(bl_task_ctx_t *c, json_t *a) { return t_fail(c, a); }

static int i_exit(bl_task_ctx_t *c, json_t *a) { return t_exit(c, a); }

static int i_crash(bl_task_ctx_t *c, json_t *a) { return t_crash(c, a); }

/* ---- registration: a bl_task_fn wrapper per body ---- */
typedef int (*body_fn)(bl_task_ctx_t *, json_t *);

static int run(bl_task_ctx_t *c, const void *arg, size_t len, body_fn fn,
               int counted) {
  json_error_t err;
  json_t *a = len ? json_loadb(arg, len, 0, &err) : json_object();
  if (a == NULL)
    return bl_task_fail(c, "ValueError", "task arguments are not JSON", NULL);
  if (counted)
    tasks_run++;
  int rc = fn(c, a);
  json_decref(a);
  return rc;
}

#define TASKS(X)                                                              \
  X(noop, t_noop, 1) X(echo, t_echo, 1) X(square, t_square, 1)                \
  X(add, t_add, 1) X(pid, t_pid, 1) X(sleep, t_sleep, 1)                      \
  X(busy, t_busy, 1) X(soft_aware, t_soft_aware, 1) X(fail, t_fail, 1)        \
  X(exit, t_exit, 1) X(kill_self, t_kill_self, 1) X(crash, t_crash, 1)        \
  X(alloc, t_alloc, 1) X(sleep_echo, t_sleep_echo, 1) X(count, t_count, 1)    \
  X(init_ran, t_init_ran, 1)                                                  \
  X(init_ok, i_ok, 0) X(init_fail, i_fail, 0) X(init_exit, i_exit, 0)         \
  X(init_crash, i_crash, 0)

#define WRAP(name, body, counted)                                             \
  static int w_##name(bl_task_ctx_t *c, const void *arg, size_t len) {        \
    return run(c, arg, len, body, counted);                                   \
  }
TASKS(WRAP)
#undef WRAP

static const struct {
  const char *name;
  bl_task_fn fn;
} catalogue[] = {
#define ENTRY(name, body, counted) {#name, w_##name},
    TASKS(ENTRY)
#undef ENTRY
};

/* ---- process targets that need no shared object (the others: ops_sync) */
static json_t *target_args(const void *arg, size_t len) {
  json_error_t err;
  json_t *a = len ? json_loadb(arg, len, 0, &err) : NULL;
  return a ? a : json_object();
}

static int p_exit(const void *arg, size_t len) {
  json_t *a = target_args(arg, len);
  int code = (int)bcd_num(a, "code", 0);
  json_decref(a);
  return code;
}

static int p_sleep(const void *arg, size_t len) {
  json_t *a = target_args(arg, len);
  uint32_t ms = ms_of(a, "seconds");
  json_decref(a);
  plain_sleep(ms);
  return 0;
}

static int p_kill_self(const void *arg, size_t len) {
  json_t *a = target_args(arg, len);
  int sig = bcd_signum(json_object_get(a, "signal"));
  json_decref(a);
  kill_self(sig);
  plain_sleep(5000);
  return 0;
}

/* conn_send {conn, data | obj | data + as_object} / conn_recv {conn}: the
 * connection comes as a process handle (every start method, ops_sync.c),
 * else from the handle table a fork child inherited. */
static bl_conn_t *target_conn(const json_t *a, int *attached) {
  int i = bcd_handle_of(a, "conn", NULL);
  bl_conn_t *c = NULL;
  *attached = i >= 0;
  if (i < 0)
    return bcd_find(bcd_str(a, "conn"), BCD_CONN);
  return bl_conn_attach(&c, (size_t)i) == 0 ? c : NULL;
}

static int p_conn_send(const void *arg, size_t len) {
  json_t *a = target_args(arg, len);
  int attached;
  bl_conn_t *c = target_conn(a, &attached);
  char *data;
  size_t n;
  int rc;
  if (c && (json_object_get(a, "obj") != NULL || bcd_bool(a, "as_object", 0))) {
    /* an object (obj, or data generated as a string): its JSON text */
    json_t *v = json_object_get(a, "obj") != NULL
                    ? json_incref(json_object_get(a, "obj"))
                    : bcd_object_arg(a);
    data = v ? bcd_object_text(v) : NULL;
    json_decref(v);
    rc = data ? 0 : -ENOMEM;
    n = data ? strlen(data) : 0;
  } else {
    rc = c ? bcd_payload(json_object_get(a, "data"), &data, &n) : -EINVAL;
  }
  json_decref(a);
  if (rc == 0)
    rc = bl_conn_send_bytes(c, data, n, 0, BL_CONN_REST) ? 1 : 0;
  else
    rc = 2;
  free(data);
  if (attached)
    bl_conn_free(&c);
  return rc;
}

static int p_conn_recv(const void *arg, size_t len) {
  json_t *a = target_args(arg, len);
  int attached;
  bl_conn_t *c = target_conn(a, &attached);
  json_decref(a);
  if (c == NULL)
    return 2;
  void *buf;
  size_t n;
  int rc = bl_conn_recv_bytes(c, &buf, &n, 0);
  if (rc == 0)
    free(buf);
  if (attached)
    bl_conn_free(&c);
  return rc ? 1 : 0;
}

/* The preload unit `marker` (context.set_forkserver_preload): running it
 * is the mark, which forkserver children inherit; preload_marked exits 0
 * when the mark is set in the child, 1 when not. */
static volatile int preload_mark;

static int p_marker(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  preload_mark = 1;
  return 0;
}

static int p_preload_marked(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return preload_mark ? 0 : 1;
}

typedef struct {
  const char *name;
  bl_target_fn fn;
} target_t;

/* Targets that need nothing inherited: registered from a constructor so a
 * spawn or forkserver child (a fresh image of this program, main() never
 * runs) finds them (docs/contexts.md). */
static const target_t self_targets[] = {
    {"exit", p_exit}, {"sleep", p_sleep}, {"kill_self", p_kill_self},
    {"marker", p_marker}, {"preload_marked", p_preload_marked}};
/* Targets given their connection as a process handle (any method). */
static const target_t targets[] = {
    {"conn_send", p_conn_send}, {"conn_recv", p_conn_recv},
};

/* The catalogue is self-contained too: registered here as well, so that
 * pool workers started by spawn or forkserver (fresh images) find it. */
__attribute__((constructor)) static void register_self_targets(void) {
  for (size_t i = 0; i < sizeof self_targets / sizeof self_targets[0]; i++)
    (void)bl_register_target(self_targets[i].name, self_targets[i].fn);
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
    (void)bl_register_target(targets[i].name, targets[i].fn);
  for (size_t i = 0; i < sizeof catalogue / sizeof catalogue[0]; i++)
    (void)bl_register_task(catalogue[i].name, catalogue[i].fn);
}

int bcd_target_self_contained(const char *name) {
  for (size_t i = 0; i < sizeof self_targets / sizeof self_targets[0]; i++)
    if (strcmp(self_targets[i].name, name) == 0)
      return 1;
  return 0;
}

int bcd_register_tasks(void) {
  for (size_t i = 0; i < sizeof catalogue / sizeof catalogue[0]; i++)
    if (bl_register_task(catalogue[i].name, catalogue[i].fn) != 0)
      return -1;
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
    if (bl_register_target(targets[i].name, targets[i].fn) != 0)
      return -1;
  if (bcd_register_manager_targets() != 0)
    return -1;
  return bcd_register_sync_targets();
}

json_t *bcd_task_names(void) {
  json_t *a = json_array();
  for (size_t i = 0; i < sizeof catalogue / sizeof catalogue[0]; i++)
    json_array_append_new(a, json_string(catalogue[i].name));
  return a;
}
