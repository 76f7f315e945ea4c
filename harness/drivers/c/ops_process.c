/* ops_process.c: process.* and pipe/conn.* ops.
 *
 * Process targets receive their `args` as JSON text. Queues, locks,
 * events, values and barriers named in them are handed to the child as
 * process handles (every start method, ops_sync.c); a conn is resolved in
 * the child through the handle table it inherited with fork. */
#include "bcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct proc_rec {
  bl_process_t *p;
} proc_rec_t;

static void proc_destroy(void *o) {
  proc_rec_t *r = o;
  if (bl_process_pid(r->p) > 0) {
    if (bl_process_is_alive(r->p) == 1)
      bl_process_kill(r->p);
    bl_process_join(r->p, -1);
  }
  bl_process_free(&r->p);
  free(r);
}

static json_t *exitcode_json(bl_process_t *p) {
  int code;
  if (bl_process_exitcode(p, &code) == 0)
    return json_integer(code);
  return json_null();
}

static json_t *op_start(json_t *a, bcd_err_t *e) {
  const char *target = bcd_str(a, "target");
  if (target == NULL)
    return bcd_fail(e, "ValueError", "missing target");
  char *name = bcd_new_name(a, "process", e);
  if (name == NULL)
    return NULL;
  bl_process_options_t o;
  bl_process_options_init(&o);
  /* spawn/forkserver children are fresh images without the handle table:
   * only self-contained targets (tasks.c) and those that get their objects
   * as process handles (ops_sync.c) can run there. */
  o.start_method = bcd_str(a, "start_method");
  int shares = bcd_sync_takes_handles(target);
  int proxies = bcd_manager_takes_proxies(target); /* ops_manager.c */
  if (o.start_method && strcmp(o.start_method, "fork") != 0 &&
      !bcd_target_self_contained(target) && !shares && !proxies) {
    free(name);
    return bcd_unsupported(e, "target %s needs inherited handles: fork only",
                           target);
  }
  o.name = bcd_str(a, "name");
  o.daemon = bcd_bool(a, "daemon", 0);
  json_t *args = json_object_get(a, "args");
  args = json_is_object(args) ? json_deep_copy(args) : json_incref(args);
  if (shares && json_is_object(args))
    bcd_sync_plan(args);
  if (proxies && json_is_object(args))
    bcd_manager_plan(args);
  char *arg = bcd_dump(args);
  proc_rec_t *r = calloc(1, sizeof *r);
  int rc = r ? bl_process_new(&r->p, target, arg, strlen(arg), &o) : -ENOMEM;
  free(arg);
  if (rc == 0 && shares && json_is_object(args)) {
    rc = bcd_sync_share(r->p, args);
    if (rc != 0)
      bl_process_free(&r->p);
  }
  json_decref(args);
  if (rc == 0) {
    rc = bl_process_start(r->p);
    if (rc != 0)
      bl_process_free(&r->p);
  }
  if (rc != 0) {
    free(r);
    free(name);
    return bcd_fail_rc(e, rc, NULL, "process.start");
  }
  bcd_add(name, BCD_PROCESS, r, proc_destroy);
  bcd.nprocesses++;
  return json_pack("{s:s,s:i,s:s}", "process", name, "pid",
                   (int)bl_process_pid(r->p), "name", bl_process_name(r->p));
}

static json_t *op_join(json_t *a, bcd_err_t *e) {
  proc_rec_t *r = bcd_lookup(a, "process", BCD_PROCESS, e);
  if (r == NULL)
    return NULL;
  int rc = bl_process_join(r->p, bcd_timeout_ms(a, "timeout", -1));
  if (rc != 0 && rc != BL_ETIMEOUT)
    return bcd_fail_rc(e, rc, NULL, "process.join");
  int alive = bl_process_is_alive(r->p) == 1;
  return json_pack("{s:o,s:b}", "exitcode", exitcode_json(r->p), "alive",
                   alive);
}

static json_t *op_terminate(json_t *a, bcd_err_t *e) {
  proc_rec_t *r = bcd_lookup(a, "process", BCD_PROCESS, e);
  if (r == NULL)
    return NULL;
  int rc = bl_process_terminate(r->p);
  return rc ? bcd_fail_rc(e, rc, NULL, "terminate") : json_object();
}

static json_t *op_kill(json_t *a, bcd_err_t *e) {
  proc_rec_t *r = bcd_lookup(a, "process", BCD_PROCESS, e);
  if (r == NULL)
    return NULL;
  int rc = bl_process_kill(r->p);
  return rc ? bcd_fail_rc(e, rc, NULL, "kill") : json_object();
}

