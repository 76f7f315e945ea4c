/* runner.c: one scenario x port x repeat. Starts the driver, reads the
 * hello, runs the steps (protocol ops go to the driver one at a time;
 * harness ops run here), then checks the history and audits leaks. One
 * thread: every wait is a loop of bc_driver_pump() calls that also records
 * events as they arrive. */
#include "runner.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "driver.h"
#include "history.h"
#include "proto.h"

#define STOP 1
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

static const char *const outcome_names[] = {"pass", "fail", "xfail", "xpass",
                                            "skip", "timeout", "crash"};

const char *bc_outcome_name(bc_outcome_t o) {
  return o < BC_OUTCOMES ? outcome_names[o] : "?";
}

int bc_outcome_parse(const char *s) {
  for (int i = 0; i < BC_OUTCOMES; i++)
    if (strcmp(outcome_names[i], s) == 0) return i;
  return -1;
}

bool bc_outcome_bad(bc_outcome_t o) {
  return o == BC_FAIL || o == BC_XPASS || o == BC_TIMEOUT || o == BC_CRASH;
}

typedef struct run {
  const bc_scenario_t *sc;
  const bc_port_t *port;
  const bc_run_opts_t *o;
  const char *method; /* start method sent with pool.new/process.start; NULL = port default */
  bc_driver_t *drv;
  double t0, deadline;
  int outcome; /* -1 while running */
  json_t *rec;
  json_t *timeline, *events, *names, *procs, *marks, *pools, *rename, *hello;
  bc_history_t hist;
  long next_id, pending_id;
  json_t *reply;
  uint64_t rng;
  bool teardown;
  char *faketime_path;
  double wall_offset;
  int fds_at_hello;
  const bc_step_t *cur;
} run_t;

static double now(const run_t *r) { return bc_now_ms() - r->t0; }

/* A short, printable form of a JSON value (large values are cut). */
static char *short_json(const json_t *v, size_t max) {
  return bc_proto_short_json(v, max);
}

static void tl_add(run_t *r, const char *kind, json_t *obj) {
  json_object_set_new(obj, "t", json_real(round(now(r) * 10) / 10));
  json_object_set_new(obj, "kind", json_string(kind));
  json_array_append_new(r->timeline, obj);
}

static void vlog(run_t *r, const char *dir, const char *line) {
  if (r->o->verbose)
    fprintf(stderr, "[%s %s %8.1f] %s %.400s\n", r->port->name, r->sc->id, now(r), dir, line);
}

static int set_outcome(run_t *r, bc_outcome_t o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_outcome(run_t *r, bc_outcome_t o, const char *fmt, ...) {
  if (r->outcome >= 0) return STOP;
  va_list ap;
  va_start(ap, fmt);
  char *m = bc_vasprintf(fmt, ap);
  va_end(ap);
  r->outcome = (int)o;
  json_object_set_new(r->rec, "message", json_string(m));
  free(m);
  if (r->cur) {
    char *loc = bc_asprintf("%s:%d:%d", r->sc->path, r->cur->line, r->cur->col);
    json_object_set_new(r->rec, "step", json_string(loc));
    json_object_set_new(r->rec, "op", json_string(r->cur->op ? r->cur->op->name : "?"));
    free(loc);
  }
  return STOP;
}

static int fail_check(run_t *r, const char *exp, const char *got) {
  json_object_set_new(r->rec, "expected", json_string(exp));
  json_object_set_new(r->rec, "got", json_string(got));
  return set_outcome(r, BC_FAIL, "expected %s, got %s", exp, got);
}

/* Waits briefly for the driver's exit status to explain a crash. */
static char *exit_reason(run_t *r) {
  double until = bc_now_ms() + 1000;
  while (!bc_driver_reap(r->drv) && bc_now_ms() < until) bc_driver_pump(r->drv, 20);
  if (!r->drv->exited) return bc_xstrdup("driver still running");
  return bc_driver_status_str(r->drv->status);
}

static int crash(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int crash(run_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *m = bc_vasprintf(fmt, ap);
  va_end(ap);
  set_outcome(r, BC_CRASH, "%s", m);
  free(m);
  return STOP;
}

static void on_event(run_t *r, json_t *ev) {
  const char *name = json_string_value(json_object_get(ev, "event"));
  if (name && strcmp(name, "job.ready") == 0) {
    const char *job = json_string_value(json_object_get(ev, "job"));
    if (job) bc_history_ready(&r->hist, job);
  }
}

static int handle_line(run_t *r, char *line) {
  vlog(r, "<", line);
  json_t *m = NULL;
  char *why = NULL;
  int kind = bc_proto_line(line, r->pending_id, &m, &why);
  if (kind < 0) {
    crash(r, "%s", why);
    free(why);
    return STOP;
  }
  if (kind == BC_LINE_EVENT) {
    json_object_set_new(m, "_t", json_real(now(r)));
    json_array_append(r->events, m);
    json_t *t = json_deep_copy(m);
    json_object_del(t, "_t");
    json_object_del(t, "v");
    json_t *val = json_object_get(t, "value");
    if (val) {
      char *sv = short_json(val, 80);
      json_object_set_new(t, "value", json_string(sv));
      free(sv);
    }
    tl_add(r, "event", t);
    on_event(r, m);
  } else {
    json_decref(r->reply);
    r->reply = json_incref(m);
  }
  json_decref(m);
  return 0;
}

static int drain_lines(run_t *r) {
  char *l;
  while ((l = bc_driver_take_line(r->drv))) {
    int rc = handle_line(r, l);
    free(l);
    if (rc) return rc;
  }
  return 0;
}

/* Deadline passed: SIGTERM the group, SIGKILL one second later. */
static int on_deadline(run_t *r) {
  set_outcome(r, BC_TIMEOUT, "scenario deadline (%.3gs x %g) passed%s%s", r->sc->timeout_s,
              r->o->multiplier, r->cur ? " during " : "", r->cur ? r->cur->op->name : "");
  bc_driver_signal_group(r->drv, SIGTERM);
  double until = bc_now_ms() + 1000;
  while (!bc_driver_reap(r->drv) && bc_now_ms() < until) bc_driver_pump(r->drv, 20);
  bc_driver_signal_group(r->drv, SIGKILL);
  return STOP;
}

/* One poll of at most (until - now) ms. 0, or STOP with the outcome set. */
static int pump(run_t *r, double until) {
  if (drain_lines(r)) return STOP;
  /* A driver whose workers inherited its stdout may exit without an EOF
   * reaching us: its exit counts too, once the pipe is drained. */
  if (r->drv->exited && !r->drv->out_eof && !r->teardown) {
    bc_driver_pump(r->drv, 0);
    if (drain_lines(r)) return STOP;
  }
  if ((r->drv->out_eof || r->drv->exited) && !r->teardown) {
    char *why = exit_reason(r);
    crash(r, "driver closed stdout before the last reply (%s)", why);
    free(why);
    return STOP;
  }
  double t = now(r);
  if (!r->teardown && t >= r->deadline) return on_deadline(r);
  double lim = r->teardown ? until : fmin(until, r->deadline);
  double wait = fmax(0, lim - t);
  bc_driver_pump(r->drv, (int)ceil(fmin(wait, 60000)));
  return drain_lines(r);
}

/* Sends a command and waits for its reply (events are recorded meanwhile). */
static int call(run_t *r, const char *op, json_t *args, json_t **reply) {
  *reply = NULL;
  long id = ++r->next_id;
  json_t *msg = json_pack("{s:i, s:I, s:s, s:o}", "v", BC_PROTOCOL, "id", (json_int_t)id, "op",
                          op, "args", args ? json_incref(args) : json_object());
  char *line = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  vlog(r, ">", line);
  bc_driver_send(r->drv, line);
  free(line);
  json_t *t = json_pack("{s:s, s:I}", "op", op, "id", (json_int_t)id);
  tl_add(r, "cmd", t);
  r->pending_id = id;
  while (!r->reply)
    if (pump(r, r->deadline)) return STOP;
  r->pending_id = 0;
  json_t *m = r->reply;
  r->reply = NULL;
  if (bc_proto_check_reply(m)) {
    json_decref(m);
    return crash(r, "protocol violation: malformed reply to %s (id %ld): expected "
                    "ok:true with a result object or ok:false with error.type", op, id);
  }
  json_t *ok = json_object_get(m, "ok");
  json_t *err = json_object_get(m, "error");
  json_t *rt = json_pack("{s:s, s:I, s:b}", "op", op, "id", (json_int_t)id, "ok", json_is_true(ok));
  if (!json_is_true(ok)) json_object_set(rt, "error", json_object_get(err, "type"));
  tl_add(r, "reply", rt);
  *reply = m;
  return 0;
}

static bool reply_ok(const json_t *reply) { return json_is_true(json_object_get(reply, "ok")); }

static const char *err_type(const json_t *reply) {
  return json_string_value(json_object_get(json_object_get(reply, "error"), "type"));
}

static const char *err_msg(const json_t *reply) {
  const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
  return m ? m : "";
}

static json_t *result_of(const json_t *reply) { return json_object_get(reply, "result"); }

static char *describe_reply(const json_t *reply) {
  if (!reply_ok(reply)) return bc_asprintf("error %s: '%s'", err_type(reply), err_msg(reply));
  json_t *res = result_of(reply);
  json_t *v = json_object_get(res, "value");
  char *s = short_json(v ? v : res, 300);
  char *d = bc_asprintf(v ? "ok, value %s" : "ok, result %s", s);
  free(s);
  return d;
}

/* JSON equality where 1 equals 1.0. */
static bool json_same(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b))
    return json_number_value(a) == json_number_value(b);
  if (json_typeof(a) != json_typeof(b)) return false;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b)) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!json_same(json_array_get(a, i), json_array_get(b, i))) return false;
    return true;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b)) return false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
      json_t *w = json_object_get(b, k);
      if (!w || !json_same(v, w)) return false;
    }
    return true;
  }
  return json_equal((json_t *)a, (json_t *)b);
}

