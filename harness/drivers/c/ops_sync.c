/* ops_sync.c: queue.*, lock.*, event.*, condition.*, barrier.*, value.* and
 * array.* ops, and the process targets that use those objects.
 *
 * Queue items are the JSON text of the value put. Every object is created
 * by the driver before the processes that share it start. process.start
 * hands the objects a target names to the child (bl_process_add_handle,
 * bcd_sync_share) and tells it their indices in args "_handles"; the
 * target attaches them, the same code under fork, spawn and forkserver. */
#include "bcd.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <billiard/queue.h>
#include <billiard/sharedctypes.h>
#include <billiard/synchronize.h>
#include <billiard/util.h>

const char *const bcd_features_sync[] = {
    "queue", "queue.joinable", "queue.simple", "lock", "rlock",
    "semaphore", "event", "condition", "barrier", "value", "array",
    NULL};

/* ---- records ---- */
typedef struct queue_rec {
  bl_queue_t *q;
  int simple, joinable;
} queue_rec_t;

typedef struct lock_rec {
  int sem;            /* Semaphore/BoundedSemaphore, else Lock/RLock */
  bl_lock_t *l;
  bl_semaphore_t *s;
} lock_rec_t;

typedef struct barrier_rec {
  bl_barrier_t *b;
  int timeout_ms;     /* the barrier's default: -1 = none */
} barrier_rec_t;

static void queue_destroy(void *o) {
  queue_rec_t *r = o;
  bl_queue_free(&r->q);
  free(r);
}

static void lock_destroy(void *o) {
  lock_rec_t *r = o;
  if (r->sem)
    bl_semaphore_free(&r->s);
  else
    bl_lock_free(&r->l);
  free(r);
}

static void event_destroy(void *o) {
  bl_event_t *e = o;
  bl_event_free(&e);
}

static void cond_destroy(void *o) {
  bl_condition_t *c = o;
  bl_condition_free(&c);
}

static void barrier_destroy(void *o) {
  barrier_rec_t *r = o;
  bl_barrier_free(&r->b);
  free(r);
}

static void value_destroy(void *o) {
  bl_value_t *v = o;
  bl_value_free(&v);
}

/* Add a record under a new name, or fail (and free obj with destroy). */
static json_t *add_named(json_t *a, const char *prefix, const char *key,
                         bcd_kind_t kind, void *obj, void (*destroy)(void *),
                         bcd_err_t *e) {
  char *name = bcd_new_name(a, prefix, e);
  if (name == NULL) {
    destroy(obj);
    return NULL;
  }
  bcd_add(name, kind, obj, destroy);
  return json_pack("{s:s}", key, name);
}

static int wait_ms(json_t *a) {
  if (!bcd_bool(a, "block", 1))
    return 0;
  return bcd_timeout_ms(a, "timeout", -1);
}

/* ---- queues ---- */
static json_t *op_queue_new(json_t *a, bcd_err_t *e) {
  const char *kind = bcd_str(a, "kind");
  if (kind == NULL)
    kind = "Queue";
  queue_rec_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return bcd_fail(e, "MemoryError", "out of memory");
  bl_queue_options_t o;
  bl_queue_options_init(&o);
  double maxsize = bcd_num(a, "maxsize", 0);
  o.maxsize = maxsize > 0 ? (size_t)maxsize : 0;
  int rc;
  if (strcmp(kind, "Queue") == 0) {
    rc = bl_queue_new(&r->q, &o);
  } else if (strcmp(kind, "JoinableQueue") == 0) {
    r->joinable = 1;
    rc = bl_joinable_queue_new(&r->q, &o);
  } else if (strcmp(kind, "SimpleQueue") == 0) {
    r->simple = 1;
    rc = bl_simple_queue_new(&r->q);
  } else {
    free(r);
    return bcd_unsupported(e, "queue kind %s", kind);
  }
  if (rc != 0) {
    free(r);
    return bcd_fail_rc(e, rc, NULL, "queue.new");
  }
  return add_named(a, "queue", "queue", BCD_QUEUE, r, queue_destroy, e);
}

static json_t *q_fail(bcd_err_t *e, int rc, const char *what) {
  if (rc == BL_EFULL || rc == BL_EEMPTY) {
    bcd_fail(e, rc == BL_EFULL ? "Full" : "Empty", "%s", "");
    e->code = bl_err_name(rc);
    return NULL;
  }
  if (rc == BL_EOVERRELEASE)
    return bcd_fail(e, "ValueError", "task_done() called too many times");
  return bcd_fail_rc(e, rc, NULL, what);
}

