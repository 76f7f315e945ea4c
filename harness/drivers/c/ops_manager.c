/* ops_manager.c: manager.* and proxy.call ops (<billiard/manager.h>), and
 * the process targets that use proxies.
 *
 * Values crossing a proxy are the JSON text of the protocol value, so a
 * dict key 1 and a key "1" stay distinct, as in Python. proxy.call takes a
 * method name from the per-type whitelist of INTERPRETING.md §6 and its
 * positional args; errors are translated to the exception the Python
 * proxy raises (KeyError, IndexError, Empty, RuntimeError, ...). A proxy
 * used in a forked child opens its own connection (the library does). */
#include "bcd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/manager.h>

/* ---- records ---- */
typedef struct mgr_rec {
  bl_manager_t *m;
} mgr_rec_t;

typedef struct ptype ptype_t;
typedef struct proxy_rec {
  bl_proxy_t *px;
  const ptype_t *t;
  bl_manager_t *m; /* the handle it was made on */
} proxy_rec_t;

static void mgr_destroy(void *o) {
  mgr_rec_t *r = o;
  bl_manager_free(&r->m);
  free(r);
}

static void proxy_destroy(void *o) {
  proxy_rec_t *r = o;
  bl_proxy_free(&r->px);
  free(r);
}

/* ---- errors ---- */
/* A failure reaching the manager, as Python's proxies report it: after
 * shutdown their connection is gone (BrokenPipeError). */
static json_t *fail_conn(bcd_err_t *e, int rc, const char *what) {
  if (rc == BL_ENOTRUNNING) {
    bcd_fail(e, "BrokenPipeError", "manager has shut down");
    e->code = bl_err_name(rc);
    return NULL;
  }
  if (rc == -ECONNREFUSED)
    return bcd_fail(e, "ConnectionRefusedError", "[Errno %d] %s (%s)", -rc,
                    bl_strerror(rc), what);
  if (rc == -ECONNRESET)
    return bcd_fail(e, "ConnectionResetError", "[Errno %d] %s (%s)", -rc,
                    bl_strerror(rc), what);
  return bcd_fail_rc(e, rc, NULL, what);
}

/* ---- values ---- */
static int enc(json_t *v, char **s, size_t *n) {
  *s = bcd_dump(v ? v : json_null());
  if (*s == NULL)
    return -ENOMEM;
  *n = strlen(*s);
  return 0;
}

/* The malloc'd bytes of a reply as a JSON value (freed here). */
static json_t *dec(void *buf, size_t n) {
  json_t *v = bcd_parse(buf, n);
  free(buf);
  return v ? v : json_null();
}

static json_t *arg(json_t *args, size_t i) { return json_array_get(args, i); }

/* Timeout in ms of a (block, timeout) pair at args[i], args[i+1]:
 * block false -> 0; timeout null/absent -> -1. */
static int block_timeout(json_t *args, size_t i) {
  json_t *b = arg(args, i);
  if (b && json_is_false(b))
    return 0;
  json_t *t = arg(args, i + 1);
  return t && json_is_number(t) ? bcd_ms(json_number_value(t)) : -1;
}

static int timeout_at(json_t *args, size_t i) {
  json_t *t = arg(args, i);
  return t && json_is_number(t) ? bcd_ms(json_number_value(t)) : -1;
}

/* ---- the types ---- */
typedef json_t *(*call_fn)(proxy_rec_t *r, const char *method, json_t *args,
                           bcd_err_t *e);
typedef int (*create_fn)(bl_manager_t *m, json_t *a, bl_proxy_t **px,
                         bcd_err_t *e);
struct ptype {
  const char *typeid;
  create_fn create;
  call_fn call;
  const char *const *methods; /* the whitelist */
};

#define DONE(rc, what)                                                       \
  ((rc) < 0 ? fail_conn(e, rc, what) : json_pack("{s:n}", "value"))

static json_t *value_of(int rc, void *buf, size_t n, bcd_err_t *e,
                        const char *what) {
  if (rc < 0)
    return fail_conn(e, rc, what);
  return json_pack("{s:o}", "value", dec(buf, n));
}

static json_t *count_of(int rc, size_t n, bcd_err_t *e, const char *what) {
  if (rc < 0)
    return fail_conn(e, rc, what);
  return json_pack("{s:I}", "value", (json_int_t)n);
}

static json_t *bool_of(int v) { return json_pack("{s:b}", "value", v); }

