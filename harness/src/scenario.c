/* scenario.c: scenario loader and validator. Every rule of
 * docs/scenario-format.md that can be checked without a driver is checked
 * here, with the line:col of the offending node. */
#include "scenario.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BC_SOURCE_DIR
#define BC_SOURCE_DIR "."
#endif

const char *bc_source_dir(void) {
  const char *e = getenv("BC_SOURCE_DIR");
  return e && *e ? e : BC_SOURCE_DIR;
}

void bc_diag_at(bc_diag_t *d, int line, int col, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = bc_vasprintf(fmt, ap);
  va_end(ap);
  bc_strv_push_owned(&d->errors, bc_asprintf("%s:%d:%d: error: %s", d->path, line, col, msg));
  free(msg);
}

#define DIAG(d, node, ...) bc_diag_at((d), (node)->line, (node)->col, __VA_ARGS__)

/* "a string 'x'" for messages. */
static char *got(const bc_node_t *n) {
  if (!n) return bc_xstrdup("nothing");
  if (n->kind == BC_SCALAR) {
    const char *k = bc_node_kind_name(n);
    if (strcmp(k, "null") == 0) return bc_xstrdup("null");
    return bc_asprintf("%s '%s'", k, n->str);
  }
  return bc_xstrdup(bc_node_kind_name(n));
}

static void expected(bc_diag_t *d, const bc_node_t *n, const char *what) {
  char *g = got(n);
  DIAG(d, n, "expected %s, got %s", what, g);
  free(g);
}

static bool is_string(const bc_node_t *n) {
  if (!n || n->kind != BC_SCALAR) return false;
  json_t *j = bc_node_to_json(n);
  bool s = json_is_string(j);
  json_decref(j);
  return s;
}

static bool want_string(bc_diag_t *d, const bc_node_t *n, const char *what) {
  if (is_string(n) && *n->str) return true;
  expected(d, n, what);
  return false;
}

static bool want_int(bc_diag_t *d, const bc_node_t *n, long long min, long long *out) {
  if (n && n->kind == BC_SCALAR) {
    json_t *j = bc_node_to_json(n);
    bool ok = json_is_integer(j) && json_integer_value(j) >= min;
    if (ok && out) *out = json_integer_value(j);
    json_decref(j);
    if (ok) return true;
  }
  char *what = bc_asprintf("an integer >= %lld", min);
  expected(d, n, what);
  free(what);
  return false;
}

/* Durations: "250ms", "1.5s", "2m", or a number of seconds. signed_ allows a
 * leading minus (wall_jump). */
static bool want_duration(bc_diag_t *d, const bc_node_t *n, bool signed_, double *out) {
  if (n && n->kind == BC_SCALAR && !bc_node_is_null(n)) {
    const char *s = n->str;
    bool neg = signed_ && s[0] == '-';
    double v;
    if (bc_parse_duration(neg ? s + 1 : s, &v) == 0) {
      if (out) *out = neg ? -v : v;
      return true;
    }
  }
  expected(d, n, "a duration (e.g. 250ms, 1.5s, 2m or a number of seconds)");
  return false;
}

static bool want_kind(bc_diag_t *d, const bc_node_t *n, bc_node_kind_t kind) {
  if (n && n->kind == kind) return true;
  expected(d, n, kind == BC_MAP ? "a map" : kind == BC_SEQ ? "a list" : "a scalar");
  return false;
}

static void want_in(bc_diag_t *d, const bc_node_t *n, const char *const *list, const char *what) {
  if (!want_string(d, n, what)) return;
  if (bc_in_list(list, n->str)) return;
  char *all = bc_list_join(list);
  char *w = bc_asprintf("%s (%s)", what, all);
  expected(d, n, w);
  free(w);
  free(all);
}

/* A list of strings, each checked by check(); appended to out. */
static void string_list(bc_diag_t *d, const bc_node_t *n, bc_strv_t *out,
                        const char *const *allowed, const char *what) {
  if (!want_kind(d, n, BC_SEQ)) return;
  for (size_t i = 0; i < n->n; i++) {
    const bc_node_t *it = n->items[i];
    if (allowed) want_in(d, it, allowed, what);
    else if (!want_string(d, it, what)) continue;
    if (it->kind == BC_SCALAR) bc_strv_push(out, it->str);
  }
}