static json_t *op_queue_put(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  char *s = bcd_object_arg_text(a, e);
  if (s == NULL)
    return NULL;
  int rc = r->simple ? bl_simple_queue_put(r->q, s, strlen(s))
                     : bl_queue_put(r->q, s, strlen(s), wait_ms(a));
  free(s);
  return rc ? q_fail(e, rc, "put") : json_object();
}

static json_t *op_queue_get(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  void *buf = NULL;
  size_t len = 0;
  int ms = wait_ms(a);
  /* SimpleQueue has no timeout in billiard; the harness may still bound
   * it, and the ring underneath is the same as a Queue's. */
  int rc = r->simple && ms < 0 ? bl_simple_queue_get(r->q, &buf, &len)
                               : bl_queue_get(r->q, &buf, &len, ms);
  if (rc != 0)
    return q_fail(e, rc, "get");
  json_t *v = bcd_parse(buf, len);
  free(buf);
  if (v == NULL)
    return bcd_fail(e, "ValueError", "queue item is not JSON");
  if (bcd_bool(a, "digest", 0))
    v = bcd_object_digest(v);
  return json_pack("{s:o}", "value", v);
}

static json_t *op_queue_qsize(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  int n = bl_queue_qsize(r->q);
  return n < 0 ? q_fail(e, n, "qsize") : json_pack("{s:i}", "n", n);
}

static json_t *op_queue_empty(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  int n = r->simple ? bl_simple_queue_empty(r->q) : bl_queue_empty(r->q);
  return n < 0 ? q_fail(e, n, "empty") : json_pack("{s:b}", "empty", n == 1);
}

static json_t *op_queue_full(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  int n = bl_queue_full(r->q);
  return n < 0 ? q_fail(e, n, "full") : json_pack("{s:b}", "full", n == 1);
}

static json_t *op_queue_close(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  int rc = r->simple ? bl_simple_queue_close(r->q) : bl_queue_close(r->q);
  return rc ? q_fail(e, rc, "close") : json_object();
}

static json_t *op_queue_task_done(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  int rc = bl_queue_task_done(r->q);
  return rc ? q_fail(e, rc, "task_done") : json_object();
}

static json_t *op_queue_join(json_t *a, bcd_err_t *e) {
  queue_rec_t *r = bcd_lookup(a, "queue", BCD_QUEUE, e);
  if (r == NULL)
    return NULL;
  int rc = bl_queue_join(r->q, bcd_timeout_ms(a, "timeout", -1));
  if (rc == BL_ETIMEOUT) {
    bcd_fail(e, "TimeoutError", "queue.join did not return in time");
    e->code = "BL_ETIMEOUT";
    return NULL;
  }
  return rc ? q_fail(e, rc, "join") : json_object();
}

/* ---- locks and semaphores ---- */
static json_t *op_lock_new(json_t *a, bcd_err_t *e) {
  const char *kind = bcd_str(a, "kind");
  if (kind == NULL)
    kind = "Lock";
  lock_rec_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return bcd_fail(e, "MemoryError", "out of memory");
  int value = (int)bcd_num(a, "value", 1);
  int rc;
  if (strcmp(kind, "Lock") == 0) {
    rc = bl_lock_new(&r->l);
  } else if (strcmp(kind, "RLock") == 0) {
    rc = bl_rlock_new(&r->l);
  } else if (strcmp(kind, "Semaphore") == 0) {
    r->sem = 1;
    rc = bl_semaphore_new(&r->s, value);
  } else if (strcmp(kind, "BoundedSemaphore") == 0) {
    r->sem = 1;
    rc = bl_bounded_semaphore_new(&r->s, value);
  } else {
    free(r);
    return bcd_unsupported(e, "lock kind %s", kind);
  }
  if (rc != 0) {
    free(r);
    if (rc == -EINVAL)
      return bcd_fail(e, "ValueError", "semaphore initial value must be >= 0");
    return bcd_fail_rc(e, rc, NULL, "lock.new");
  }
  return add_named(a, "lock", "lock", BCD_LOCK, r, lock_destroy, e);
}

static int lock_acquire(lock_rec_t *r, int ms) {
  return r->sem ? bl_semaphore_acquire(r->s, ms) : bl_lock_acquire(r->l, ms);
}

static int lock_release(lock_rec_t *r) {
  return r->sem ? bl_semaphore_release(r->s) : bl_lock_release(r->l);
}

static json_t *op_lock_acquire(json_t *a, bcd_err_t *e) {
  lock_rec_t *r = bcd_lookup(a, "lock", BCD_LOCK, e);
  if (r == NULL)
    return NULL;
  int rc = lock_acquire(r, wait_ms(a));
  if (rc == BL_ETIMEOUT)
    return json_pack("{s:b}", "acquired", 0);
  if (rc == 0)
    return json_pack("{s:b}", "acquired", 1);
  if (rc == BL_EOWNERDEAD)
    return json_pack("{s:b,s:b}", "acquired", 1, "owner_died", 1);
  return bcd_fail_rc(e, rc, NULL, "acquire");
}