/* dict: keys are the JSON text of the key. */
static json_t *call_dict(proxy_rec_t *r, const char *m, json_t *args,
                         bcd_err_t *e) {
  char *k = NULL, *v = NULL;
  size_t kn = 0, vn = 0, n = 0;
  void *out = NULL;
  json_t *res;
  int rc = 0;
  if (strcmp(m, "__len__") == 0) {
    rc = bl_dict_len(r->px, &n);
    return count_of(rc, n, e, m);
  }
  if (strcmp(m, "keys") == 0) {
    char **keys = NULL;
    if ((rc = bl_dict_keys(r->px, &keys, &n)) < 0)
      return fail_conn(e, rc, m);
    json_t *l = json_array();
    for (size_t i = 0; i < n; i++) {
      json_t *kv = bcd_parse(keys[i], strlen(keys[i]));
      json_array_append_new(l, kv ? kv : json_null());
    }
    free(keys);
    return json_pack("{s:o}", "value", l);
  }
  if (enc(arg(args, 0), &k, &kn) != 0)
    return bcd_fail(e, "MemoryError", "out of memory");
  if (strcmp(m, "__setitem__") == 0) {
    if ((rc = enc(arg(args, 1), &v, &vn)) == 0)
      rc = bl_dict_set(r->px, k, v, vn);
    res = DONE(rc, m);
  } else if (strcmp(m, "__getitem__") == 0) {
    rc = bl_dict_get(r->px, k, &out, &n);
    res = rc == BL_ENOTFOUND ? bcd_fail(e, "KeyError", "%s", k)
                             : value_of(rc, out, n, e, m);
  } else if (strcmp(m, "get") == 0 || strcmp(m, "__contains__") == 0) {
    rc = bl_dict_get(r->px, k, &out, &n);
    int has = rc != BL_ENOTFOUND;
    if (rc == BL_ENOTFOUND)
      rc = 0;
    if (strcmp(m, "__contains__") == 0) {
      free(out);
      res = rc < 0 ? fail_conn(e, rc, m) : bool_of(has);
    } else if (has) {
      res = value_of(rc, out, n, e, m);
    } else { /* get(k, default=None) */
      json_t *d = arg(args, 1);
      res = json_pack("{s:O}", "value", d ? d : json_null());
    }
  } else { /* __delitem__ */
    rc = bl_dict_del(r->px, k);
    res = rc == BL_ENOTFOUND ? bcd_fail(e, "KeyError", "%s", k) : DONE(rc, m);
  }
  free(k);
  free(v);
  return res;
}

static long index_of(json_t *args) {
  json_t *i = arg(args, 0);
  return json_is_integer(i) ? (long)json_integer_value(i) : 0;
}

static json_t *index_error(bcd_err_t *e, const char *what) {
  return bcd_fail(e, "IndexError", "%s index out of range", what);
}

static json_t *call_list(proxy_rec_t *r, const char *m, json_t *args,
                         bcd_err_t *e) {
  char *v = NULL;
  size_t vn = 0, n = 0;
  void *out = NULL;
  int rc;
  if (strcmp(m, "__len__") == 0) {
    rc = bl_list_len(r->px, &n);
    return count_of(rc, n, e, m);
  }
  if (strcmp(m, "__getitem__") == 0) {
    rc = bl_list_get(r->px, index_of(args), &out, &n);
    return rc == -ERANGE ? index_error(e, "list") : value_of(rc, out, n, e, m);
  }
  json_t *res;
  if (strcmp(m, "append") == 0) {
    if ((rc = enc(arg(args, 0), &v, &vn)) == 0)
      rc = bl_list_append(r->px, v, vn);
    res = DONE(rc, m);
  } else { /* __setitem__ */
    if ((rc = enc(arg(args, 1), &v, &vn)) == 0)
      rc = bl_list_set(r->px, index_of(args), v, vn);
    res = rc == -ERANGE ? bcd_fail(e, "IndexError",
                                   "list assignment index out of range")
                        : DONE(rc, m);
  }
  free(v);
  return res;
}

/* Namespace: getattr/setattr with the attribute name as args[0]. */
static json_t *call_ns(proxy_rec_t *r, const char *m, json_t *args,
                       bcd_err_t *e) {
  const char *name = json_string_value(arg(args, 0));
  if (name == NULL || *name == 0)
    return bcd_fail(e, "TypeError", "attribute name must be a string");
  char *v = NULL;
  size_t vn = 0, n = 0;
  void *out = NULL;
  int rc;
  if (strcmp(m, "getattr") == 0) {
    rc = bl_namespace_get(r->px, name, &out, &n);
    if (rc == BL_ENOTFOUND)
      return bcd_fail(e, "AttributeError",
                      "'Namespace' object has no attribute '%s'", name);
    return value_of(rc, out, n, e, m);
  }
  if ((rc = enc(arg(args, 1), &v, &vn)) == 0)
    rc = bl_namespace_set(r->px, name, v, vn);
  free(v);
  return DONE(rc, m);
}