static json_t *op_info(json_t *a, bcd_err_t *e) {
  proc_rec_t *r = bcd_lookup(a, "process", BCD_PROCESS, e);
  if (r == NULL)
    return NULL;
  pid_t pid = bl_process_pid(r->p);
  int alive = bl_process_is_alive(r->p) == 1;
  return json_pack("{s:o,s:b,s:o,s:s,s:b}", "pid",
                   pid > 0 ? json_integer(pid) : json_null(), "alive", alive,
                   "exitcode", exitcode_json(r->p), "name",
                   bl_process_name(r->p), "daemon",
                   bl_process_daemon(r->p) != 0);
}

/* ---- pipes ---- */
static void conn_destroy(void *o) {
  bl_conn_t *c = o;
  bl_conn_free(&c);
}

static json_t *op_pipe_new(json_t *a, bcd_err_t *e) {
  char *base = bcd_new_name(a, "pipe", e);
  if (base == NULL)
    return NULL;
  size_t bl = strlen(base) + 3;
  char *na = malloc(bl), *nb = malloc(bl);
  if (na == NULL || nb == NULL) {
    free(na);
    free(nb);
    free(base);
    return bcd_fail(e, "MemoryError", "out of memory");
  }
  snprintf(na, bl, "%s.a", base);
  snprintf(nb, bl, "%s.b", base);
  free(base);
  if (bcd_find(na, BCD_CONN) || bcd_find(nb, BCD_CONN)) {
    free(na);
    free(nb);
    return bcd_fail(e, "ValueError", "pipe handles already exist");
  }
  bl_conn_t *ca, *cb;
  int rc = bl_pipe(&ca, &cb, bcd_bool(a, "duplex", 1));
  if (rc != 0) {
    free(na);
    free(nb);
    return bcd_fail_rc(e, rc, NULL, "Pipe");
  }
  /* Pipe(duplex, rnonblock, wnonblock): the first end, the second end. */
  if (bcd_bool(a, "rnonblock", 0))
    bl_conn_set_blocking(ca, 0);
  if (bcd_bool(a, "wnonblock", 0))
    bl_conn_set_blocking(cb, 0);
  bcd_add(na, BCD_CONN, ca, conn_destroy);
  bcd_add(nb, BCD_CONN, cb, conn_destroy);
  return json_pack("{s:s,s:s}", "a", na, "b", nb);
}

static json_t *conn_fail(bcd_err_t *e, int rc, const char *what) {
  if (rc == -EINVAL)
    return bcd_fail(e, "ValueError", "%s: bad offset or size", what);
  if (rc == BL_EPROTOCOL)
    return bcd_fail(e, "OSError", "bad message length");
  if (rc == BL_ECLOSED)
    return bcd_fail(e, "OSError", "handle is closed");
  if (rc == -EBADF)
    return bcd_fail(e, "OSError", "connection is %s",
                    strcmp(what, "send_bytes") == 0 ? "read-only"
                                                    : "write-only");
  if (rc == BL_EEOF)
    return bcd_fail(e, "EOFError", "%s", "");
  if (rc == -EAGAIN) /* a non-blocking connection (Pipe rnonblock/wnonblock) */
    return bcd_fail(e, "BlockingIOError", "[Errno 11] %s", strerror(EAGAIN));
  return bcd_fail_rc(e, rc, NULL, what);
}

static json_t *op_send(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = bcd_lookup(a, "conn", BCD_CONN, e);
  if (c == NULL)
    return NULL;
  char *data;
  size_t len;
  if (bcd_payload(json_object_get(a, "data"), &data, &len) != 0)
    return bcd_fail(e, "ValueError", "bad data");
  double off = bcd_num(a, "offset", 0);
  size_t size = BL_CONN_REST;
  if (bcd_has(a, "size")) {
    double s = bcd_num(a, "size", 0);
    if (s < 0) {
      free(data);
      return bcd_fail(e, "ValueError", "size is negative");
    }
    size = (size_t)s;
  }
  if (off < 0) {
    free(data);
    return bcd_fail(e, "ValueError", "offset is negative");
  }
  int rc = bl_conn_send_bytes(c, data, len, (size_t)off, size);
  free(data);
  return rc ? conn_fail(e, rc, "send_bytes") : json_object();
}

static json_t *data_json(const json_t *a, const void *buf, size_t len) {
  if (bcd_bool(a, "digest", 0))
    return bcd_digest(buf, len);
  return bcd_bytes_json(buf, len);
}

/* The connection of a receive op, once it has a message when the op gives a
 * timeout (TimeoutError otherwise); NULL with e set on failure. */