static json_t *op_lock_release(json_t *a, bcd_err_t *e) {
  lock_rec_t *r = bcd_lookup(a, "lock", BCD_LOCK, e);
  if (r == NULL)
    return NULL;
  int rc = lock_release(r);
  if (rc == BL_EOVERRELEASE)
    return bcd_fail(e, "ValueError", r->sem ? "Semaphore released too many times"
                                            : "semaphore or lock released too many times");
  if (rc == BL_ESTATE)
    return bcd_fail(e, "AssertionError", "attempt to release recursive lock "
                                         "not owned by thread");
  return rc ? bcd_fail_rc(e, rc, NULL, "release") : json_object();
}

/* ---- events ---- */
static json_t *op_event_new(json_t *a, bcd_err_t *e) {
  bl_event_t *ev;
  int rc = bl_event_new(&ev);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "event.new");
  return add_named(a, "event", "event", BCD_EVENT, ev, event_destroy, e);
}

static json_t *op_event_set(json_t *a, bcd_err_t *e) {
  bl_event_t *ev = bcd_lookup(a, "event", BCD_EVENT, e);
  if (ev == NULL)
    return NULL;
  bl_event_set(ev);
  return json_object();
}

static json_t *op_event_clear(json_t *a, bcd_err_t *e) {
  bl_event_t *ev = bcd_lookup(a, "event", BCD_EVENT, e);
  if (ev == NULL)
    return NULL;
  bl_event_clear(ev);
  return json_object();
}

static json_t *op_event_is_set(json_t *a, bcd_err_t *e) {
  bl_event_t *ev = bcd_lookup(a, "event", BCD_EVENT, e);
  return ev ? json_pack("{s:b}", "set", bl_event_is_set(ev) == 1) : NULL;
}

static json_t *op_event_wait(json_t *a, bcd_err_t *e) {
  bl_event_t *ev = bcd_lookup(a, "event", BCD_EVENT, e);
  if (ev == NULL)
    return NULL;
  int rc = bl_event_wait(ev, bcd_timeout_ms(a, "timeout", -1));
  if (rc < 0)
    return bcd_fail_rc(e, rc, NULL, "event.wait");
  return json_pack("{s:b}", "set", rc == 1);
}

/* ---- conditions ---- */
static json_t *op_cond_new(json_t *a, bcd_err_t *e) {
  bl_lock_t *l = NULL;
  if (bcd_has(a, "lock")) {
    lock_rec_t *r = bcd_lookup(a, "lock", BCD_LOCK, e);
    if (r == NULL)
      return NULL;
    if (r->sem)
      return bcd_unsupported(e, "a Condition over a semaphore");
    l = r->l;
  }
  bl_condition_t *c;
  int rc = bl_condition_new(&c, l);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "condition.new");
  return add_named(a, "condition", "condition", BCD_COND, c, cond_destroy, e);
}

static json_t *op_cond_acquire(json_t *a, bcd_err_t *e) {
  bl_condition_t *c = bcd_lookup(a, "condition", BCD_COND, e);
  if (c == NULL)
    return NULL;
  int rc = bl_condition_acquire(c, wait_ms(a));
  if (rc == BL_ETIMEOUT)
    return json_pack("{s:b}", "acquired", 0);
  if (!BL_ACQUIRED(rc))
    return bcd_fail_rc(e, rc, NULL, "condition.acquire");
  return json_pack("{s:b}", "acquired", 1);
}

static json_t *op_cond_release(json_t *a, bcd_err_t *e) {
  bl_condition_t *c = bcd_lookup(a, "condition", BCD_COND, e);
  if (c == NULL)
    return NULL;
  int rc = bl_condition_release(c);
  return rc ? bcd_fail_rc(e, rc, NULL, "condition.release") : json_object();
}

static json_t *op_cond_wait(json_t *a, bcd_err_t *e) {
  bl_condition_t *c = bcd_lookup(a, "condition", BCD_COND, e);
  if (c == NULL)
    return NULL;
  int rc = bl_condition_wait(c, bcd_timeout_ms(a, "timeout", -1));
  if (rc < 0 && rc != BL_EOWNERDEAD)
    return bcd_fail_rc(e, rc, NULL, "condition.wait");
  return json_pack("{s:b}", "notified", rc == 1);
}