static bool valid_regex(const char *re) {
  regex_t r;
  if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB)) return false;
  regfree(&r);
  return true;
}

/* expect: {value} | {ok} | {error[, message]} | {error_in[, message]} */
static void check_expect(bc_diag_t *d, const bc_node_t *n) {
  if (!want_kind(d, n, BC_MAP)) return;
  bool has_value = false, has_error = false;
  for (size_t i = 0; i < n->n; i++) {
    const char *k = n->keys[i]->str;
    const bc_node_t *v = n->items[i];
    if (strcmp(k, "value") == 0) {
      has_value = true;
    } else if (strcmp(k, "ok") == 0) {
      json_t *j = bc_node_to_json(v);
      if (!json_is_boolean(j)) expected(d, v, "true or false");
      json_decref(j);
    } else if (strcmp(k, "error") == 0) {
      has_error = true;
      want_string(d, v, "an exception type name");
    } else if (strcmp(k, "error_in") == 0) {
      has_error = true;
      bc_strv_t tmp = {0};
      string_list(d, v, &tmp, NULL, "an exception type name");
      bc_strv_free(&tmp);
    } else if (strcmp(k, "message") == 0) {
      if (want_string(d, v, "a regular expression") && !valid_regex(v->str))
        expected(d, v, "a valid POSIX extended regular expression");
    } else {
      char *w = bc_asprintf("an expect key (value, ok, error, error_in, message), got '%s'", k);
      DIAG(d, n->keys[i], "expected %s", w);
      free(w);
    }
  }
  if (has_value && has_error)
    DIAG(d, n, "expected either value or error in one expect, got both");
  if (bc_node_get(n, "message") && !has_error)
    DIAG(d, n, "expected error or error_in next to message, got message alone");
}

/* Protocol arguments: check catalogue names, convert durations to seconds. */
static void check_proto_value(bc_diag_t *d, const char *key, const bc_node_t *n, json_t **out,
                              const char *op) {
  if (n->kind == BC_MAP) {
    json_t *o = json_object();
    for (size_t i = 0; i < n->n; i++) {
      const char *k = n->keys[i]->str;
      json_t *v = NULL;
      /* Values under these keys are data, not arguments. */
      if (!strcmp(k, "value") || !strcmp(k, "values") || !strcmp(k, "data") ||
          !strcmp(k, "init"))
        v = bc_node_to_json(n->items[i]);
      else
        check_proto_value(d, k, n->items[i], &v, op);
      json_object_set_new(o, k, v);
    }
    *out = o;
    return;
  }
  if (n->kind == BC_SEQ) {
    json_t *a = json_array();
    for (size_t i = 0; i < n->n; i++) {
      json_t *v = NULL;
      check_proto_value(d, NULL, n->items[i], &v, op);
      json_array_append_new(a, v);
    }
    *out = a;
    return;
  }
  *out = bc_node_to_json(n);
  if (!key) return;
  if (bc_in_list(bc_duration_keys, key) && json_is_string(*out)) {
    /* Signed: clock.jump and clock.worker_offset take negative seconds. */
    double s;
    if (want_duration(d, n, true, &s)) {
      json_decref(*out);
      *out = json_real(s);
    }
  } else if (strcmp(key, "task") == 0) {
    want_in(d, n, bc_tasks, "a task from the catalogue");
  } else if (strcmp(key, "target") == 0 && strcmp(op, "process.start") == 0) {
    want_in(d, n, bc_targets, "a process target from the catalogue");
  } else if (strcmp(key, "signal") == 0 && json_is_string(*out)) {
    if (bc_signal_number(n->str) < 0) expected(d, n, "a signal name such as SIGKILL");
  }
}

static bool arg_allowed(const bc_op_t *op, const char *arg) {
  const char *p = op->args;
  size_t n = strlen(arg);
  while (p && *p) {
    const char *e = strchr(p, ' ');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, arg, n) == 0) return true;
    if (len == 1 && *p == '*') return true;
    p = e ? e + 1 : NULL;
  }
  return false;
}