static json_t *call_queue(proxy_rec_t *r, const char *m, json_t *args,
                          bcd_err_t *e) {
  char *v = NULL;
  size_t vn = 0, n = 0;
  void *out = NULL;
  int rc;
  if (strcmp(m, "put") == 0) { /* put [v, block, timeout] */
    if ((rc = enc(arg(args, 0), &v, &vn)) == 0)
      rc = bl_mqueue_put_wait(r->px, v, vn, block_timeout(args, 1));
    free(v);
    return rc == BL_EFULL ? bcd_fail(e, "Full", "%s", "") : DONE(rc, m);
  }
  if (strcmp(m, "get") == 0) {
    rc = bl_mqueue_get(r->px, &out, &n, block_timeout(args, 0));
    return rc == BL_EEMPTY ? bcd_fail(e, "Empty", "%s", "")
                           : value_of(rc, out, n, e, m);
  }
  if (strcmp(m, "task_done") == 0) {
    rc = bl_mqueue_task_done(r->px);
    if (rc == BL_EOVERRELEASE)
      return bcd_fail(e, "ValueError", "task_done() called too many times");
    return DONE(rc, m);
  }
  if (strcmp(m, "join") == 0)
    return DONE(bl_mqueue_join(r->px, -1), m);
  if (strcmp(m, "empty") == 0) {
    if ((rc = bl_mqueue_size(r->px, &n)) < 0)
      return fail_conn(e, rc, m);
    return bool_of(n == 0);
  }
  rc = bl_mqueue_size(r->px, &n); /* qsize */
  return count_of(rc, n, e, m);
}

/* Lock, RLock, Semaphore, BoundedSemaphore, and a Condition's lock. */
static json_t *call_acquirer(proxy_rec_t *r, const char *m, json_t *args,
                             bcd_err_t *e) {
  int rc;
  if (strcmp(m, "acquire") == 0) {
    rc = bl_macquire(r->px, block_timeout(args, 0));
    if (rc == BL_ETIMEOUT)
      return bool_of(0);
    return rc < 0 ? fail_conn(e, rc, m) : bool_of(1);
  }
  rc = bl_mrelease(r->px);
  if (rc == BL_EOVERRELEASE) { /* threading's messages */
    const char *t = r->t->typeid;
    if (strcmp(t, "BoundedSemaphore") == 0)
      return bcd_fail(e, "ValueError", "Semaphore released too many times");
    return bcd_fail(e, "RuntimeError", strcmp(t, "Lock") == 0
                                           ? "release unlocked lock"
                                           : "cannot release un-acquired lock");
  }
  return DONE(rc, m);
}

static json_t *call_cond(proxy_rec_t *r, const char *m, json_t *args,
                         bcd_err_t *e) {
  int rc;
  if (strcmp(m, "acquire") == 0 || strcmp(m, "release") == 0)
    return call_acquirer(r, m, args, e);
  if (strcmp(m, "wait") == 0)
    rc = bl_mcond_wait(r->px, timeout_at(args, 0));
  else if (strcmp(m, "notify") == 0)
    rc = bl_mcond_notify(r->px, json_is_integer(arg(args, 0))
                                    ? (int)json_integer_value(arg(args, 0))
                                    : 1);
  else /* notify_all */
    rc = bl_mcond_notify(r->px, -1);
  if (rc == BL_ESTATE)
    return bcd_fail(e, "RuntimeError", "cannot %s on un-acquired lock",
                    strcmp(m, "wait") == 0 ? "wait" : "notify");
  if (rc < 0)
    return fail_conn(e, rc, m);
  return strcmp(m, "wait") == 0 ? bool_of(rc == 1) : json_pack("{s:n}", "value");
}

static json_t *call_barrier(proxy_rec_t *r, const char *m, json_t *args,
                            bcd_err_t *e) {
  int rc, parties = 0, waiting = 0, broken = 0;
  if (strcmp(m, "wait") == 0) {
    json_t *t = arg(args, 0);
    rc = bl_mbarrier_wait(r->px, t == NULL || json_is_null(t)
                                     ? BL_MANAGER_BARRIER_DEFAULT
                                     : timeout_at(args, 0));
    if (rc == BL_EBROKENBARRIER)
      return bcd_fail(e, "BrokenBarrierError", "%s", "");
    return rc < 0 ? fail_conn(e, rc, m) : json_pack("{s:i}", "value", rc);
  }
  if (strcmp(m, "abort") == 0)
    return DONE(bl_mbarrier_abort(r->px), m);
  if (strcmp(m, "reset") == 0)
    return DONE(bl_mbarrier_reset(r->px), m);
  rc = bl_mbarrier_info(r->px, &parties, &waiting, &broken);
  if (rc < 0)
    return fail_conn(e, rc, m);
  if (strcmp(m, "broken") == 0)
    return bool_of(broken);
  return json_pack("{s:i}", "value", strcmp(m, "parties") == 0 ? parties : waiting);
}