static json_t *op_cond_notify(json_t *a, bcd_err_t *e) {
  bl_condition_t *c = bcd_lookup(a, "condition", BCD_COND, e);
  if (c == NULL)
    return NULL;
  int rc = bl_condition_notify(c, (int)bcd_num(a, "n", 1));
  return rc < 0 ? bcd_fail_rc(e, rc, NULL, "notify") : json_object();
}

static json_t *op_cond_notify_all(json_t *a, bcd_err_t *e) {
  bl_condition_t *c = bcd_lookup(a, "condition", BCD_COND, e);
  if (c == NULL)
    return NULL;
  int rc = bl_condition_notify_all(c);
  return rc < 0 ? bcd_fail_rc(e, rc, NULL, "notify_all") : json_object();
}

/* ---- barriers ---- */
static json_t *op_barrier_new(json_t *a, bcd_err_t *e) {
  barrier_rec_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return bcd_fail(e, "MemoryError", "out of memory");
  r->timeout_ms = bcd_timeout_ms(a, "timeout", -1);
  int rc = bl_barrier_new(&r->b, (int)bcd_num(a, "parties", 0), NULL, NULL);
  if (rc != 0) {
    free(r);
    if (rc == -EINVAL)
      return bcd_fail(e, "ValueError", "parties must be >= 1");
    return bcd_fail_rc(e, rc, NULL, "barrier.new");
  }
  return add_named(a, "barrier", "barrier", BCD_BARRIER, r, barrier_destroy,
                   e);
}

static json_t *op_barrier_wait(json_t *a, bcd_err_t *e) {
  barrier_rec_t *r = bcd_lookup(a, "barrier", BCD_BARRIER, e);
  if (r == NULL)
    return NULL;
  int ms = bcd_has(a, "timeout") ? bcd_timeout_ms(a, "timeout", -1)
                                 : r->timeout_ms;
  int rc = bl_barrier_wait(r->b, ms);
  if (rc < 0)
    return bcd_fail_rc(e, rc, NULL, "barrier.wait");
  return json_pack("{s:i}", "index", rc);
}

static json_t *op_barrier_abort(json_t *a, bcd_err_t *e) {
  barrier_rec_t *r = bcd_lookup(a, "barrier", BCD_BARRIER, e);
  if (r == NULL)
    return NULL;
  bl_barrier_abort(r->b);
  return json_object();
}

static json_t *op_barrier_reset(json_t *a, bcd_err_t *e) {
  barrier_rec_t *r = bcd_lookup(a, "barrier", BCD_BARRIER, e);
  if (r == NULL)
    return NULL;
  bl_barrier_reset(r->b);
  return json_object();
}

static json_t *op_barrier_info(json_t *a, bcd_err_t *e) {
  barrier_rec_t *r = bcd_lookup(a, "barrier", BCD_BARRIER, e);
  if (r == NULL)
    return NULL;
  return json_pack("{s:i,s:i,s:b}", "parties", bl_barrier_parties(r->b),
                   "n_waiting", bl_barrier_n_waiting(r->b), "broken",
                   bl_barrier_broken(r->b) == 1);
}

/* ---- shared values and arrays ---- */
static int is_float(char tc) { return tc == 'f' || tc == 'd'; }
static int is_unsigned(char tc) {
  return tc == 'B' || tc == 'H' || tc == 'I' || tc == 'L' || tc == 'Q';
}

static char typecode_of(json_t *a) {
  const char *tc = bcd_str(a, "typecode");
  return tc && tc[0] ? tc[0] : 'i';
}

static int elem_set(bl_value_t *v, size_t i, const json_t *x) {
  char tc = bl_value_typecode(v);
  if (json_is_string(x) && json_string_length(x) >= 1) /* 'c' / 'u' */
    return bl_value_set_i64(v, i, (unsigned char)json_string_value(x)[0]);
  if (!json_is_number(x) && !json_is_boolean(x))
    return -EINVAL;
  double d = json_is_boolean(x) ? json_is_true(x) : json_number_value(x);
  if (is_float(tc))
    return bl_value_set_f64(v, i, d);
  if (is_unsigned(tc) && json_is_integer(x))
    return bl_value_set_u64(v, i, (uint64_t)json_integer_value(x));
  return bl_value_set_i64(v, i, json_is_integer(x) ? json_integer_value(x)
                                                   : (int64_t)d);
}

static json_t *elem_get(bl_value_t *v, size_t i, int *rc) {
  char tc = bl_value_typecode(v);
  if (is_float(tc)) {
    double d;
    *rc = bl_value_get_f64(v, i, &d);
    return json_real(d);
  }
  if (is_unsigned(tc)) {
    uint64_t u;
    *rc = bl_value_get_u64(v, i, &u);
    return json_integer((json_int_t)u);
  }
  int64_t x;
  *rc = bl_value_get_i64(v, i, &x);
  return json_integer((json_int_t)x);
}