static bl_conn_t *conn_to_recv(json_t *a, bcd_err_t *e, const char *what) {
  bl_conn_t *c = bcd_lookup(a, "conn", BCD_CONN, e);
  if (c == NULL || !bcd_has(a, "timeout"))
    return c;
  int rc = bl_conn_poll(c, bcd_timeout_ms(a, "timeout", -1));
  if (rc < 0) {
    conn_fail(e, rc, what);
    return NULL;
  }
  if (rc == 0) {
    bcd_fail(e, "TimeoutError", "%s: nothing in time", what);
    e->code = "BL_ETIMEOUT";
    return NULL;
  }
  return c;
}

static json_t *op_recv(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = conn_to_recv(a, e, "recv_bytes");
  if (c == NULL)
    return NULL;
  double maxl = bcd_num(a, "maxlength", 0);
  void *buf;
  size_t len;
  int rc = bl_conn_recv_bytes(c, &buf, &len, maxl > 0 ? (size_t)maxl : 0);
  if (rc != 0)
    return conn_fail(e, rc, "recv_bytes");
  json_t *d = data_json(a, buf, len);
  free(buf);
  return json_pack("{s:o}", "data", d);
}

static json_t *op_recv_into(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = bcd_lookup(a, "conn", BCD_CONN, e);
  if (c == NULL)
    return NULL;
  double sz = bcd_num(a, "size", 0);
  size_t cap = sz > 0 ? (size_t)sz : 0;
  void *buf = malloc(cap ? cap : 1);
  if (buf == NULL)
    return bcd_fail(e, "MemoryError", "out of memory");
  size_t len = 0;
  int rc = bl_conn_recv_bytes_into(c, buf, cap, 0, &len);
  if (rc != 0) {
    free(buf);
    if (rc == BL_EBUFTOOSHORT) {
      /* billiard hands the message over inside the exception (args[0]) and
       * it is gone from the connection: take it, as a Python caller has. */
      void *msg = NULL;
      size_t mlen = 0;
      if (bl_conn_take_pending(c, &msg, &mlen) == 0)
        free(msg);
      bcd_fail(e, "BufferTooShort", "message of %zu bytes, buffer of %zu",
               len, cap);
      e->code = "BL_EBUFTOOSHORT";
      return NULL;
    }
    return conn_fail(e, rc, "recv_bytes_into");
  }
  json_t *d = data_json(a, buf, len);
  free(buf);
  return json_pack("{s:I,s:o}", "n", (json_int_t)len, "data", d);
}

/* conn.send / conn.recv: objects travel as their JSON text, one message
 * each (C has no pickling; INTERPRETING.md §5). */
static json_t *op_send_obj(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = bcd_lookup(a, "conn", BCD_CONN, e);
  if (c == NULL)
    return NULL;
  char *s = bcd_object_arg_text(a, e);
  if (s == NULL)
    return NULL;
  int rc = bl_conn_send_bytes(c, s, strlen(s), 0, BL_CONN_REST);
  free(s);
  return rc ? conn_fail(e, rc, "send_bytes") : json_object();
}

static json_t *op_recv_obj(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = conn_to_recv(a, e, "recv");
  if (c == NULL)
    return NULL;
  void *buf;
  size_t len;
  int rc = bl_conn_recv_bytes(c, &buf, &len, 0);
  if (rc != 0)
    return conn_fail(e, rc, "recv");
  json_t *v = bcd_parse(buf, len);
  free(buf);
  if (v == NULL)
    return bcd_fail(e, "ValueError", "message is not a JSON object text");
  if (bcd_bool(a, "digest", 0))
    v = bcd_object_digest(v);
  return json_pack("{s:o}", "value", v);
}

static json_t *op_poll(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = bcd_lookup(a, "conn", BCD_CONN, e);
  if (c == NULL)
    return NULL;
  int rc = bl_conn_poll(c, bcd_timeout_ms(a, "timeout", 0));
  if (rc < 0)
    return conn_fail(e, rc, "poll");
  return json_pack("{s:b}", "ready", rc == 1);
}

static json_t *op_close(json_t *a, bcd_err_t *e) {
  bl_conn_t *c = bcd_lookup(a, "conn", BCD_CONN, e);
  if (c == NULL)
    return NULL;
  int rc = bl_conn_close(c);
  return rc ? conn_fail(e, rc, "close") : json_object();
}

const bcd_op_t bcd_ops_process[] = {
    {"process.start", op_start},
    {"process.join", op_join},
    {"process.terminate", op_terminate},
    {"process.kill", op_kill},
    {"process.info", op_info},
    {"pipe.new", op_pipe_new},
    {"conn.send_bytes", op_send},
    {"conn.recv_bytes", op_recv},
    {"conn.recv_bytes_into", op_recv_into},
    {"conn.send", op_send_obj},
    {"conn.recv", op_recv_obj},
    {"conn.poll", op_poll},
    {"conn.close", op_close},
    {NULL, NULL},
};