static json_t *call_array(proxy_rec_t *r, const char *m, json_t *args,
                          bcd_err_t *e) {
  char *v = NULL;
  size_t vn = 0, n = 0;
  void *out = NULL;
  int rc;
  if (strcmp(m, "__len__") == 0) {
    rc = bl_marray_len(r->px, &n);
    return count_of(rc, n, e, m);
  }
  if (strcmp(m, "__getitem__") == 0) {
    rc = bl_marray_get(r->px, index_of(args), &out, &n);
    return rc == -ERANGE ? index_error(e, "array") : value_of(rc, out, n, e, m);
  }
  if ((rc = enc(arg(args, 1), &v, &vn)) == 0)
    rc = bl_marray_set(r->px, index_of(args), v, vn);
  free(v);
  return rc == -ERANGE ? bcd_fail(e, "IndexError",
                                  "array assignment index out of range")
                       : DONE(rc, m);
}

/* Counter, a registered type (bl_manager_register), values as JSON text:
 * Counter(start), incr(n=1) -> the new value, get() -> the value. */
static int counter_create(const void *arg, size_t len, void **state) {
  long long *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  json_t *v = bcd_parse(arg, len);
  *c = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
  json_decref(v);
  *state = c;
  return 0;
}
static int counter_reply(long long v, void **out, size_t *outlen) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%lld", v);
  if ((*out = malloc((size_t)n)) == NULL)
    return -ENOMEM;
  memcpy(*out, buf, (size_t)n);
  *outlen = (size_t)n;
  return 0;
}
static int counter_incr(void *state, const void *in, size_t inlen, void **out,
                        size_t *outlen) {
  json_t *v = bcd_parse(in, inlen);
  long long d = json_is_integer(v) ? (long long)json_integer_value(v) : 1;
  json_decref(v);
  return counter_reply(*(long long *)state += d, out, outlen);
}
static int counter_get(void *state, const void *in, size_t inlen, void **out,
                       size_t *outlen) {
  (void)in, (void)inlen;
  return counter_reply(*(long long *)state, out, outlen);
}
static const bl_manager_method_t counter_methods[] = {{"incr", counter_incr},
                                                      {"get", counter_get}};

static json_t *call_custom(proxy_rec_t *r, const char *m, json_t *args,
                           bcd_err_t *e) {
  char *in = NULL;
  size_t n = 0;
  void *out = NULL;
  int rc = 0;
  if (json_array_size(args) > 0)
    rc = enc(arg(args, 0), &in, &n);
  if (rc == 0)
    rc = bl_proxy_call(r->px, m, in, n, &out, &n);
  free(in);
  return value_of(rc, out, n, e, m);
}

static json_t *call_event(proxy_rec_t *r, const char *m, json_t *args,
                          bcd_err_t *e) {
  int rc;
  if (strcmp(m, "set") == 0)
    rc = bl_mevent_set(r->px);
  else if (strcmp(m, "clear") == 0)
    rc = bl_mevent_clear(r->px);
  else if (strcmp(m, "is_set") == 0)
    rc = bl_mevent_is_set(r->px);
  else
    rc = bl_mevent_wait(r->px, timeout_at(args, 0));
  if (rc < 0)
    return fail_conn(e, rc, m);
  if (strcmp(m, "set") == 0 || strcmp(m, "clear") == 0)
    return json_pack("{s:n}", "value");
  return bool_of(rc == 1);
}

static json_t *call_value(proxy_rec_t *r, const char *m, json_t *args,
                          bcd_err_t *e) {
  void *out = NULL;
  size_t n = 0;
  int rc;
  if (strcmp(m, "get") == 0) {
    rc = bl_mvalue_get(r->px, &out, &n);
    return value_of(rc, out, n, e, m);
  }
  char *v = NULL;
  rc = enc(arg(args, 0), &v, &n);
  if (rc == 0)
    rc = bl_mvalue_set(r->px, v, n);
  free(v);
  return DONE(rc, m);
}