static int shared_new(json_t *a, size_t n, bl_value_t **out) {
  bl_shared_options_t o;
  bl_shared_options_init(&o);
  o.lock = bcd_bool(a, "lock", 1);
  return n == 0 ? bl_value_new(out, typecode_of(a), &o)
                : bl_array_new(out, typecode_of(a), n, &o);
}

static json_t *op_value_new(json_t *a, bcd_err_t *e) {
  bl_value_t *v;
  int rc = shared_new(a, 0, &v);
  if (rc != 0)
    return rc == -EINVAL ? bcd_fail(e, "TypeError", "bad typecode")
                         : bcd_fail_rc(e, rc, NULL, "value.new");
  if (bcd_has(a, "value") && (rc = elem_set(v, 0, json_object_get(a, "value")))) {
    bl_value_free(&v);
    return bcd_fail_rc(e, rc, NULL, "value.new");
  }
  return add_named(a, "value", "value", BCD_VALUE, v, value_destroy, e);
}

static json_t *op_value_get(json_t *a, bcd_err_t *e) {
  bl_value_t *v = bcd_lookup(a, "value", BCD_VALUE, e);
  if (v == NULL)
    return NULL;
  int rc;
  json_t *x = elem_get(v, 0, &rc);
  if (rc != 0) {
    json_decref(x);
    return bcd_fail_rc(e, rc, NULL, "value.get");
  }
  return json_pack("{s:o}", "value", x);
}

static json_t *op_value_set(json_t *a, bcd_err_t *e) {
  bl_value_t *v = bcd_lookup(a, "value", BCD_VALUE, e);
  if (v == NULL)
    return NULL;
  /* `value` names the handle, so the new value travels as `set`. */
  int rc = elem_set(v, 0, json_object_get(a, "set"));
  return rc ? bcd_fail_rc(e, rc, NULL, "value.set") : json_object();
}

static json_t *op_array_new(json_t *a, bcd_err_t *e) {
  json_t *init = json_object_get(a, "init");
  size_t n = json_is_array(init) ? json_array_size(init)
                                 : (size_t)bcd_num(a, "size", 0);
  if (n == 0)
    return bcd_unsupported(e, "empty arrays");
  bl_value_t *v;
  int rc = shared_new(a, n, &v);
  if (rc != 0)
    return rc == -EINVAL ? bcd_fail(e, "TypeError", "bad typecode")
                         : bcd_fail_rc(e, rc, NULL, "array.new");
  for (size_t i = 0; json_is_array(init) && i < n; i++)
    if ((rc = elem_set(v, i, json_array_get(init, i))) != 0) {
      bl_value_free(&v);
      return bcd_fail_rc(e, rc, NULL, "array.new");
    }
  return add_named(a, "array", "array", BCD_ARRAY, v, value_destroy, e);
}

static json_t *op_array_get(json_t *a, bcd_err_t *e) {
  bl_value_t *v = bcd_lookup(a, "array", BCD_ARRAY, e);
  if (v == NULL)
    return NULL;
  json_t *list = json_array();
  for (size_t i = 0; i < bl_value_len(v); i++) {
    int rc;
    json_t *x = elem_get(v, i, &rc);
    if (rc != 0) {
      json_decref(x);
      json_decref(list);
      return bcd_fail_rc(e, rc, NULL, "array.get");
    }
    json_array_append_new(list, x);
  }
  return json_pack("{s:o}", "value", list);
}

static json_t *op_array_set(json_t *a, bcd_err_t *e) {
  bl_value_t *v = bcd_lookup(a, "array", BCD_ARRAY, e);
  if (v == NULL)
    return NULL;
  double idx = bcd_num(a, "index", 0);
  if (idx < 0)
    idx += (double)bl_value_len(v);
  if (idx < 0 || idx >= (double)bl_value_len(v))
    return bcd_fail(e, "IndexError", "array assignment index out of range");
  int rc = elem_set(v, (size_t)idx, json_object_get(a, "set"));
  return rc ? bcd_fail_rc(e, rc, NULL, "array.set") : json_object();
}