static bool regex_match(const char *re, const char *s) {
  regex_t rx;
  if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB)) return false;
  bool m = regexec(&rx, s, 0, NULL, 0) == 0;
  regfree(&rx);
  return m;
}

/* One expect map against a reply. NULL if it passes, else "expected" text. */
static char *check_one(const json_t *expect, const json_t *reply) {
  json_t *value = json_object_get(expect, "value");
  json_t *error = json_object_get(expect, "error");
  json_t *error_in = json_object_get(expect, "error_in");
  json_t *okv = json_object_get(expect, "ok");
  const char *re = json_string_value(json_object_get(expect, "message"));
  if (value) {
    json_t *got = json_object_get(result_of(reply), "value");
    if (reply_ok(reply) && got && json_same(value, got)) return NULL;
    char *s = short_json(value, 300);
    char *e = bc_asprintf("ok, value %s", s);
    free(s);
    return e;
  }
  if (error || error_in) {
    bool type_ok = false;
    if (!reply_ok(reply)) {
      if (error) type_ok = strcmp(json_string_value(error), err_type(reply)) == 0;
      size_t i;
      json_t *t;
      json_array_foreach(error_in, i, t) if (strcmp(json_string_value(t), err_type(reply)) == 0)
          type_ok = true;
    }
    if (type_ok && (!re || regex_match(re, err_msg(reply)))) return NULL;
    char *types = error ? bc_xstrdup(json_string_value(error)) : short_json(error_in, 200);
    char *e = re ? bc_asprintf("error %s%s matching /%s/", error ? "" : "in ", types, re)
                 : bc_asprintf("error %s%s", error ? "" : "in ", types);
    free(types);
    return e;
  }
  bool want_ok = okv ? json_is_true(okv) : true;
  if (reply_ok(reply) == want_ok) return NULL;
  return bc_xstrdup(want_ok ? "ok" : "an error");
}

static char *check_result_fields(const json_t *expect_result, const json_t *reply) {
  if (!reply_ok(reply)) return short_json(expect_result, 300);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)expect_result, k, v) {
    json_t *g = json_object_get(result_of(reply), k);
    if (!g || !json_same(v, g)) {
      char *s = short_json(v, 200);
      char *e = bc_asprintf("result.%s = %s", k, s);
      free(s);
      return e;
    }
  }
  return NULL;
}

/* expect_min: each named result field is a number >= the bound. */
static char *check_result_min(const json_t *expect_min, const json_t *reply) {
  if (!reply_ok(reply)) return short_json(expect_min, 300);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)expect_min, k, v) {
    json_t *g = json_object_get(result_of(reply), k);
    if (!json_is_number(g) || json_number_value(g) < json_number_value(v))
      return bc_asprintf("result.%s >= %g", k, json_number_value(v));
  }
  return NULL;
}

/* Names: repeat renames, then worker/event names to pids. */
static json_t *rename_value(run_t *r, const json_t *v) {
  const char *s = json_string_value(v);
  if (!s || !json_object_size(r->rename)) return json_deep_copy(v);
  const char *k;
  json_t *to;
  json_object_foreach(r->rename, k, to) {
    size_t n = strlen(k);
    if (strcmp(s, k) == 0) return json_incref(to);
    if (strncmp(s, k, n) == 0 && s[n] == '.') {
      char *x = bc_asprintf("%s%s", json_string_value(to), s + n);
      json_t *j = json_string(x);
      free(x);
      return j;
    }
  }
  return json_deep_copy(v);
}

static json_t *resolve_pid(run_t *r, json_t *v) {
  if (json_is_string(v)) {
    json_t *p = json_object_get(r->names, json_string_value(v));
    if (p) {
      json_decref(v);
      return json_incref(p);
    }
  }
  return v;
}

static bool is_name_key(const char *k) {
  return bc_in_list(bc_handle_keys, k) || !strcmp(k, "prefix") || !strcmp(k, "since") ||
         !strcmp(k, "name") || !strcmp(k, "pid");
}