static void load_steps(bc_diag_t *d, const bc_scenario_t *sc, const bc_node_t *n,
                       bc_step_t **steps, size_t *nsteps);

/* Harness op arguments: typed by argument name. */
static void check_harness_args(bc_diag_t *d, const bc_scenario_t *sc, const bc_op_t *op,
                               const bc_node_t *args, bc_step_t *st) {
  json_t *o = json_object();
  for (size_t i = 0; i < args->n; i++) {
    const char *k = args->keys[i]->str;
    const bc_node_t *v = args->items[i];
    json_t *j = NULL;
    double dur;
    long long iv;
    if (!arg_allowed(op, k)) {
      char *w = bc_asprintf("an argument of %s (%s), got '%s'", op->name, op->args, k);
      DIAG(d, args->keys[i], "expected %s", w);
      free(w);
      continue;
    }
    if (!strcmp(k, "expect") && op->hop == BC_H_GET_ALL) {
      check_expect(d, v);
      json_decref(st->expect);
      st->expect = bc_node_to_json(v);
      continue;
    }
    if (!strcmp(k, "expect_any") && op->hop != BC_H_GET_ALL) {
      DIAG(d, args->keys[i], "expected expect_any only on get_all, got it on %s", op->name);
      continue;
    }
    if (!strcmp(k, "expect_any")) {
      if (want_kind(d, v, BC_SEQ))
        for (size_t x = 0; x < v->n; x++) check_expect(d, v->items[x]);
      st->expect_any = bc_node_to_json(v);
      continue;
    }
    if (!strcmp(k, "steps")) {
      load_steps(d, sc, v, &st->steps, &st->nsteps);
      continue;
    }
    if (!strcmp(k, "event")) {
      want_in(d, v, bc_events, "an event name");
    } else if (!strcmp(k, "timeout") || !strcmp(k, "for") || !strcmp(k, "interval") ||
               !strcmp(k, "time_limit") || !strcmp(k, "soft_time_limit") ||
               (!strcmp(k, "seconds") && op->hop == BC_H_SLEEP) ||
               ((!strcmp(k, "min") || !strcmp(k, "max")) && op->hop == BC_H_EXPECT_ELAPSED)) {
      if (want_duration(d, v, false, &dur)) j = json_real(dur);
    } else if (!strcmp(k, "seconds")) { /* wall_jump */
      if (want_duration(d, v, true, &dur)) j = json_real(dur);
    } else if (!strcmp(k, "count") || !strcmp(k, "min") || !strcmp(k, "max") ||
               !strcmp(k, "times") || !strcmp(k, "kills") || !strcmp(k, "seed")) {
      if (want_int(d, v, op->hop == BC_H_REPEAT || op->hop == BC_H_WAIT_EVENT ? 1 : 0, &iv))
        j = json_integer(iv);
    } else if (!strcmp(k, "signal")) {
      if (want_string(d, v, "a signal name such as SIGKILL") && bc_signal_number(v->str) < 0)
        expected(d, v, "a signal name such as SIGKILL");
    } else if (!strcmp(k, "role")) {
      static const char *const roles[] = {"idle", "busy", "any", NULL};
      want_in(d, v, roles, "a worker role");
    } else if (!strcmp(k, "task")) {
      want_in(d, v, bc_tasks, "a task from the catalogue");
    } else if (!strcmp(k, "args")) {
      if (!bc_node_is_null(v) && want_kind(d, v, BC_MAP))
        check_proto_value(d, NULL, v, &j, "submit_many");
    } else if (!strcmp(k, "pid")) {
      if (v->kind != BC_SCALAR) expected(d, v, "a pid or a name given with as");
    } else if (!strcmp(k, "job") || !strcmp(k, "pool")) {
      if (v->kind != BC_SCALAR) expected(d, v, "a handle name");
    } else if (arg_allowed(op, k) && !strstr(op->args, k)) {
      /* An event match field: any value (maps match as subsets). */
    } else {
      want_string(d, v, "a name");
    }
    json_object_set_new(o, k, j ? j : bc_node_to_json(v));
  }
  if (st->expect && st->expect_any)
    bc_diag_at(d, args->line, args->col, "expected either expect or expect_any, got both");
  /* Required arguments. */
  char *req = bc_xstrdup(op->required ? op->required : "");
  for (char *save, *r = strtok_r(req, " ", &save); r; r = strtok_r(NULL, " ", &save))
    if (!bc_node_get(args, r))
      bc_diag_at(d, args->line, args->col, "expected argument '%s' of %s, got none", r, op->name);
  free(req);
  if (op->hop == BC_H_WALL_JUMP && !bc_scenario_has_fault(sc, "wallclock"))
    bc_diag_at(d, args->line, args->col,
               "expected 'wallclock' in faults for wall_jump, got faults without it");
  if ((op->hop == BC_H_KILL_WORKER || op->hop == BC_H_STOP_WORKER ||
       op->hop == BC_H_CONT_WORKER) &&
      !!bc_node_get(args, "job") + !!bc_node_get(args, "role") + !!bc_node_get(args, "pid") > 1)
    bc_diag_at(d, args->line, args->col, "expected one of job, role, pid, got several");
  st->args = o;
}