const bcd_op_t bcd_ops_sync[] = {
    {"queue.new", op_queue_new},
    {"queue.put", op_queue_put},
    {"queue.get", op_queue_get},
    {"queue.qsize", op_queue_qsize},
    {"queue.empty", op_queue_empty},
    {"queue.full", op_queue_full},
    {"queue.close", op_queue_close},
    {"queue.task_done", op_queue_task_done},
    {"queue.join", op_queue_join},
    {"lock.new", op_lock_new},
    {"lock.acquire", op_lock_acquire},
    {"lock.release", op_lock_release},
    {"event.new", op_event_new},
    {"event.set", op_event_set},
    {"event.clear", op_event_clear},
    {"event.is_set", op_event_is_set},
    {"event.wait", op_event_wait},
    {"condition.new", op_cond_new},
    {"condition.acquire", op_cond_acquire},
    {"condition.release", op_cond_release},
    {"condition.wait", op_cond_wait},
    {"condition.notify", op_cond_notify},
    {"condition.notify_all", op_cond_notify_all},
    {"barrier.new", op_barrier_new},
    {"barrier.wait", op_barrier_wait},
    {"barrier.abort", op_barrier_abort},
    {"barrier.reset", op_barrier_reset},
    {"barrier.info", op_barrier_info},
    {"value.new", op_value_new},
    {"value.get", op_value_get},
    {"value.set", op_value_set},
    {"array.new", op_array_new},
    {"array.get", op_array_get},
    {"array.set", op_array_set},
    {NULL, NULL},
};

/* ---- process targets (run in the child) ---- */
static json_t *targs(const void *arg, size_t len) {
  json_error_t err;
  json_t *a = len ? json_loadb(arg, len, 0, &err) : NULL;
  return a ? a : json_object();
}

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- handing objects to a process ---- */

static const struct {
  const char *key;
  bcd_kind_t kind;
} share_keys[] = {{"queue", BCD_QUEUE}, {"lock", BCD_LOCK}, {"event", BCD_EVENT},
                  {"value", BCD_VALUE}, {"barrier", BCD_BARRIER},
                  {"conn", BCD_CONN}};

int bcd_sync_takes_handles(const char *target) {
  static const char *const names[] = {"queue_put", "queue_get", "lock_hold",
                                      "lock_hold_die", "event_wait", "value_add",
                                      "barrier_wait", "conn_send", "conn_recv"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(names[i], target) == 0)
      return 1;
  return 0;
}

/* The object behind one driver record, as a handle kind + pointer. */
static int share_obj(bcd_kind_t kind, void *o, bl_handle_kind_t *hk,
                     const void **obj, int *timeout_ms) {
  *timeout_ms = -1;
  switch (kind) {
  case BCD_QUEUE:
    *hk = BL_HANDLE_QUEUE;
    *obj = ((queue_rec_t *)o)->q;
    return 0;
  case BCD_LOCK: {
    lock_rec_t *r = o;
    *hk = r->sem ? BL_HANDLE_SEMAPHORE : BL_HANDLE_LOCK;
    *obj = r->sem ? (const void *)r->s : (const void *)r->l;
    return 0;
  }
  case BCD_EVENT:
    *hk = BL_HANDLE_EVENT;
    *obj = o;
    return 0;
  case BCD_VALUE:
    *hk = BL_HANDLE_VALUE;
    *obj = o;
    return 0;
  case BCD_CONN:
    *hk = BL_HANDLE_CONNECTION;
    *obj = o;
    return 0;
  case BCD_BARRIER:
    *hk = BL_HANDLE_BARRIER;
    *obj = ((barrier_rec_t *)o)->b;
    *timeout_ms = ((barrier_rec_t *)o)->timeout_ms;
    return 0;
  default:
    return -EINVAL;
  }
}

/* Record in args (an object) which handle index each named object will
 * have: each record is one handle (none borrows a lock), in key order. */
void bcd_sync_plan(json_t *args) {
  json_t *idx = json_object();
  int next = 0;
  for (size_t i = 0; i < sizeof share_keys / sizeof share_keys[0]; i++) {
    void *o = bcd_find(bcd_str(args, share_keys[i].key), share_keys[i].kind);
    bl_handle_kind_t hk;
    const void *obj;
    int t;
    if (o == NULL || share_obj(share_keys[i].kind, o, &hk, &obj, &t) != 0)
      continue;
    json_object_set_new(idx, share_keys[i].key,
                        json_pack("{s:i,s:i}", "i", next++, "t", t));
  }
  json_object_set_new(args, "_handles", idx);
}

/* Hand p the objects planned in args. 0 or the library's error. */
int bcd_sync_share(bl_process_t *p, const json_t *args) {
  for (size_t i = 0; i < sizeof share_keys / sizeof share_keys[0]; i++) {
    json_t *h = json_object_get(json_object_get(args, "_handles"),
                                share_keys[i].key);
    if (h == NULL)
      continue;
    void *o = bcd_find(bcd_str(args, share_keys[i].key), share_keys[i].kind);
    bl_handle_kind_t hk;
    const void *obj;
    int t;
    if (o == NULL || share_obj(share_keys[i].kind, o, &hk, &obj, &t) != 0)
      return -EINVAL;
    int rc = bl_process_add_handle(p, hk, obj);
    if (rc < 0)
      return rc;
    if (rc != (int)json_integer_value(json_object_get(h, "i")))
      return -EPROTO;
  }
  return 0;
}