static int new_dict(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)a, (void)e;
  return bl_manager_dict(m, px);
}
static int new_list(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)e;
  int rc = bl_manager_list(m, px);
  json_t *init = json_object_get(a, "init");
  for (size_t i = 0; rc == 0 && i < json_array_size(init); i++) {
    char *v;
    size_t n;
    if ((rc = enc(json_array_get(init, i), &v, &n)) == 0)
      rc = bl_list_append(*px, v, n);
    free(v);
  }
  return rc;
}
static int new_ns(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)a, (void)e;
  return bl_manager_namespace(m, px);
}
static int new_queue(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)e;
  double max = bcd_num(a, "maxsize", 0); /* <= 0: unbounded, as queue.Queue */
  return bl_manager_queue_bounded(m, px, max > 0 ? (int)max : 0);
}
static int new_lock(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)a, (void)e;
  return bl_manager_lock(m, px);
}
static int new_event(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)a, (void)e;
  return bl_manager_event(m, px);
}
static int new_acq(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e,
                   const char *typeid) {
  (void)e;
  int value = (int)bcd_num(a, "value", 1);
  if (strcmp(typeid, "Semaphore") == 0)
    return bl_manager_semaphore(m, px, value);
  return bl_manager_bounded_semaphore(m, px, value);
}
static int new_rlock(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)a, (void)e;
  return bl_manager_rlock(m, px);
}
static int new_sem(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  return new_acq(m, a, px, e, "Semaphore");
}
static int new_bsem(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  return new_acq(m, a, px, e, "BoundedSemaphore");
}
static int new_cond(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)a, (void)e;
  return bl_manager_condition(m, px);
}
static int new_barrier(bl_manager_t *m, json_t *a, bl_proxy_t **px,
                       bcd_err_t *e) {
  (void)e;
  return bl_manager_barrier(m, px, (int)bcd_num(a, "parties", 1),
                            bcd_timeout_ms(a, "timeout", -1));
}
static int new_array(bl_manager_t *m, json_t *a, bl_proxy_t **px,
                     bcd_err_t *e) {
  (void)e;
  json_t *init = json_object_get(a, "init");
  size_t n = json_is_array(init) ? json_array_size(init)
                                 : (size_t)bcd_num(a, "size", 0);
  int rc = bl_manager_array(m, px, n, "0", 1);
  for (size_t i = 0; rc == 0 && i < json_array_size(init); i++) {
    char *v;
    size_t vn;
    if ((rc = enc(json_array_get(init, i), &v, &vn)) == 0)
      rc = bl_marray_set(*px, (long)i, v, vn);
    free(v);
  }
  return rc;
}
static int new_counter(bl_manager_t *m, json_t *a, bl_proxy_t **px,
                       bcd_err_t *e) {
  (void)e;
  char *v;
  size_t n;
  int rc = enc(json_object_get(a, "start"), &v, &n);
  if (rc == 0)
    rc = bl_manager_create(m, "Counter", v, n, px);
  free(v);
  return rc;
}
static int new_value(bl_manager_t *m, json_t *a, bl_proxy_t **px, bcd_err_t *e) {
  (void)e;
  char *v;
  size_t n;
  int rc = enc(json_object_get(a, "value"), &v, &n);
  if (rc == 0)
    rc = bl_manager_value(m, px, v, n);
  free(v);
  return rc;
}

static const char *const m_dict[] = {"__getitem__", "__setitem__",
                                     "__delitem__", "__len__",
                                     "__contains__", "get",
                                     "keys",        NULL};
static const char *const m_list[] = {"append", "__getitem__", "__setitem__",
                                     "__len__", NULL};
static const char *const m_ns[] = {"getattr", "setattr", NULL};
static const char *const m_queue[] = {"put", "get", "qsize", "empty", NULL};
static const char *const m_jqueue[] = {"put",       "get",  "qsize", "empty",
                                       "task_done", "join", NULL};
static const char *const m_lock[] = {"acquire", "release", NULL};
static const char *const m_cond[] = {"acquire", "release",    "wait",
                                     "notify",  "notify_all", NULL};
static const char *const m_barrier[] = {"wait",    "abort",     "reset",
                                        "parties", "n_waiting", "broken",
                                        NULL};
static const char *const m_array[] = {"__getitem__", "__setitem__", "__len__",
                                      NULL};
static const char *const m_counter[] = {"incr", "get", NULL};
static const char *const m_event[] = {"set", "clear", "is_set", "wait", NULL};
static const char *const m_value[] = {"get", "set", NULL};