/* Which argument fields name a handle (renamed by repeat, resolved to pids)
 * and which carry data. "value", "event" and "array" name handles only in
 * their own ops' reads and writes (value.get {value: v}); elsewhere they are
 * data (queue.put {value: ...}, value.new's initial value) or an event name
 * (wait_event {event: ...}). "name" is a mark's name but a process's payload
 * name in process.start. */
static bool names_handle(const char *op, const char *k) {
  if (!strcmp(k, "value") || !strcmp(k, "event") || !strcmp(k, "array")) {
    size_t n = strlen(k);
    return op && !strncmp(op, k, n) && op[n] == '.' && strcmp(op + n, ".new") != 0;
  }
  if (!strcmp(k, "name")) return !op || strcmp(op, "process.start") != 0;
  return is_name_key(k);
}

/* process.start's target args name shared objects by handle
 * (queue_put {queue: q}); only those fields are renamed, never payloads
 * such as `values`, `data` or `seconds`. */
static json_t *prepare_target_args(run_t *r, const json_t *args) {
  static const char *const target_handles[] = {"queue", "lock",      "event", "value",
                                                "conn",  "condition", "barrier", "array", NULL};
  if (!json_is_object(args)) return json_deep_copy(args);
  json_t *a = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v)
      json_object_set_new(a, k, bc_in_list(target_handles, k) ? rename_value(r, v)
                                                              : json_deep_copy(v));
  return a;
}

static json_t *prepare_args(run_t *r, const char *op, const json_t *args) {
  json_t *a = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    json_t *n;
    if (op && !strcmp(op, "process.start") && !strcmp(k, "args"))
      n = prepare_target_args(r, v);
    else
      n = names_handle(op, k) ? rename_value(r, v) : json_deep_copy(v);
    if (!strcmp(k, "pid")) n = resolve_pid(r, n);
    json_object_set_new(a, k, n);
  }
  return a;
}

static const char *arg_str(const json_t *a, const char *k, const char *dflt) {
  const char *s = json_string_value(json_object_get(a, k));
  return s ? s : dflt;
}

static double arg_num(const json_t *a, const char *k, double dflt) {
  json_t *v = json_object_get(a, k);
  return json_is_number(v) ? json_number_value(v) : dflt;
}

/* Records an answer of result.get and enforces "never changes its answer". */
static int note_answer(run_t *r, const char *job, const json_t *reply) {
  if (!job) return 0;
  const char *t = reply_ok(reply) ? NULL : err_type(reply);
  if (t && (!strcmp(t, "TimeoutError") || !strcmp(t, "Unsupported"))) return 0;
  char *ans = reply_ok(reply) ? short_json(json_object_get(result_of(reply), "value"), 1u << 30)
                              : bc_asprintf("error %s", t);
  char *prev = NULL;
  int rc = 0;
  if (bc_history_answer(&r->hist, job, ans, &prev) < 0) {
    char *e = bc_asprintf("job %s to keep its first answer (%.200s)", job, prev);
    char *g = bc_asprintf("a different answer (%.200s)", ans);
    rc = fail_check(r, e, g);
    free(e);
    free(g);
  }
  free(ans);
  return rc;
}

static int unsupported(run_t *r, const json_t *reply, const char *op) {
  return set_outcome(r, BC_SKIP, "port does not support %s: %s", op, err_msg(reply));
}

static int step_protocol(run_t *r, const bc_step_t *st) {
  json_t *args = prepare_args(r, st->op->name, st->args), *reply;
  const char *op = st->op->name;
  /* INTERPRETING.md §6: the run's start method travels with every op that
   * starts processes or makes an object handed to them (Python creates it
   * from that method's context), unless the scenario names one itself. */
  static const char *const with_method[] = {
      "pool.new", "process.start", "queue.new", "lock.new", "event.new",
      "condition.new", "barrier.new", "value.new", "array.new"};
  int takes_method = 0;
  for (size_t i = 0; i < sizeof with_method / sizeof with_method[0]; i++)
    if (!strcmp(op, with_method[i])) takes_method = 1;
  if (r->method && takes_method && !json_object_get(args, "start_method"))
    json_object_set_new(args, "start_method", json_string(r->method));
  if (call(r, op, args, &reply)) {
    json_decref(args);
    return STOP;
  }
  int rc = 0;
  if (!reply_ok(reply) && strcmp(err_type(reply), "Unsupported") == 0) {
    rc = unsupported(r, reply, op);
    goto out;
  }
  json_t *res = result_of(reply);
  if (reply_ok(reply)) {
    if (st->op->makes_job) {
      const char *job = arg_str(res, "job", arg_str(args, "as", NULL));
      if (job) bc_history_submit(&r->hist, job);
    }
    if (!strcmp(op, "pool.new")) {
      const char *p = arg_str(res, "pool", arg_str(args, "as", NULL));
      json_t *pids = json_object_get(res, "pids");
      json_t *want = json_object_get(args, "processes");
      if (p)
        json_object_set_new(r->pools, p, json_integer(json_is_integer(want) ? json_integer_value(want)
                                                       : (json_int_t)json_array_size(pids)));
    }
    if (!strcmp(op, "process.start")) {
      const char *p = arg_str(res, "process", arg_str(args, "as", NULL));
      if (p && json_is_integer(json_object_get(res, "pid")))
        json_object_set(r->procs, p, json_object_get(res, "pid"));
    }
  }
  if (!strcmp(op, "result.get") && (rc = note_answer(r, arg_str(args, "job", NULL), reply)))
    goto out;
  char *e = check_one(st->expect, reply); /* NULL expect = {ok: true} */
  if (!e && st->expect_result) e = check_result_fields(st->expect_result, reply);
  if (!e && st->expect_min) e = check_result_min(st->expect_min, reply);
  if (e) {
    char *g = describe_reply(reply);
    rc = fail_check(r, e, g);
    free(g);
    free(e);
  }
out:
  json_decref(reply);
  json_decref(args);
  return rc;
}

/* Events. Match fields are every argument but the op's own ones. */
static bool is_control_key(const char *k) {
  return !strcmp(k, "event") || !strcmp(k, "timeout") || !strcmp(k, "count") ||
         !strcmp(k, "as") || !strcmp(k, "min") || !strcmp(k, "max") || !strcmp(k, "for");
}

/* Scenario value v matches event value g: maps as subsets, the rest equal. */
static bool json_match(const json_t *v, const json_t *g) {
  if (!json_is_object(v) || !json_is_object(g)) return json_same(v, g);
  const char *k;
  json_t *x;
  json_object_foreach((json_t *)v, k, x) {
    json_t *y = json_object_get(g, k);
    if (!y || !json_match(x, y)) return false;
  }
  return true;
}

static bool event_matches(const json_t *ev, const char *name, const json_t *args) {
  if (strcmp(json_string_value(json_object_get(ev, "event")), name) != 0) return false;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    if (is_control_key(k)) continue;
    json_t *g = json_object_get(ev, k);
    if (!g || !json_match(v, g)) return false;
  }
  return true;
}