static void load_step(bc_diag_t *d, const bc_scenario_t *sc, const bc_node_t *n, bc_step_t *st) {
  st->line = n->line;
  st->col = n->col;
  if (n->kind != BC_MAP || n->n != 1) {
    expected(d, n, "a step (a map with exactly one key: the operation)");
    return;
  }
  const bc_node_t *key = n->keys[0];
  const bc_node_t *val = n->items[0];
  st->op = bc_op_find(key->str);
  if (!st->op) {
    DIAG(d, key, "expected a step op (INTERPRETING.md §6 or a harness op), got unknown op '%s'",
         key->str);
    return;
  }
  /* A scalar stands for the op's shorthand argument (mark: killed). */
  bc_node_t *tmp = NULL;
  const bc_node_t *args = val;
  if (bc_node_is_null(val)) {
    tmp = bc_xcalloc(1, sizeof *tmp);
    tmp->kind = BC_MAP;
    tmp->line = val->line;
    tmp->col = val->col;
    args = tmp;
  } else if (val->kind == BC_SCALAR && st->op->shorthand) {
    tmp = bc_xcalloc(1, sizeof *tmp);
    tmp->kind = BC_MAP;
    tmp->line = val->line;
    tmp->col = val->col;
    tmp->keys = bc_xcalloc(1, sizeof *tmp->keys);
    tmp->items = bc_xcalloc(1, sizeof *tmp->items);
    tmp->keys[0] = bc_xcalloc(1, sizeof **tmp->keys);
    tmp->keys[0]->kind = BC_SCALAR;
    tmp->keys[0]->str = bc_xstrdup(st->op->shorthand);
    tmp->keys[0]->line = val->line;
    tmp->keys[0]->col = val->col;
    tmp->items[0] = (bc_node_t *)val; /* borrowed: unlinked before freeing */
    tmp->n = 1;
    args = tmp;
  } else if (val->kind != BC_MAP) {
    char *w = bc_asprintf("a map of arguments for %s", st->op->name);
    expected(d, val, w);
    free(w);
    return;
  }
  if (st->op->hop == BC_H_PROTOCOL) {
    json_t *o = json_object();
    for (size_t i = 0; i < args->n; i++) {
      const char *k = args->keys[i]->str;
      const bc_node_t *v = args->items[i];
      if (strcmp(k, "expect") == 0) {
        check_expect(d, v);
        st->expect = bc_node_to_json(v);
      } else if (strcmp(k, "expect_result") == 0) {
        if (want_kind(d, v, BC_MAP)) st->expect_result = bc_node_to_json(v);
      } else if (strcmp(k, "expect_min") == 0) {
        if (want_kind(d, v, BC_MAP)) {
          st->expect_min = bc_node_to_json(v);
          const char *f;
          json_t *x;
          json_object_foreach(st->expect_min, f, x) if (!json_is_number(x))
              DIAG(d, v, "expected a number for expect_min.%s", f);
        }
      } else if (strcmp(k, "expect_any") == 0) {
        /* Harness-only: a driver would silently ignore it and the step
         * would check nothing. */
        DIAG(d, args->keys[i], "expected expect_any only on get_all, got it on %s",
             st->op->name);
      } else {
        json_t *j = NULL;
        check_proto_value(d, k, v, &j, st->op->name);
        json_object_set_new(o, k, j);
      }
    }
    st->args = o;
  } else {
    check_harness_args(d, sc, st->op, args, st);
  }
  if (tmp) {
    if (tmp->items && tmp->items[0] == val) tmp->items[0] = NULL;
    bc_node_free(&tmp);
  }
}