static const ptype_t types[] = {
    {"dict", new_dict, call_dict, m_dict},
    {"list", new_list, call_list, m_list},
    {"Namespace", new_ns, call_ns, m_ns},
    {"Queue", new_queue, call_queue, m_queue},
    {"JoinableQueue", new_queue, call_queue, m_jqueue},
    {"Lock", new_lock, call_acquirer, m_lock},
    {"RLock", new_rlock, call_acquirer, m_lock},
    {"Semaphore", new_sem, call_acquirer, m_lock},
    {"BoundedSemaphore", new_bsem, call_acquirer, m_lock},
    {"Condition", new_cond, call_cond, m_cond},
    {"Barrier", new_barrier, call_barrier, m_barrier},
    {"Event", new_event, call_event, m_event},
    {"Value", new_value, call_value, m_value},
    {"Array", new_array, call_array, m_array},
    {"Counter", new_counter, call_custom, m_counter},
};

static const ptype_t *type_of(const char *typeid) {
  for (size_t i = 0; typeid && i < sizeof types / sizeof types[0]; i++)
    if (strcmp(types[i].typeid, typeid) == 0)
      return &types[i];
  return NULL;
}

/* ---- manager.* ---- */
static json_t *op_start(json_t *a, bcd_err_t *e) {
  char *name = bcd_new_name(a, "manager", e);
  if (name == NULL)
    return NULL;
  bl_manager_options_t o;
  bl_manager_options_init(&o);
  const char *key = bcd_str(a, "authkey");
  if (key != NULL) {
    o.authkey = key;
    o.authkey_len = strlen(key);
  }
  mgr_rec_t *r = calloc(1, sizeof *r);
  int rc = r ? bl_manager_new(&r->m, &o) : -ENOMEM;
  if (rc == 0)
    rc = bl_manager_start(r->m);
  if (rc != 0) {
    if (r)
      bl_manager_free(&r->m);
    free(r);
    free(name);
    return bcd_fail_rc(e, rc, NULL, "manager.start");
  }
  bcd_add(name, BCD_MANAGER, r, mgr_destroy);
  return json_pack("{s:s,s:s,s:i}", "manager", name, "address",
                   bl_manager_address(r->m), "pid", (int)bl_manager_pid(r->m));
}

static json_t *op_connect(json_t *a, bcd_err_t *e) {
  mgr_rec_t *m = bcd_lookup(a, "manager", BCD_MANAGER, e);
  if (m == NULL)
    return NULL;
  char *name = bcd_new_name(a, "manager", e);
  if (name == NULL)
    return NULL;
  size_t klen;
  const void *key = bl_manager_authkey(m->m, &klen);
  const char *k = bcd_str(a, "authkey");
  if (k != NULL) {
    key = k;
    klen = strlen(k);
  }
  mgr_rec_t *r = calloc(1, sizeof *r);
  int rc = r ? bl_manager_connect(&r->m, bl_manager_address(m->m), key, klen)
             : -ENOMEM;
  if (rc != 0) {
    free(r);
    free(name);
    if (rc == BL_EAUTH)
      return bcd_fail(e, "AuthenticationError", "digest sent was rejected");
    return fail_conn(e, rc, "manager.connect");
  }
  bcd_add(name, BCD_MANAGER, r, mgr_destroy);
  return json_pack("{s:s}", "manager", name);
}

static json_t *op_shutdown(json_t *a, bcd_err_t *e) {
  mgr_rec_t *m = bcd_lookup(a, "manager", BCD_MANAGER, e);
  if (m == NULL)
    return NULL;
  int rc = bl_manager_shutdown(m->m);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "manager.shutdown");
  return json_object();
}

static json_t *op_kill(json_t *a, bcd_err_t *e) {
  mgr_rec_t *m = bcd_lookup(a, "manager", BCD_MANAGER, e);
  if (m == NULL)
    return NULL;
  pid_t pid = bl_manager_pid(m->m);
  int sig = bcd_signum(json_object_get(a, "signal"));
  if (pid <= 0)
    return bcd_fail(e, "ValueError", "this handle did not start a manager");
  if (kill(pid, sig > 0 ? sig : SIGKILL) != 0)
    return bcd_fail_rc(e, -errno, NULL, "manager.kill");
  return json_pack("{s:i}", "pid", (int)pid);
}

static json_t *op_new(json_t *a, bcd_err_t *e) {
  mgr_rec_t *m = bcd_lookup(a, "manager", BCD_MANAGER, e);
  if (m == NULL)
    return NULL;
  const char *typeid = bcd_str(a, "typeid");
  const ptype_t *t = type_of(typeid);
  if (t == NULL)
    return bcd_fail(e, "KeyError", "'%s'", typeid ? typeid : "None");
  char *name = bcd_new_name(a, "proxy", e);
  if (name == NULL)
    return NULL;
  json_t *targs = json_object_get(a, "args");
  proxy_rec_t *r = calloc(1, sizeof *r);
  int rc = r ? t->create(m->m, targs, &r->px, e) : -ENOMEM;
  if (rc != 0) {
    if (r)
      bl_proxy_free(&r->px);
    free(r);
    free(name);
    return rc > 0 ? NULL : fail_conn(e, rc, "manager.new");
  }
  r->t = t;
  r->m = m->m;
  bcd_add(name, BCD_PROXY, r, proxy_destroy);
  return json_pack("{s:s}", "proxy", name);
}

