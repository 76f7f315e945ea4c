/* driver.c: bc-driver-c main loop: hello, one command at a time, teardown.
 *
 * Protocol v1, harness/INTERPRETING.md. Replies and events are whole JSON
 * lines on stdout (util.c); logs go to stderr. At stdin EOF every object is
 * torn down in an order that lets each free() find its dependencies alive:
 * iterators, pools (terminate, join, free), jobs, processes, then the rest. */
#include "bcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bcd_driver_t bcd = {
    .out_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- handles ---- */
char *bcd_new_name(const json_t *a, const char *prefix, bcd_err_t *e) {
  const char *as = bcd_str(a, "as");
  char buf[64];
  if (as == NULL) {
    snprintf(buf, sizeof buf, "%s%u", prefix, ++bcd.nanon);
    as = buf;
  }
  for (bcd_handle_t *h = bcd.handles; h; h = h->next)
    if (strcmp(h->name, as) == 0) {
      bcd_fail(e, "ValueError", "handle %s already exists", as);
      return NULL;
    }
  char *n = strdup(as);
  if (n == NULL)
    bcd_fail(e, "MemoryError", "out of memory");
  return n;
}

bcd_handle_t *bcd_add(char *name, bcd_kind_t kind, void *obj,
                      void (*destroy)(void *)) {
  bcd_handle_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    abort();
  h->name = name;
  h->kind = kind;
  h->obj = obj;
  h->destroy = destroy;
  h->next = bcd.handles;
  bcd.handles = h;
  return h;
}

void *bcd_find(const char *name, bcd_kind_t kind) {
  if (name == NULL)
    return NULL;
  for (bcd_handle_t *h = bcd.handles; h; h = h->next)
    if (h->kind == kind && strcmp(h->name, name) == 0)
      return h->obj;
  return NULL;
}

static const char *kind_name(bcd_kind_t k) {
  static const char *const n[BCD_KIND_MAX] = {
      "?", "pool", "job", "iter", "process", "conn", "queue",
      "lock", "event", "condition", "barrier", "value", "array",
      "manager", "proxy"};
  return k > 0 && k < BCD_KIND_MAX ? n[k] : "?";
}

void *bcd_lookup(const json_t *a, const char *key, bcd_kind_t kind,
                 bcd_err_t *e) {
  const char *name = bcd_str(a, key);
  if (name == NULL)
    return bcd_fail(e, "ValueError", "missing %s handle", key);
  void *o = bcd_find(name, kind);
  if (o == NULL)
    return bcd_fail(e, "ValueError", "unknown %s handle %s", kind_name(kind),
                    name);
  return o;
}

/* ---- dispatch ---- */
static const bcd_op_t *const tables[] = {bcd_ops_pool, bcd_ops_process,
                                         bcd_ops_sync, bcd_ops_misc,
                                         bcd_ops_manager};

static bcd_op_fn find_op(const char *op) {
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const bcd_op_t *o = tables[t]; o->name; o++)
      if (strcmp(o->name, op) == 0)
        return o->fn;
  return NULL;
}

static void reply_error(json_t *id, const bcd_err_t *e) {
  json_t *err = json_pack("{s:s,s:s}", "type", e->type, "message",
                          e->message);
  if (e->code)
    json_object_set_new(err, "code", json_string(e->code));
  json_t *m = json_pack("{s:O,s:b,s:o}", "id", id, "ok", 0, "error", err);
  bcd_emit(m);
}

/* The command being run, as a global root (see util.c's roots). */
static json_t *current;

static void handle_line(const char *line, size_t len) {
  json_error_t jerr;
  bcd_err_t e = {{0}, {0}, NULL};
  json_t *msg = current = json_loadb(line, len, 0, &jerr);
  if (!json_is_object(msg)) {
    bcd_log("not a JSON object: %s", jerr.text);
    json_decref(msg);
    bcd_fail(&e, "ProtocolError", "not a JSON object: %s", jerr.text);
    reply_error(json_null(), &e);
    return;
  }
  json_t *id = json_object_get(msg, "id");
  if (id == NULL)
    id = json_null();
  json_t *v = json_object_get(msg, "v");
  const char *op = bcd_str(msg, "op");
  json_t *args = json_object_get(msg, "args");
  json_t *own_args = NULL;
  if (!json_is_object(args))
    args = own_args = json_object();
  json_t *res = NULL;
  if (!json_is_integer(v) || json_integer_value(v) != BCD_PROTOCOL) {
    bcd_fail(&e, "ProtocolError", "unsupported protocol version");
  } else if (op == NULL) {
    bcd_fail(&e, "ProtocolError", "missing op");
  } else {
    bcd_op_fn fn = find_op(op);
    if (fn == NULL)
      bcd_unsupported(&e, "op %s is not implemented by the C driver", op);
    else
      res = fn(args, &e);
  }
  if (res != NULL) {
    bcd_emit(json_pack("{s:O,s:b,s:o}", "id", id, "ok", 1, "result", res));
  } else {
    if (strcmp(e.type, "Unsupported") != 0)
      bcd_log("%s -> %s: %s", op ? op : "?", e.type, e.message);
    reply_error(id, &e);
  }
  json_decref(own_args);
  current = NULL;
  json_decref(msg);
}