/* In a target: the handle index args give for key, or -1. */
int bcd_handle_of(const json_t *a, const char *key, int *timeout_ms) {
  json_t *h = json_object_get(json_object_get(a, "_handles"), key);
  if (h == NULL)
    return -1;
  if (timeout_ms)
    *timeout_ms = (int)json_integer_value(json_object_get(h, "t"));
  return (int)json_integer_value(json_object_get(h, "i"));
}

static queue_rec_t *t_queue(const json_t *a, queue_rec_t *tmp) {
  int i = bcd_handle_of(a, "queue", NULL);
  if (i < 0)
    return bcd_find(bcd_str(a, "queue"), BCD_QUEUE);
  memset(tmp, 0, sizeof *tmp);
  return bl_queue_attach(&tmp->q, (size_t)i) == 0 ? tmp : NULL;
}

static lock_rec_t *t_lock(const json_t *a, lock_rec_t *tmp) {
  int i = bcd_handle_of(a, "lock", NULL);
  if (i < 0)
    return bcd_find(bcd_str(a, "lock"), BCD_LOCK);
  memset(tmp, 0, sizeof *tmp);
  tmp->sem = bl_process_handle_kind((size_t)i) == BL_HANDLE_SEMAPHORE;
  int rc = tmp->sem ? bl_semaphore_attach(&tmp->s, (size_t)i)
                    : bl_lock_attach(&tmp->l, (size_t)i);
  return rc == 0 ? tmp : NULL;
}

static void t_lock_free(lock_rec_t *r, lock_rec_t *tmp) {
  if (r == tmp) {
    bl_lock_free(&tmp->l);
    bl_semaphore_free(&tmp->s);
  }
}

static int p_queue_put(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  queue_rec_t tmp, *r = t_queue(a, &tmp);
  json_t *vals = json_copy(json_object_get(a, "values"));
  if (vals == NULL)
    vals = json_array();
  if (json_object_get(a, "data") != NULL) /* a generated item, put last */
    json_array_append_new(vals, bcd_object_arg(a));
  int delay = bcd_ms(bcd_num(a, "delay", 0)), rc = r ? 0 : 2;
  for (size_t i = 0; rc == 0 && i < json_array_size(vals); i++) {
    if (delay)
      nap_ms(delay);
    char *s = bcd_object_text(json_array_get(vals, i));
    rc = s == NULL ? 2
         : r->simple ? bl_simple_queue_put(r->q, s, strlen(s))
                     : bl_queue_put(r->q, s, strlen(s), -1);
    free(s);
  }
  json_decref(vals);
  json_decref(a);
  if (r == &tmp)
    bl_queue_free(&tmp.q);
  return rc ? 1 : 0;
}

static int p_queue_get(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  queue_rec_t tmp, *r = t_queue(a, &tmp);
  long count = (long)bcd_num(a, "count", 1);
  /* sha256: every item must be a string with that digest (else exit 3). */
  char want[65] = "";
  if (bcd_str(a, "sha256"))
    snprintf(want, sizeof want, "%s", bcd_str(a, "sha256"));
  json_decref(a);
  if (r == NULL)
    return 2;
  int rc = 0;
  for (long i = 0; i < count && rc == 0; i++) {
    void *buf;
    size_t n;
    if (bl_queue_get(r->q, &buf, &n, -1) != 0) {
      rc = 1;
      break;
    }
    json_t *v = want[0] ? bcd_parse(buf, n) : NULL;
    free(buf);
    if (want[0]) {
      char hex[65] = "";
      if (json_is_string(v))
        bcd_sha256_hex(json_string_value(v), json_string_length(v), hex);
      json_decref(v);
      if (strcmp(hex, want) != 0) {
        rc = 3;
        break;
      }
    }
  }
  if (r == &tmp)
    bl_queue_free(&tmp.q);
  return rc;
}

static int p_lock_hold(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  lock_rec_t tmp, *r = t_lock(a, &tmp);
  int ms = bcd_ms(bcd_num(a, "seconds", 0));
  json_decref(a);
  if (r == NULL)
    return 2;
  int rc = 1;
  if (BL_ACQUIRED(lock_acquire(r, -1))) {
    nap_ms(ms);
    rc = lock_release(r) == 0 ? 0 : 1;
  }
  t_lock_free(r, &tmp);
  return rc;
}