static void load_steps(bc_diag_t *d, const bc_scenario_t *sc, const bc_node_t *n,
                       bc_step_t **steps, size_t *nsteps) {
  if (!want_kind(d, n, BC_SEQ)) return;
  if (n->n == 0) expected(d, n, "at least one step");
  *steps = bc_xcalloc(n->n, sizeof **steps);
  *nsteps = n->n;
  for (size_t i = 0; i < n->n; i++) load_step(d, sc, n->items[i], &(*steps)[i]);
}

static void free_steps(bc_step_t *steps, size_t n) {
  for (size_t i = 0; i < n; i++) {
    json_decref(steps[i].args);
    json_decref(steps[i].expect);
    json_decref(steps[i].expect_result);
    json_decref(steps[i].expect_min);
    json_decref(steps[i].expect_any);
    free_steps(steps[i].steps, steps[i].nsteps);
  }
  free(steps);
}

void bc_scenario_free(bc_scenario_t **scp) {
  bc_scenario_t *sc = *scp;
  if (!sc) return;
  free(sc->path);
  free(sc->id);
  free(sc->description);
  free(sc->ref);
  bc_strv_free(&sc->features);
  bc_strv_free(&sc->flags);
  bc_strv_free(&sc->faults);
  bc_strv_free(&sc->start_methods);
  bc_strv_free(&sc->invariants);
  bc_strv_free(&sc->env);
  free_steps(sc->steps, sc->nsteps);
  free(sc);
  *scp = NULL;
}

bool bc_scenario_has_flag(const bc_scenario_t *sc, const char *flag) {
  return bc_strv_has(&sc->flags, flag);
}

bool bc_scenario_has_fault(const bc_scenario_t *sc, const char *fault) {
  return bc_strv_has(&sc->faults, fault);
}

char *bc_scenario_id(const char *path) {
  char *abs = realpath(path, NULL);
  const char *p = abs ? abs : path;
  const char *best = NULL;
  for (const char *s = p; (s = strstr(s, "scenarios/")); s++)
    if (s == p || s[-1] == '/') best = s + strlen("scenarios/");
  char *id = bc_xstrdup(best ? best : path);
  free(abs);
  return id;
}