static size_t count_events(run_t *r, size_t from, const char *name, const json_t *args,
                           json_t **last) {
  size_t n = 0;
  for (size_t i = from; i < json_array_size(r->events); i++) {
    json_t *ev = json_array_get(r->events, i);
    if (event_matches(ev, name, args)) {
      n++;
      if (last) *last = ev;
    }
  }
  return n;
}

static char *describe_match(const char *name, const json_t *args) {
  bc_buf_t b = {0};
  bc_buf_puts(&b, name);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    if (is_control_key(k)) continue;
    char *s = short_json(v, 60);
    bc_buf_printf(&b, " %s=%s", k, s);
    free(s);
  }
  return bc_buf_steal(&b);
}

static int step_wait_event(run_t *r, const json_t *a) {
  const char *name = arg_str(a, "event", "");
  size_t want = (size_t)arg_num(a, "count", 1);
  double until = json_object_get(a, "timeout")
                     ? now(r) + arg_num(a, "timeout", 0) * 1000 * r->o->multiplier
                     : r->deadline;
  json_t *last = NULL;
  size_t n;
  while ((n = count_events(r, 0, name, a, &last)) < want) {
    if (now(r) >= until) {
      char *m = describe_match(name, a);
      char *e = bc_asprintf("%zu %s event(s) within %gs", want, m, arg_num(a, "timeout", 0));
      char *g = bc_asprintf("%zu", n);
      int rc = fail_check(r, e, g);
      free(m);
      free(e);
      free(g);
      return rc;
    }
    if (pump(r, until)) return STOP;
  }
  const char *as = arg_str(a, "as", NULL);
  json_t *pid = json_object_get(last, "pid");
  if (as && pid) json_object_set(r->names, as, pid);
  return 0;
}

static int step_expect_events(run_t *r, const json_t *a) {
  const char *name = arg_str(a, "event", "");
  if (drain_lines(r)) return STOP;
  size_t n = count_events(r, 0, name, a, NULL);
  json_t *c = json_object_get(a, "count"), *mn = json_object_get(a, "min"),
         *mx = json_object_get(a, "max");
  bool ok = true;
  if (c) ok = ok && n == (size_t)json_integer_value(c);
  if (mn) ok = ok && n >= (size_t)json_integer_value(mn);
  if (mx) ok = ok && n <= (size_t)json_integer_value(mx);
  if (!c && !mn && !mx) ok = n >= 1;
  if (ok) return 0;
  char *m = describe_match(name, a);
  char *e = c    ? bc_asprintf("exactly %lld %s event(s)", json_integer_value(c), m)
            : mn && mx ? bc_asprintf("%lld to %lld %s event(s)", json_integer_value(mn),
                                     json_integer_value(mx), m)
            : mn       ? bc_asprintf("at least %lld %s event(s)", json_integer_value(mn), m)
            : mx       ? bc_asprintf("at most %lld %s event(s)", json_integer_value(mx), m)
                       : bc_asprintf("at least one %s event", m);
  char *g = bc_asprintf("%zu", n);
  int rc = fail_check(r, e, g);
  free(m);
  free(e);
  free(g);
  return rc;
}

static int step_no_event(run_t *r, const json_t *a) {
  const char *name = arg_str(a, "event", "");
  if (drain_lines(r)) return STOP;
  size_t from = json_array_size(r->events);
  double until = now(r) + arg_num(a, "for", 0) * 1000;
  while (now(r) < until) {
    if (pump(r, until)) return STOP;
    json_t *ev = NULL;
    if (count_events(r, from, name, a, &ev)) {
      char *m = describe_match(name, a);
      char *e = bc_asprintf("no %s event for %gs", m, arg_num(a, "for", 0));
      char *s = short_json(ev, 200);
      int rc = fail_check(r, e, s);
      free(m);
      free(e);
      free(s);
      return rc;
    }
  }
  return 0;
}

static uint64_t rng_for(run_t *r, const json_t *a) {
  json_t *seed = json_object_get(a, "seed");
  uint64_t s = json_is_integer(seed) ? (uint64_t)json_integer_value(seed) : r->rng;
  if (!json_is_integer(seed)) bc_splitmix64(&r->rng); /* next pick differs */
  return bc_splitmix64(&s);
}

/* Signals a pid after checking it belongs to the driver's process group. */
static int signal_pid(run_t *r, long pid, int sig, const char *why) {
  if (pid <= 0 || bc_pgid_of((pid_t)pid) != r->drv->pid)
    return fail_check(r, "a victim in the driver's process group",
                      pid > 0 ? "a pid outside it (or gone)" : "no pid");
  kill((pid_t)pid, sig);
  json_t *f = json_pack("{s:I, s:s, s:s}", "pid", (json_int_t)pid, "signal", bc_signal_name(sig),
                        "what", why);
  tl_add(r, "fault", f);
  return 0;
}

static int pool_info(run_t *r, const char *pool, json_t **info) {
  json_t *args = json_pack("{s:s}", "pool", pool), *reply;
  int rc = call(r, "pool.info", args, &reply);
  json_decref(args);
  if (rc) return STOP;
  if (!reply_ok(reply)) {
    char *g = describe_reply(reply);
    rc = !strcmp(err_type(reply), "Unsupported") ? unsupported(r, reply, "pool.info")
                                                 : fail_check(r, "pool.info to succeed", g);
    free(g);
    json_decref(reply);
    return rc;
  }
  *info = json_incref(result_of(reply));
  json_decref(reply);
  return 0;
}

static int step_signal_worker(run_t *r, const bc_step_t *st, const json_t *a) {
  int dflt = st->op->hop == BC_H_STOP_WORKER   ? SIGSTOP
             : st->op->hop == BC_H_CONT_WORKER ? SIGCONT
                                               : SIGKILL;
  int sig = json_object_get(a, "signal") ? bc_signal_number(arg_str(a, "signal", "")) : dflt;
  long victim = -1;
  json_t *pidv = json_object_get(a, "pid");
  if (json_is_integer(pidv)) {
    victim = (long)json_integer_value(pidv);
  } else if (pidv) {
    char *e = bc_asprintf("pid '%s' to name a worker seen earlier (as)", json_string_value(pidv));
    int rc = fail_check(r, e, "an unknown name");
    free(e);
    return rc;
  } else {
    json_t *info = NULL;
    if (pool_info(r, arg_str(a, "pool", ""), &info)) return STOP;
    json_t *pids = json_object_get(info, "pids"), *busy = json_object_get(info, "busy");
    const char *job = arg_str(a, "job", NULL);
    const char *role = arg_str(a, "role", "any");
    long cand[512];
    size_t nc = 0, i;
    json_t *p;
    json_array_foreach(pids, i, p) {
      if (!json_is_integer(p) || nc == BC_ARRAY_SIZE(cand)) continue;
      char key[32];
      snprintf(key, sizeof key, "%lld", (long long)json_integer_value(p));
      json_t *jobs = json_object_get(busy, key);
      bool is_busy = json_array_size(jobs) > 0;
      bool take;
      if (job) {
        take = false;
        size_t x;
        json_t *j;
        json_array_foreach(jobs, x, j) if (json_is_string(j) && !strcmp(json_string_value(j), job))
            take = true;
      } else {
        take = !strcmp(role, "any") || (!strcmp(role, "busy") && is_busy) ||
               (!strcmp(role, "idle") && !is_busy);
      }
      if (take) cand[nc++] = (long)json_integer_value(p);
    }
    if (nc == 0) {
      char *e = job ? bc_asprintf("a worker running job %s", job)
                    : bc_asprintf("a%s %s worker", !strcmp(role, "idle") ? "n" : "", role);
      char *g = short_json(info, 300);
      char *gg = bc_asprintf("none in pool.info %s", g);
      int rc = fail_check(r, e, gg);
      free(e);
      free(g);
      free(gg);
      json_decref(info);
      return rc;
    }
    victim = cand[rng_for(r, a) % nc];
    json_decref(info);
  }
  if (signal_pid(r, victim, sig, st->op->name)) return STOP;
  const char *as = arg_str(a, "as", NULL);
  if (as) json_object_set_new(r->names, as, json_integer(victim));
  return 0;
}