static int p_lock_hold_die(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  lock_rec_t tmp, *r = t_lock(a, &tmp);
  json_decref(a);
  if (r == NULL)
    return 2;
  if (!BL_ACQUIRED(lock_acquire(r, -1))) {
    t_lock_free(r, &tmp);
    return 1;
  }
  raise(SIGKILL);
  return 3;
}

/* The target's event: attached from its handle (*hi >= 0: the caller frees
 * it) or the driver's own by name (fork). NULL when neither works. */
static bl_event_t *t_event(const json_t *a, int *hi) {
  *hi = bcd_handle_of(a, "event", NULL);
  if (*hi < 0)
    return bcd_find(bcd_str(a, "event"), BCD_EVENT);
  bl_event_t *ev = NULL;
  return bl_event_attach(&ev, (size_t)*hi) == 0 ? ev : NULL;
}

static int p_event_wait(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  int hi;
  bl_event_t *ev = t_event(a, &hi);
  int ms = bcd_timeout_ms(a, "timeout", -1);
  json_decref(a);
  if (ev == NULL)
    return 2;
  int rc = bl_event_wait(ev, ms) == 1 ? 0 : 1;
  if (hi >= 0)
    bl_event_free(&ev);
  return rc;
}

static int p_value_add(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  int hi = bcd_handle_of(a, "value", NULL);
  bl_value_t *v = NULL;
  if (hi < 0)
    v = bcd_find(bcd_str(a, "value"), BCD_VALUE);
  else if (bl_value_attach(&v, (size_t)hi) != 0)
    v = NULL;
  long n = (long)bcd_num(a, "n", 1);
  json_decref(a);
  if (v == NULL)
    return 2;
  bl_lock_t *l = bl_value_get_lock(v);
  int rc = 0;
  for (long i = 0; i < n && rc == 0; i++) {
    if (l && !BL_ACQUIRED(bl_lock_acquire(l, -1))) {
      rc = 1;
      break;
    }
    int64_t x = 0;
    bl_value_get_i64(v, 0, &x);
    bl_value_set_i64(v, 0, x + 1);
    if (l)
      bl_lock_release(l);
  }
  if (hi >= 0)
    bl_value_free(&v);
  return rc;
}

/* soft_handler {event, seconds}: billiard's soft_timeout_sighandler is
 * bl_install_soft_timeout_handler() here; exit 0 once SIGUSR1 arrived,
 * 1 if it did not within `seconds`. */
static int p_soft_handler(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  int hi;
  bl_event_t *ev = t_event(a, &hi);
  int ms = bcd_ms(bcd_num(a, "seconds", 5)), rc = 1;
  json_decref(a);
  if (ev == NULL || bl_install_soft_timeout_handler() != 0)
    rc = 2;
  if (rc == 1) {
    bl_soft_timeout_pending(1);
    bl_event_set(ev);
    for (int waited = 0; rc == 1 && waited <= ms; waited += 10) {
      if (bl_soft_timeout_pending(1))
        rc = 0;
      else
        nap_ms(10);
    }
  }
  if (hi >= 0)
    bl_event_free(&ev);
  return rc;
}

static int p_barrier_wait(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  barrier_rec_t tmp = {NULL, -1}, *r = NULL;
  int hi = bcd_handle_of(a, "barrier", &tmp.timeout_ms);
  if (hi < 0)
    r = bcd_find(bcd_str(a, "barrier"), BCD_BARRIER);
  else if (bl_barrier_attach(&tmp.b, (size_t)hi, NULL, NULL) == 0)
    r = &tmp;
  int ms = bcd_has(a, "timeout") ? bcd_timeout_ms(a, "timeout", -1) : -2;
  json_decref(a);
  if (r == NULL)
    return 2;
  int rc = bl_barrier_wait(r->b, ms == -2 ? r->timeout_ms : ms) >= 0 ? 0 : 1;
  if (r == &tmp)
    bl_barrier_free(&tmp.b);
  return rc;
}

/* Also from a constructor: a spawn or forkserver child is a fresh image
 * that never runs main(). Registering the same function twice is a no-op. */
__attribute__((constructor)) static void register_early(void) {
  (void)bcd_register_sync_targets();
}

int bcd_register_sync_targets(void) {
  static const struct {
    const char *name;
    bl_target_fn fn;
  } t[] = {
      {"queue_put", p_queue_put},         {"queue_get", p_queue_get},
      {"lock_hold", p_lock_hold},         {"lock_hold_die", p_lock_hold_die},
      {"event_wait", p_event_wait},       {"value_add", p_value_add},
      {"barrier_wait", p_barrier_wait},   {"soft_handler", p_soft_handler},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (bl_register_target(t[i].name, t[i].fn) != 0)
      return -1;
  return 0;
}