bc_scenario_t *bc_scenario_load(const char *path, const bc_features_t *features, bc_diag_t *d) {
  size_t before = d->errors.n;
  size_t len;
  char *text = bc_read_file(path, &len);
  if (!text) {
    bc_diag_at(d, 1, 1, "expected a readable file, got %s", strerror(errno));
    return NULL;
  }
  char *err = NULL;
  bc_node_t *root = bc_node_parse(text, len, &err);
  free(text);
  if (!root) {
    bc_strv_push_owned(&d->errors, bc_asprintf("%s:%s", path, err));
    free(err);
    return NULL;
  }
  bc_scenario_t *sc = bc_xcalloc(1, sizeof *sc);
  sc->path = bc_xstrdup(path);
  sc->id = bc_scenario_id(path);
  sc->timeout_s = 10;
  if (!want_kind(d, root, BC_MAP)) goto done;
  for (size_t i = 0; i < root->n; i++)
    if (!bc_in_list(bc_top_keys, root->keys[i]->str)) {
      char *all = bc_list_join(bc_top_keys);
      DIAG(d, root->keys[i], "expected a top-level key (%s), got unknown key '%s'", all,
           root->keys[i]->str);
      free(all);
    }
  for (const char *const *k = bc_required_top_keys; *k; k++)
    if (!bc_node_get(root, *k))
      bc_diag_at(d, root->line, root->col, "expected required key '%s', got none", *k);
  const bc_node_t *n;
  if ((n = bc_node_get(root, "description")) && want_string(d, n, "a one-sentence string")) {
    sc->description = bc_xstrdup(n->str);
    sc->desc_line = n->line;
    sc->desc_col = n->col;
  }
  if ((n = bc_node_get(root, "ref")) && want_string(d, n, "a reference string"))
    sc->ref = bc_xstrdup(n->str);
  /* Faults before steps: wall_jump checks them. */
  if ((n = bc_node_get(root, "faults")))
    string_list(d, n, &sc->faults, bc_fault_classes, "a fault class");
  if ((n = bc_node_get(root, "flags"))) string_list(d, n, &sc->flags, bc_flags, "a flag");
  if ((n = bc_node_get(root, "invariants")))
    string_list(d, n, &sc->invariants, bc_invariants, "an invariant");
  if ((n = bc_node_get(root, "start_methods")))
    string_list(d, n, &sc->start_methods, NULL, "a start method name");
  if ((n = bc_node_get(root, "features"))) {
    string_list(d, n, &sc->features, NULL, "a feature name");
    if (features && n->kind == BC_SEQ)
      for (size_t i = 0; i < n->n; i++) {
        const bc_node_t *it = n->items[i];
        if (it->kind == BC_SCALAR && !bc_strv_has(&features->names, it->str))
          DIAG(d, it, "expected a feature listed in %s, got unknown feature '%s'",
               features->path, it->str);
      }
  }
  if ((n = bc_node_get(root, "timeout"))) {
    double s;
    if (want_duration(d, n, false, &s)) {
      if (s <= 0) expected(d, n, "a positive duration");
      sc->timeout_s = s;
    }
  }
  if ((n = bc_node_get(root, "env")) && want_kind(d, n, BC_MAP))
    for (size_t i = 0; i < n->n; i++) {
      const bc_node_t *v = n->items[i];
      if (v->kind != BC_SCALAR) {
        expected(d, v, "a scalar environment value");
        continue;
      }
      if (!*n->keys[i]->str || strchr(n->keys[i]->str, '='))
        expected(d, n->keys[i], "an environment variable name");
      bc_strv_push_owned(&sc->env, bc_asprintf("%s=%s", n->keys[i]->str, v->str));
    }
  if ((n = bc_node_get(root, "steps"))) load_steps(d, sc, n, &sc->steps, &sc->nsteps);
done:
  bc_node_free(&root);
  if (d->errors.n != before) bc_scenario_free(&sc);
  return sc;
}

/* features.txt */

int bc_features_load(bc_features_t *f, const char *path, bc_diag_t *d) {
  memset(f, 0, sizeof *f);
  f->path = bc_xstrdup(path);
  size_t len;
  char *text = bc_read_file(path, &len);
  if (!text) {
    bc_diag_at(d, 1, 1, "expected a readable features file %s, got %s", path, strerror(errno));
    return -errno;
  }
  int line = 0;
  for (char *save, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    line++;
    while (*l == ' ' || *l == '\t') l++;
    if (!*l || *l == '#') continue;
    size_t n = strcspn(l, " \t#");
    bc_strv_push_owned(&f->names, bc_xstrndup(l, n));
  }
  free(text);
  (void)line;
  f->ok = true;
  return 0;
}

void bc_features_free(bc_features_t *f) {
  free(f->path);
  f->path = NULL;
  bc_strv_free(&f->names);
}

static bool readable(const char *p) { return access(p, R_OK) == 0; }

char *bc_features_path_for(const char *scenario_path) {
  char *dir = realpath(scenario_path, NULL);
  if (dir) {
    for (char *slash; (slash = strrchr(dir, '/')) && slash != dir;) {
      *slash = '\0';
      const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
      char *c = strcmp(base, "scenarios") == 0 ? bc_asprintf("%s/features.txt", dir)
                                               : bc_asprintf("%s/scenarios/features.txt", dir);
      if (readable(c)) {
        free(dir);
        return c;
      }
      free(c);
    }
    free(dir);
  }
  return bc_asprintf("%s/scenarios/features.txt", bc_source_dir());
}