static int step_kill_process(run_t *r, const json_t *a) {
  const char *proc = arg_str(a, "process", "");
  int sig = json_object_get(a, "signal") ? bc_signal_number(arg_str(a, "signal", "")) : SIGKILL;
  json_t *pid = json_object_get(r->procs, proc);
  long p = json_is_integer(pid) ? (long)json_integer_value(pid) : -1;
  if (p < 0) {
    json_t *args = json_pack("{s:s}", "process", proc), *reply;
    int rc = call(r, "process.info", args, &reply);
    json_decref(args);
    if (rc) return STOP;
    json_t *rp = json_object_get(result_of(reply), "pid");
    if (reply_ok(reply) && json_is_integer(rp)) p = (long)json_integer_value(rp);
    json_decref(reply);
  }
  if (p < 0) {
    char *e = bc_asprintf("the pid of process %s", proc);
    int rc = fail_check(r, e, "none");
    free(e);
    return rc;
  }
  return signal_pid(r, p, sig, "kill_process");
}

static int let_time_pass(run_t *r, double ms) {
  double until = now(r) + ms;
  while (now(r) < until)
    if (pump(r, until)) return STOP;
  return 0;
}

static int step_expect_elapsed(run_t *r, const json_t *a) {
  const char *since = arg_str(a, "since", "");
  json_t *m = json_object_get(r->marks, since);
  if (!m) {
    char *e = bc_asprintf("a mark named %s before this step", since);
    int rc = fail_check(r, e, "no such mark");
    free(e);
    return rc;
  }
  double el = (now(r) - json_number_value(m)) / 1000;
  double mn = arg_num(a, "min", 0), mx = arg_num(a, "max", INFINITY);
  if (el >= mn && el <= mx * r->o->multiplier) return 0;
  char *e = isinf(mx) ? bc_asprintf("at least %gs since %s", mn, since)
                      : bc_asprintf("%gs to %gs (x%g) since %s", mn, mx, r->o->multiplier, since);
  char *g = bc_asprintf("%.3fs", el);
  int rc = fail_check(r, e, g);
  free(e);
  free(g);
  return rc;
}

static int step_wall_jump(run_t *r, const json_t *a) {
  r->wall_offset += arg_num(a, "seconds", 0);
  FILE *f = r->faketime_path ? fopen(r->faketime_path, "we") : NULL;
  if (!f) return fail_check(r, "a libfaketime timestamp file", "none (is 'wallclock' in faults?)");
  fprintf(f, "%+.3f\n", r->wall_offset);
  fclose(f);
  tl_add(r, "fault", json_pack("{s:s, s:f}", "what", "wall_jump", "seconds", r->wall_offset));
  return 0;
}

static int step_submit_many(run_t *r, const json_t *a) {
  long count = (long)arg_num(a, "count", 0);
  const char *prefix = arg_str(a, "as", "job");
  for (long i = 0; i < count; i++) {
    json_t *args = json_pack("{s:s, s:s}", "pool", arg_str(a, "pool", ""), "task",
                             arg_str(a, "task", "noop"));
    json_object_set(args, "args", json_object_get(a, "args") ? json_object_get(a, "args")
                                                             : json_object());
    if (!json_object_get(a, "args")) json_decref(json_object_get(args, "args"));
    char *name = bc_asprintf("%s.%ld", prefix, i);
    json_object_set_new(args, "as", json_string(name));
    const char *lims[] = {"time_limit", "soft_time_limit"};
    for (size_t l = 0; l < 2; l++)
      if (json_object_get(a, lims[l])) json_object_set(args, lims[l], json_object_get(a, lims[l]));
    json_t *reply;
    int rc = call(r, "pool.apply_async", args, &reply);
    json_decref(args);
    if (rc) {
      free(name);
      return STOP;
    }
    if (reply_ok(reply)) bc_history_submit(&r->hist, arg_str(result_of(reply), "job", name));
    else if (!strcmp(err_type(reply), "Unsupported")) rc = unsupported(r, reply, "pool.apply_async");
    else {
      char *g = describe_reply(reply);
      char *e = bc_asprintf("pool.apply_async of %s to succeed", name);
      rc = fail_check(r, e, g);
      free(e);
      free(g);
    }
    free(name);
    json_decref(reply);
    if (rc) return rc;
  }
  return 0;
}

static int step_get_all(run_t *r, const bc_step_t *st, const json_t *a) {
  const char *prefix = arg_str(a, "prefix", "");
  size_t plen = strlen(prefix), got = 0;
  for (size_t i = 0; i < bc_history_count(&r->hist); i++) {
    const char *job = bc_history_job(&r->hist, i);
    if (strncmp(job, prefix, plen) || job[plen] != '.') continue;
    got++;
    json_t *args = json_pack("{s:s}", "job", job), *reply;
    if (json_object_get(a, "timeout")) json_object_set(args, "timeout", json_object_get(a, "timeout"));
    int rc = call(r, "result.get", args, &reply);
    json_decref(args);
    if (rc) return STOP;
    if ((rc = note_answer(r, job, reply))) {
      json_decref(reply);
      return rc;
    }
    char *e = NULL;
    if (st->expect_any) {
      size_t x;
      json_t *c;
      bool any = false;
      json_array_foreach(st->expect_any, x, c) {
        char *ce = check_one(c, reply);
        if (!ce) any = true;
        free(ce);
      }
      if (!any) {
        char *s = short_json(st->expect_any, 300);
        e = bc_asprintf("one of %s", s);
        free(s);
      }
    } else {
      e = check_one(st->expect, reply);
    }
    if (e) {
      char *g = describe_reply(reply);
      char *ee = bc_asprintf("%s for job %s", e, job);
      rc = fail_check(r, ee, g);
      free(ee);
      free(g);
      free(e);
    }
    json_decref(reply);
    if (rc) return rc;
  }
  if (got == 0) {
    char *e = bc_asprintf("jobs submitted as %s.N", prefix);
    int rc = fail_check(r, e, "none");
    free(e);
    return rc;
  }
  return 0;
}