static int allowed(const ptype_t *t, const char *method) {
  for (const char *const *p = t->methods; method && *p; p++)
    if (strcmp(*p, method) == 0)
      return 1;
  return 0;
}

static json_t *op_call(json_t *a, bcd_err_t *e) {
  proxy_rec_t *r = bcd_lookup(a, "proxy", BCD_PROXY, e);
  if (r == NULL)
    return NULL;
  const char *method = bcd_str(a, "method");
  if (!allowed(r->t, method))
    return bcd_fail(e, "AttributeError", "%s proxy has no method %s",
                    r->t->typeid, method ? method : "None");
  json_t *args = json_object_get(a, "args");
  json_t *own = NULL;
  if (!json_is_array(args))
    args = own = json_array();
  json_t *res = r->t->call(r, method, args, e);
  json_decref(own);
  return res;
}

const bcd_op_t bcd_ops_manager[] = {
    {"manager.start", op_start},
    {"manager.connect", op_connect},
    {"manager.shutdown", op_shutdown},
    {"manager.kill", op_kill},
    {"manager.new", op_new},
    {"proxy.call", op_call},
    {NULL, NULL},
};

/* ---- process targets (run in the forked child) ---- */
static json_t *targs(const void *arg, size_t len) {
  json_error_t err;
  json_t *a = len ? json_loadb(arg, len, 0, &err) : NULL;
  return a ? a : json_object();
}

/* Proxies cross to a process as a handle name (fork: the child finds it in
 * the table it inherited) and, added by bcd_manager_plan, as "<key>.remote"
 * {address, authkey (hex), id, typeid}: a spawn/forkserver child has no
 * table, so it connects to the manager by address and authkey and
 * attaches the object, as a billiard proxy unpickled in a child does. */
static const char *const proxy_keys[] = {"proxy", "lock"};

int bcd_manager_takes_proxies(const char *target) {
  return strcmp(target, "proxy_call") == 0 || strcmp(target, "proxy_add") == 0;
}

void bcd_manager_plan(json_t *args) {
  for (size_t i = 0; i < sizeof proxy_keys / sizeof proxy_keys[0]; i++) {
    proxy_rec_t *r = bcd_find(bcd_str(args, proxy_keys[i]), BCD_PROXY);
    if (r == NULL || bl_manager_address(r->m) == NULL)
      continue;
    size_t klen = 0;
    const unsigned char *k = bl_manager_authkey(r->m, &klen);
    char hex[2 * BL_MANAGER_AUTHKEY_MAX + 1];
    for (size_t j = 0; j < klen; j++)
      snprintf(hex + 2 * j, 3, "%02x", k[j]);
    hex[2 * klen] = 0;
    char key[32];
    snprintf(key, sizeof key, "%s.remote", proxy_keys[i]);
    json_object_set_new(
        args, key,
        json_pack("{s:s,s:s,s:I,s:s}", "address", bl_manager_address(r->m),
                  "authkey", hex, "id", (json_int_t)bl_proxy_id(r->px),
                  "typeid", r->t->typeid));
  }
}

/* The proxy a[key] names, in the child; *own is set when it was made here
 * (free it with free_child_proxy). NULL when it cannot be had: *own is then
 * 1 if the manager could not be reached (an error of the call: exit 1),
 * 0 if the arguments name no proxy (exit 2). */
static proxy_rec_t *child_proxy(json_t *a, const char *key, int *own) {
  *own = 0;
  proxy_rec_t *r = bcd_find(bcd_str(a, key), BCD_PROXY);
  if (r != NULL)
    return r;
  char rkey[32];
  snprintf(rkey, sizeof rkey, "%s.remote", key);
  json_t *rem = json_object_get(a, rkey);
  const char *addr = bcd_str(rem, "address"), *hex = bcd_str(rem, "authkey");
  const ptype_t *t = type_of(bcd_str(rem, "typeid"));
  size_t klen = hex ? strlen(hex) / 2 : 0;
  if (addr == NULL || t == NULL || klen == 0 || klen > BL_MANAGER_AUTHKEY_MAX)
    return NULL;
  unsigned char k[BL_MANAGER_AUTHKEY_MAX];
  for (size_t j = 0; j < klen; j++) {
    unsigned v;
    if (sscanf(hex + 2 * j, "%2x", &v) != 1)
      return NULL;
    k[j] = (unsigned char)v;
  }
  *own = 1;
  if ((r = calloc(1, sizeof *r)) == NULL)
    return NULL;
  r->t = t;
  if (bl_manager_connect(&r->m, addr, k, klen) != 0 ||
      bl_proxy_attach(r->m, (uint32_t)bcd_num(rem, "id", 0), &r->px) != 0) {
    bl_manager_free(&r->m);
    free(r);
    return NULL;
  }
  return r;
}