/* ---- hello ---- */
static const char *const base_features[] = {
    "pool", "pool.threads", "pool.apply", "pool.apply_async", "pool.map",
    "pool.imap", "pool.imap_unordered", "pool.starmap", "pool.callbacks",
    "pool.callbacks.accept", "pool.callbacks.timeout", "pool.events.worker",
    "pool.initializer", "pool.maxtasksperchild", "pool.max_memory_per_child",
    "pool.join-timeout", "pool.terminate_job", "pool.grow", "pool.shrink",
    "pool.restart", "worker-loss", "restart-freq", "time-limits.soft", "time-limits.hard", "time-limits.per-job",
    "wallclock", "clock.jump", "process", "process.terminate", "pipe", "pipe.objects", "pipe.nonblock", "pool.synack", "pool.putlocks",
    "pool.events.exit", "pool.context", "exceptions", "util.logger",
    "util.noops", "util.soft_timeout", "context.executable",
    "context.forkserver_preload",
    "context", "util", "manager", "manager.connect", "manager.queue",
    "manager.lock", "manager.event", "manager.rlock", "manager.semaphore",
    "manager.condition", "manager.barrier", "manager.array",
    "manager.joinable-queue", "manager.register",
    NULL};

static void hello(void) {
  json_t *f = json_array();
  for (const char *const *p = base_features; *p; p++)
    json_array_append_new(f, json_string(*p));
  for (const char *const *p = bcd_features_sync; *p; p++)
    json_array_append_new(f, json_string(*p));
  if (bcd_timens_possible())
    json_array_append_new(f, json_string("clock.worker-offset"));
  if (bcd_fault_build())
    json_array_append_new(f, json_string("fault.arm"));
  char impl[64];
  snprintf(impl, sizeof impl, "libbilliard %s", bl_version());
  /* Process and Pool work under all three (a process.start target that
   * needs the inherited handle table is fork-only: Unsupported elsewhere).
   * fork first: the default. */
  json_t *h = json_pack("{s:s,s:s,s:i,s:o,s:[s,s,s],s:o}", "port", "c", "impl",
                        impl, "protocol", BCD_PROTOCOL, "features", f,
                        "start_methods", "fork", "spawn", "forkserver",
                        "tasks", bcd_task_names());
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  bcd.t0_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  bcd_emit(json_pack("{s:o}", "hello", h));
}

/* ---- teardown ---- */
static void teardown(void) {
  /* Kind order: what depends on others goes first. */
  static const bcd_kind_t order[] = {BCD_ITER, BCD_POOL, BCD_JOB,
                                     BCD_PROCESS, BCD_CONN, BCD_QUEUE,
                                     BCD_COND, BCD_LOCK, BCD_EVENT,
                                     BCD_BARRIER, BCD_VALUE, BCD_ARRAY,
                                     BCD_PROXY, BCD_MANAGER};
  for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
    for (bcd_handle_t *h = bcd.handles; h; h = h->next)
      if (h->kind == order[k] && h->destroy) {
        h->destroy(h->obj);
        h->destroy = NULL;
      }
  while (bcd.handles) {
    bcd_handle_t *h = bcd.handles;
    bcd.handles = h->next;
    free(h->name);
    free(h);
  }
}

/* stdin is read with read(2), not getline(): bl__fork() runs fflush(NULL)
 * on a supervisor thread, which locks every stdio stream, and getline()
 * holds stdin's lock while it blocks: a worker respawn would wait for the
 * harness's next command. */
static int read_line(char **buf, size_t *cap, size_t *have, size_t *len) {
  for (;;) {
    char *nl = *have ? memchr(*buf, '\n', *have) : NULL;
    if (nl != NULL) {
      *len = (size_t)(nl - *buf);
      return 1;
    }
    if (*have + 4096 > *cap) {
      size_t nc = *cap ? *cap * 2 : 65536;
      char *nb = realloc(*buf, nc);
      if (nb == NULL)
        return -1;
      *buf = nb;
      *cap = nc;
    }
    ssize_t r = read(STDIN_FILENO, *buf + *have, *cap - *have);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (*have == 0)
        return 0;
      *len = *have; /* a last line without newline */
      if (*have == *cap) {
        char *nb = realloc(*buf, *cap + 1);
        if (nb == NULL)
          return -1;
        *buf = nb;
        *cap += 1;
      }
      (*buf)[*have] = '\n';
      *have += 1;
      return 1;
    }
    *have += (size_t)r;
  }
}

int main(void) {
  /* Recursive: should a pool ever run a job callback in the submitting
   * thread, it must not deadlock on the lock held around the submission. */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&bcd.lock, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&bcd.jobs_cv, &ca);
  pthread_condattr_destroy(&ca);
  bl_offset_clock_init(&bcd.clock);
  bcd_fault_init();
  if (bcd_register_tasks() != 0) {
    bcd_log("cannot register the task catalogue");
    return 1;
  }
  hello();
  char *buf = NULL;
  size_t cap = 0, have = 0, len;
  while (read_line(&buf, &cap, &have, &len) > 0) {
    size_t n = len;
    while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == ' '))
      n--;
    if (n > 0)
      handle_line(buf, n);
    memmove(buf, buf + len + 1, have - len - 1);
    have -= len + 1;
  }
  free(buf);
  teardown();
  bcd_fault_fini();
  return 0;
}