static int step_chaos(run_t *r, const json_t *a) {
  long kills = (long)arg_num(a, "kills", 0);
  int sig = json_object_get(a, "signal") ? bc_signal_number(arg_str(a, "signal", "")) : SIGKILL;
  double interval = arg_num(a, "interval", 0.1) * 1000;
  for (long k = 0; k < kills; k++) {
    json_t *info = NULL;
    if (pool_info(r, arg_str(a, "pool", ""), &info)) return STOP;
    json_t *pids = json_object_get(info, "pids");
    size_t n = json_array_size(pids);
    if (n == 0) {
      json_decref(info);
      return fail_check(r, "a live worker to kill", "pool.info lists none");
    }
    long victim = (long)json_integer_value(json_array_get(pids, rng_for(r, a) % n));
    json_decref(info);
    if (signal_pid(r, victim, sig, "chaos")) return STOP;
    if (let_time_pass(r, interval)) return STOP;
  }
  return 0;
}

static int run_steps(run_t *r, const bc_step_t *steps, size_t n);

static void collect_names(const bc_step_t *steps, size_t n, json_t *set) {
  for (size_t i = 0; i < n; i++) {
    const char *as = json_string_value(json_object_get(steps[i].args, "as"));
    if (as) json_object_set_new(set, as, json_true());
    if (steps[i].op && steps[i].op->hop == BC_H_MARK) {
      const char *m = json_string_value(json_object_get(steps[i].args, "name"));
      if (m) json_object_set_new(set, m, json_true());
    }
    collect_names(steps[i].steps, steps[i].nsteps, set);
  }
}

static int step_repeat(run_t *r, const bc_step_t *st, const json_t *a) {
  long times = (long)arg_num(a, "times", 1);
  json_t *names = json_object();
  collect_names(st->steps, st->nsteps, names);
  json_t *saved = json_deep_copy(r->rename);
  int rc = 0;
  for (long i = 0; i < times && !rc; i++) {
    const char *k;
    json_t *v;
    json_object_foreach(names, k, v) {
      /* Nested repeats compose: the outer suffix comes first. */
      json_t *outer = json_object_get(saved, k);
      const char *base = outer ? json_string_value(outer) : k;
      char *x = bc_asprintf("%s.%ld", base, i);
      json_object_set_new(r->rename, k, json_string(x));
      free(x);
    }
    rc = run_steps(r, st->steps, st->nsteps);
  }
  json_decref(r->rename);
  r->rename = saved;
  json_decref(names);
  return rc;
}

static int run_step(run_t *r, const bc_step_t *st) {
  r->cur = st;
  if (st->op->hop == BC_H_PROTOCOL) return step_protocol(r, st);
  json_t *a = prepare_args(r, st->op->name, st->args);
  int rc = 0;
  switch (st->op->hop) {
  case BC_H_WAIT_EVENT: rc = step_wait_event(r, a); break;
  case BC_H_EXPECT_EVENTS: rc = step_expect_events(r, a); break;
  case BC_H_NO_EVENT: rc = step_no_event(r, a); break;
  case BC_H_KILL_WORKER:
  case BC_H_STOP_WORKER:
  case BC_H_CONT_WORKER: rc = step_signal_worker(r, st, a); break;
  case BC_H_KILL_PROCESS: rc = step_kill_process(r, a); break;
  case BC_H_SLEEP: rc = let_time_pass(r, arg_num(a, "seconds", 0) * 1000); break;
  case BC_H_MARK:
    json_object_set_new(r->marks, arg_str(a, "name", ""), json_real(now(r)));
    tl_add(r, "mark", json_pack("{s:s}", "name", arg_str(a, "name", "")));
    break;
  case BC_H_EXPECT_ELAPSED: rc = step_expect_elapsed(r, a); break;
  case BC_H_WALL_JUMP: rc = step_wall_jump(r, a); break;
  case BC_H_SUBMIT_MANY: rc = step_submit_many(r, a); break;
  case BC_H_GET_ALL: rc = step_get_all(r, st, a); break;
  case BC_H_CHAOS: rc = step_chaos(r, a); break;
  case BC_H_REPEAT: rc = step_repeat(r, st, a); break;
  case BC_H_PROTOCOL: break;
  }
  json_decref(a);
  return rc;
}

static int run_steps(run_t *r, const bc_step_t *steps, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (run_step(r, &steps[i])) return STOP;
  return 0;
}

/* each-job-resolves-once: duplicates, then jobs never seen resolved. */
static int check_history(run_t *r) {
  r->cur = NULL;
  for (size_t i = 0; i < bc_history_count(&r->hist); i++) {
    const char *job = bc_history_job(&r->hist, i);
    int n = bc_history_ready_count(&r->hist, job);
    if (n > 1) {
      char *g = bc_asprintf("%d job.ready events (duplicated result)", n);
      char *e = bc_asprintf("job %s to resolve once", job);
      fail_check(r, e, g);
      free(e);
      free(g);
      return STOP;
    }
  }
  for (size_t i = 0; i < bc_history_count(&r->hist); i++) {
    const char *job = bc_history_job(&r->hist, i);
    if (bc_history_ready_count(&r->hist, job) || bc_history_first_answer(&r->hist, job)) continue;
    /* Never seen resolved: give the driver a moment to resolve it. */
    json_t *args = json_pack("{s:s, s:f}", "job", job, "timeout", 1.0 * r->o->multiplier), *reply;
    if (call(r, "result.wait", args, &reply)) {
      json_decref(args);
      return STOP;
    }
    json_decref(args);
    bool ready = json_is_true(json_object_get(result_of(reply), "ready"));
    if (!reply_ok(reply)) {
      json_decref(reply);
      args = json_pack("{s:s}", "job", job);
      int rc = call(r, "result.ready", args, &reply);
      json_decref(args);
      if (rc) return STOP;
      ready = json_is_true(json_object_get(result_of(reply), "ready"));
      if (!reply_ok(reply)) ready = true; /* cannot tell: do not accuse */
    }
    json_decref(reply);
    if (!ready) {
      char *e = bc_asprintf("job %s to resolve before teardown", job);
      json_object_set_new(r->rec, "expected", json_string(e));
      json_object_set_new(r->rec, "got", json_string("not ready (no job.ready, result.wait false)"));
      set_outcome(r, BC_FAIL, "lost job %s: it never resolved", job);
      free(e);
      return STOP;
    }
  }
  return 0;
}