static void free_child_proxy(proxy_rec_t *r, int own) {
  if (r == NULL || !own)
    return;
  bl_proxy_free(&r->px);
  bl_manager_free(&r->m);
  free(r);
}

/* proxy_call {proxy, method, args, times}: exit 0 when every call
 * succeeded, 1 on the first error, 2 without the proxy. */
static int p_proxy_call(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  int own;
  proxy_rec_t *r = child_proxy(a, "proxy", &own);
  const char *method = bcd_str(a, "method");
  long times = (long)bcd_num(a, "times", 1);
  int rc = r ? 0 : own ? 1 : 2;
  json_t *args = json_object_get(a, "args");
  json_t *own_args = NULL;
  if (!json_is_array(args))
    args = own_args = json_array();
  json_t *calls = json_object_get(a, "calls");
  if (json_is_array(calls)) { /* [{method, args}, ...] in order, once */
    times = 0;
    for (size_t i = 0; rc == 0 && r && i < json_array_size(calls); i++) {
      json_t *c = json_array_get(calls, i), *ca = json_object_get(c, "args");
      const char *cm = bcd_str(c, "method");
      json_t *own_ca = json_is_array(ca) ? NULL : (ca = json_array());
      bcd_err_t e = {{0}, {0}, NULL};
      json_t *res = allowed(r->t, cm) ? r->t->call(r, cm, ca, &e) : NULL;
      rc = res ? 0 : 1;
      json_decref(res);
      json_decref(own_ca);
    }
  } else if (r && !allowed(r->t, method)) {
    rc = 2;
  }
  for (long i = 0; rc == 0 && i < times; i++) {
    bcd_err_t e = {{0}, {0}, NULL};
    json_t *res = r->t->call(r, method, args, &e);
    rc = res ? 0 : 1;
    json_decref(res);
  }
  json_decref(own_args);
  free_child_proxy(r, own);
  json_decref(a);
  return rc;
}

/* proxy_add {proxy (a Value), lock (a Lock proxy), n}: n read-modify-write
 * increments of an integer Value, each under the manager lock. */
static int proxy_add(proxy_rec_t *v, proxy_rec_t *l, long n) {
  if (v == NULL || l == NULL)
    return 2;
  for (long i = 0; i < n; i++) {
    void *out = NULL;
    size_t on = 0;
    if (bl_macquire(l->px, -1) != 0)
      return 1;
    if (bl_mvalue_get(v->px, &out, &on) != 0)
      return 1;
    json_t *x = dec(out, on);
    char buf[32];
    int bn = snprintf(buf, sizeof buf, "%lld",
                      (long long)json_integer_value(x) + 1);
    json_decref(x);
    if (bl_mvalue_set(v->px, buf, (size_t)bn) != 0 || bl_mrelease(l->px) != 0)
      return 1;
  }
  return 0;
}

static int p_proxy_add(const void *arg, size_t len) {
  json_t *a = targs(arg, len);
  int own_v, own_l;
  proxy_rec_t *v = child_proxy(a, "proxy", &own_v);
  proxy_rec_t *l = child_proxy(a, "lock", &own_l);
  int rc = (!v && own_v) || (!l && own_l) ? 1 : proxy_add(v, l, (long)bcd_num(a, "n", 1));
  free_child_proxy(v, own_v);
  free_child_proxy(l, own_l);
  json_decref(a);
  return rc;
}

/* Also in spawn/forkserver children (fresh images that never run main). */
__attribute__((constructor)) static void register_proxy_targets(void) {
  (void)bl_register_target("proxy_call", p_proxy_call);
  (void)bl_register_target("proxy_add", p_proxy_add);
}

int bcd_register_manager_targets(void) {
  bl_manager_type_t t;
  bl_manager_type_init(&t);
  t.create = counter_create;
  t.methods = counter_methods;
  t.nmethods = sizeof counter_methods / sizeof counter_methods[0];
  if (bl_manager_register("Counter", &t) != 0 ||
      bl_register_target("proxy_call", p_proxy_call) != 0 ||
      bl_register_target("proxy_add", p_proxy_add) != 0)
    return -1;
  return 0;
}