static int check_invariants(run_t *r) {
  if (bc_strv_has(&r->sc->invariants, "no-worker-down")) {
    json_t *ev = NULL;
    if (count_events(r, 0, "worker.down", NULL, &ev)) {
      char *s = short_json(ev, 200);
      int rc = fail_check(r, "no worker.down event (invariant no-worker-down)", s);
      free(s);
      return rc;
    }
  }
  if (bc_strv_has(&r->sc->invariants, "pool-size-restored")) {
    const char *pool;
    json_t *want;
    json_object_foreach(r->pools, pool, want) {
      double until = now(r) + 2000 * r->o->multiplier;
      for (;;) {
        json_t *info = NULL;
        if (pool_info(r, pool, &info)) return STOP;
        bool running = strcmp(arg_str(info, "state", "RUN"), "RUN") == 0;
        size_t n = json_array_size(json_object_get(info, "pids"));
        json_decref(info);
        if (!running || (json_int_t)n == json_integer_value(want)) break;
        if (now(r) >= until) {
          char *e = bc_asprintf("pool %s back to %lld workers (invariant pool-size-restored)",
                                pool, json_integer_value(want));
          char *g = bc_asprintf("%zu", n);
          int rc = fail_check(r, e, g);
          free(e);
          free(g);
          return rc;
        }
        if (let_time_pass(r, 50)) return STOP;
      }
    }
  }
  return 0;
}

/* A leak fails a run that passed so far; after another failure it is kept
 * as a note ("audit") so the first failure stays the headline. */
static void audit_fail(run_t *r, const char *exp, const char *got, const char *what) {
  if (r->outcome >= 0) {
    char *a = bc_asprintf("%s: %s", what, got);
    json_object_set_new(r->rec, "audit", json_string(a));
    free(a);
    return;
  }
  json_object_set_new(r->rec, "expected", json_string(exp));
  json_object_set_new(r->rec, "got", json_string(got));
  set_outcome(r, BC_FAIL, "%s: %s", what, got);
}

/* Close stdin, wait for exit 0, then audit the process group and /dev/shm. */
static void teardown(run_t *r, bc_audit_t *au) {
  r->teardown = true;
  r->cur = NULL;
  if (!r->drv->exited) {
    char *fds = bc_asprintf("%d at hello, %d before stdin EOF", r->fds_at_hello,
                            bc_audit_fd_count(r->drv->pid));
    json_object_set_new(r->rec, "fds", json_string(fds));
    free(fds);
  }
  bc_driver_close_stdin(r->drv);
  double until = now(r) + 5000 * r->o->multiplier;
  while (!r->drv->exited && now(r) < until) {
    pump(r, until);
    bc_driver_reap(r->drv);
  }
  /* Its last lines; surviving children may hold stdout open, so briefly. */
  double drain = now(r) + 100;
  while (!r->drv->out_eof && now(r) < drain) pump(r, drain);
  drain_lines(r);
  if (!r->drv->exited) {
    set_outcome(r, BC_CRASH, "driver did not exit within %gs of stdin EOF",
                5 * r->o->multiplier);
    bc_driver_signal_group(r->drv, SIGKILL);
    /* Reap it before the audit, which reaps any child of ours. */
    double kill_until = bc_now_ms() + 2000;
    while (!bc_driver_reap(r->drv) && bc_now_ms() < kill_until) bc_driver_pump(r->drv, 20);
  } else if (!WIFEXITED(r->drv->status) || WEXITSTATUS(r->drv->status) != 0) {
    char *s = bc_driver_status_str(r->drv->status);
    set_outcome(r, BC_CRASH, "driver %s (expected exit 0 at stdin EOF)", s);
    free(s);
  }
  /* Survivors of the group: orphans are ours to reap (subreaper). Allow a
   * grace period for workers that are already on their way out. */
  bc_strv_t left = {0};
  double grace = bc_now_ms() + 2000 * r->o->multiplier;
  for (;;) {
    bc_audit_reap();
    bc_strv_free(&left);
    bc_audit_group(r->drv->pid, &left);
    if (!left.n || bc_now_ms() >= grace) break;
    bc_driver_pump(r->drv, 20);
  }
  if (left.n) {
    bc_buf_t b = {0};
    for (size_t i = 0; i < left.n; i++) bc_buf_printf(&b, "%s%s", i ? ", " : "", left.v[i]);
    audit_fail(r, "no process left in the driver's group", b.s,
               "leaked process(es) after the driver exited");
    bc_buf_free(&b);
    bc_driver_signal_group(r->drv, SIGKILL);
    for (size_t i = 0; i < left.n; i++) /* those that left the group are our children */
      kill((pid_t)strtol(left.v[i], NULL, 10), SIGKILL);
    double until2 = bc_now_ms() + 1000;
    do {
      bc_audit_reap();
      bc_strv_free(&left);
      bc_audit_group(r->drv->pid, &left);
    } while (left.n && bc_now_ms() < until2 && !bc_driver_pump(r->drv, 10));
  }
  bc_strv_free(&left);
  bc_strv_t shm = {0};
  bc_audit_shm(au, &shm);
  if (shm.n) {
    bc_buf_t b = {0};
    for (size_t i = 0; i < shm.n; i++) bc_buf_printf(&b, "%s/dev/shm/%s", i ? ", " : "", shm.v[i]);
    audit_fail(r, "no new /dev/shm entries", b.s, "leaked");
    bc_buf_free(&b);
  }
  bc_strv_free(&shm);
}

static char **build_env(run_t *r, bc_strv_t *env) {
  for (size_t i = 0; i < r->sc->env.n; i++) bc_strv_push(env, r->sc->env.v[i]);
  if (r->faketime_path) {
    const char *asan = r->port->is_c ? r->o->asan_runtime : NULL;
    bc_strv_push_owned(env, bc_asprintf("LD_PRELOAD=%s%s%s", asan ? asan : "", asan ? " " : "",
                                        FAKETIME_LIB));
    bc_strv_push_owned(env, bc_asprintf("FAKETIME_TIMESTAMP_FILE=%s", r->faketime_path));
    bc_strv_push(env, "FAKETIME_NO_CACHE=1");
    bc_strv_push(env, "FAKETIME_DONT_FAKE_MONOTONIC=1");
  }
  bc_strv_push_owned(env, NULL); /* terminator: execve-style array */
  env->n--;
  return env->v;
}

/* Reads the hello (10 s x multiplier) and checks version and features. */
static int hello(run_t *r) {
  double until = now(r) + 10000 * r->o->multiplier;
  char *line = NULL;
  while (!(line = bc_driver_take_line(r->drv))) {
    if (r->drv->exited && !r->drv->out_eof) { /* children may hold stdout open */
      bc_driver_pump(r->drv, 0);
      if ((line = bc_driver_take_line(r->drv))) break;
    }
    if (r->drv->out_eof || r->drv->exited) {
      char *why = exit_reason(r);
      crash(r, "driver closed stdout before its hello (%s)", why);
      free(why);
      return STOP;
    }
    if (now(r) >= until)
      return crash(r, "no hello from the driver within %gs", 10 * r->o->multiplier);
    bc_driver_pump(r->drv, (int)ceil(until - now(r)));
  }
  vlog(r, "<", line);
  json_t *h = NULL;
  char *why = NULL;
  int bad = bc_proto_hello(line, &h, &why);
  free(line);
  if (bad) {
    crash(r, "%s", why);
    free(why);
    return STOP;
  }
  r->hello = h;
  r->fds_at_hello = bc_audit_fd_count(r->drv->pid);
  const char *port = json_string_value(json_object_get(h, "port"));
  const char *impl = json_string_value(json_object_get(h, "impl"));
  if (impl) json_object_set_new(r->rec, "impl", json_string(impl));
  if (r->port->from_cmd && port) {
    json_object_set_new(r->rec, "port", json_string(port));
    const bc_expectations_t *e = r->o->expectations ? r->o->expectations(port) : NULL;
    const char *why = bc_expectations_skip(e, r->sc->id, r->method);
    if (why) return set_outcome(r, BC_SKIP, "skipped by expectations: %s", why);
  }
  json_t *sm = json_object_get(h, "start_methods");
  if (!r->method) { /* the port's default: the first method it announces */
    json_t *d = json_array_get(sm, 0);
    json_object_set_new(r->rec, "start_method",
                        json_string(json_is_string(d) ? json_string_value(d) : "fork"));
  }
  json_t *features = json_object_get(h, "features");
  bc_buf_t missing = {0};
  for (size_t i = 0; i < r->sc->features.n; i++) {
    bool have = false;
    size_t x;
    json_t *f;
    json_array_foreach(features, x, f) if (json_is_string(f) &&
                                           !strcmp(json_string_value(f), r->sc->features.v[i]))
        have = true;
    if (!have) bc_buf_printf(&missing, "%s%s", missing.len ? ", " : "", r->sc->features.v[i]);
  }
  if (missing.len) {
    set_outcome(r, BC_SKIP, "port lacks feature(s): %s", missing.s);
    bc_buf_free(&missing);
    return STOP;
  }
  if (r->method) {
    if (r->sc->start_methods.n && !bc_strv_has(&r->sc->start_methods, r->method))
      return set_outcome(r, BC_SKIP, "scenario does not apply to start method %s", r->method);
    bool have = false;
    size_t x;
    json_t *f;
    json_array_foreach(sm, x, f) if (json_is_string(f) && !strcmp(json_string_value(f), r->method))
        have = true;
    if (!have) return set_outcome(r, BC_SKIP, "port lacks start method %s", r->method);
    return 0;
  }
  if (r->sc->start_methods.n && json_is_array(sm)) {
    bool any = false;
    size_t x;
    json_t *f;
    json_array_foreach(sm, x, f) if (json_is_string(f) &&
                                     bc_strv_has(&r->sc->start_methods, json_string_value(f)))
        any = true;
    if (!any) return set_outcome(r, BC_SKIP, "port has none of the scenario's start methods");
  }
  return 0;
}

json_t *bc_run_scenario(const bc_scenario_t *sc, const bc_port_t *port, unsigned repeat,
                        const char *method, const bc_run_opts_t *o) {
  run_t r = {.sc = sc, .port = port, .o = o, .method = method, .outcome = -1};
  r.rec = json_pack("{s:i, s:s, s:s, s:i}", "protocol", BC_PROTOCOL, "scenario", sc->id, "port",
                    port->name, "repeat", (int)repeat);
  if (method) json_object_set_new(r.rec, "start_method", json_string(method));
  r.timeline = json_array();
  r.events = json_array();
  r.names = json_object();
  r.procs = json_object();
  r.marks = json_object();
  r.pools = json_object();
  r.rename = json_object();
  bc_history_init(&r.hist);
  r.rng = bc_hash_str(bc_hash_str(o->seed + repeat, sc->id), port->name);
  r.t0 = bc_now_ms();
  const bc_expectations_t *ex = o->expectations && !port->from_cmd ? o->expectations(port->name) : NULL;
  const char *skip = bc_expectations_skip(ex, sc->id, method);
  if (skip) {
    set_outcome(&r, BC_SKIP, "skipped by expectations: %s", skip);
    goto record;
  }
  bc_audit_t au;
  bc_audit_begin(&au);
  if (bc_scenario_has_fault(sc, "wallclock")) {
    char tmpl[] = "/tmp/bc-faketime.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd >= 0) {
      if (write(fd, "+0\n", 3) != 3) { /* an empty file reads as no offset */
      }
      close(fd);
      r.faketime_path = bc_xstrdup(tmpl);
    }
  }
  bc_strv_t env = {0};
  char **envp = build_env(&r, &env);
  char *err = NULL;
  if (bc_driver_start(&r.drv, port->argv, envp, &err) < 0) {
    crash(&r, "%s", err);
    free(err);
  } else {
    if (!hello(&r)) {
      r.deadline = now(&r) + sc->timeout_s * 1000 * o->multiplier;
      if (!run_steps(&r, sc->steps, sc->nsteps) && !check_history(&r)) check_invariants(&r);
    }
    if (r.outcome < 0) r.outcome = BC_PASS; /* audit failures may still replace it */
    int before = r.outcome;
    if (before == BC_PASS) r.outcome = -1;
    teardown(&r, &au);
    if (r.outcome < 0) r.outcome = before;
    if (r.outcome == BC_FAIL || r.outcome == BC_CRASH || r.outcome == BC_TIMEOUT) {
      char *tail = bc_driver_stderr_tail(r.drv, 20);
      if (*tail) json_object_set_new(r.rec, "stderr", json_string(tail));
      free(tail);
    }
    bc_driver_free(&r.drv);
    bc_audit_reap();
  }
  bc_strv_free(&env);
  bc_audit_end(&au);
  if (r.faketime_path) unlink(r.faketime_path);
  free(r.faketime_path);
record:
  json_object_set_new(r.rec, "outcome", json_string(bc_outcome_name((bc_outcome_t)r.outcome)));
  json_object_set_new(r.rec, "duration_ms", json_integer((json_int_t)llround(bc_now_ms() - r.t0)));
  if (!json_object_get(r.rec, "message")) json_object_set_new(r.rec, "message", json_string(""));
  json_object_set_new(r.rec, "timeline", r.timeline);
  json_decref(r.events);
  json_decref(r.names);
  json_decref(r.procs);
  json_decref(r.marks);
  json_decref(r.pools);
  json_decref(r.rename);
  json_decref(r.hello);
  json_decref(r.reply);
  bc_history_free(&r.hist);
  return r.rec;
}

void bc_apply_expectations(json_t *rec, const bc_expectations_t *e) {
  const char *id = json_string_value(json_object_get(rec, "scenario"));
  const char *why =
      bc_expectations_known(e, id, json_string_value(json_object_get(rec, "start_method")));
  if (!why) return;
  int o = bc_outcome_parse(json_string_value(json_object_get(rec, "outcome")));
  if (o == BC_PASS) {
    json_object_set_new(rec, "outcome", json_string("xpass"));
    char *m = bc_asprintf("listed as a known failure but passed (%s)", why);
    json_object_set_new(rec, "message", json_string(m));
    free(m);
  } else if (o == BC_FAIL || o == BC_TIMEOUT || o == BC_CRASH) {
    json_object_set_new(rec, "outcome", json_string("xfail"));
    json_object_set_new(rec, "known_failure", json_string(why));
  }
}
