/* node.c: YAML (libyaml event API) to a position-keeping tree. Anchors and
 * aliases are refused: scenarios should read top to bottom. */
#include "node.h"

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

static bc_node_t *node_new(bc_node_kind_t kind, const yaml_mark_t *m) {
  bc_node_t *n = bc_xcalloc(1, sizeof *n);
  n->kind = kind;
  n->line = (int)m->line + 1;
  n->col = (int)m->column + 1;
  return n;
}

static void node_push(bc_node_t *n, bc_node_t *key, bc_node_t *item) {
  /* Grown one at a time: scenario nodes are small. */
  n->items = bc_xrealloc(n->items, (n->n + 1) * sizeof *n->items);
  if (n->kind == BC_MAP) n->keys = bc_xrealloc(n->keys, (n->n + 1) * sizeof *n->keys);
  if (n->kind == BC_MAP) n->keys[n->n] = key;
  n->items[n->n++] = item;
}

void bc_node_free(bc_node_t **np) {
  bc_node_t *n = *np;
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys) bc_node_free(&n->keys[i]);
    bc_node_free(&n->items[i]);
  }
  free(n->keys);
  free(n->items);
  free(n->str);
  free(n);
  *np = NULL;
}

typedef struct parser {
  yaml_parser_t p;
  char *err;
} parser_t;

static void set_err(parser_t *ps, const yaml_mark_t *m, const char *msg) {
  if (!ps->err) ps->err = bc_asprintf("%zu:%zu: error: %s", m->line + 1, m->column + 1, msg);
}

static bool next_event(parser_t *ps, yaml_event_t *ev) {
  if (yaml_parser_parse(&ps->p, ev)) return true;
  const yaml_mark_t *m = ps->p.problem_mark.line || ps->p.problem_mark.column
                             ? &ps->p.problem_mark
                             : &ps->p.context_mark;
  char *msg = bc_asprintf("expected valid YAML, got a syntax error (%s%s%s)",
                          ps->p.problem ? ps->p.problem : "unknown problem",
                          ps->p.context ? " " : "", ps->p.context ? ps->p.context : "");
  set_err(ps, m, msg);
  free(msg);
  return false;
}

/* Builds the node that starts with *ev (already parsed; consumed here). */
static bc_node_t *build(parser_t *ps, yaml_event_t *ev) {
  bc_node_t *n = NULL;
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    n = node_new(BC_SCALAR, &ev->start_mark);
    n->str = bc_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    yaml_event_delete(ev);
    return n;
  case YAML_ALIAS_EVENT:
    set_err(ps, &ev->start_mark, "expected a value, got an alias (anchors and aliases are not supported)");
    yaml_event_delete(ev);
    return NULL;
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT: {
    bool map = ev->type == YAML_MAPPING_START_EVENT;
    yaml_event_type_t end = map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
    n = node_new(map ? BC_MAP : BC_SEQ, &ev->start_mark);
    yaml_event_delete(ev);
    for (;;) {
      yaml_event_t e;
      if (!next_event(ps, &e)) goto fail;
      if (e.type == end) {
        yaml_event_delete(&e);
        return n;
      }
      bc_node_t *key = NULL;
      if (map) {
        yaml_mark_t km = e.start_mark;
        key = build(ps, &e);
        if (!key) goto fail;
        if (key->kind != BC_SCALAR) {
          set_err(ps, &km, "expected a scalar key, got a collection");
          bc_node_free(&key);
          goto fail;
        }
        if (bc_node_get(n, key->str)) {
          char *msg = bc_asprintf("expected unique keys, got '%s' twice", key->str);
          set_err(ps, &km, msg);
          free(msg);
          bc_node_free(&key);
          goto fail;
        }
        if (!next_event(ps, &e)) {
          bc_node_free(&key);
          goto fail;
        }
      }
      bc_node_t *item = build(ps, &e);
      if (!item) {
        bc_node_free(&key);
        goto fail;
      }
      node_push(n, key, item);
    }
  }
  default:
    set_err(ps, &ev->start_mark, "expected a YAML node, got an unexpected event");
    yaml_event_delete(ev);
    return NULL;
  }
fail:
  bc_node_free(&n);
  return NULL;
}

bc_node_t *bc_node_parse(const char *text, size_t len, char **err) {
  parser_t ps = {0};
  bc_node_t *root = NULL;
  *err = NULL;
  if (!yaml_parser_initialize(&ps.p)) {
    *err = bc_xstrdup("1:1: error: expected a YAML parser, got out of memory");
    return NULL;
  }
  yaml_parser_set_input_string(&ps.p, (const unsigned char *)text, len);
  yaml_event_t ev;
  bool ok = true, ended = false;
  while (ok && !root) {
    if (!next_event(&ps, &ev)) break;
    switch (ev.type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_START_EVENT:
      yaml_event_delete(&ev);
      break;
    case YAML_STREAM_END_EVENT: {
      yaml_mark_t m = {0, 0, 0};
      yaml_event_delete(&ev);
      root = node_new(BC_MAP, &m); /* empty file */
      ended = true; /* libyaml yields no events after the stream's end */
      break;
    }
    default:
      root = build(&ps, &ev);
      ok = root != NULL;
    }
  }
  if (root && !ps.err && !ended) {
    /* Drain the rest of the stream so later syntax errors are reported. */
    for (;;) {
      if (!next_event(&ps, &ev)) break;
      yaml_event_type_t t = ev.type;
      if (t == YAML_DOCUMENT_START_EVENT && !ev.data.document_start.implicit) {
        set_err(&ps, &ev.start_mark, "expected one YAML document, got a second one");
        yaml_event_delete(&ev);
        break;
      }
      yaml_event_delete(&ev);
      if (t == YAML_STREAM_END_EVENT || t == YAML_NO_EVENT) break;
    }
  }
  yaml_parser_delete(&ps.p);
  if (ps.err) {
    bc_node_free(&root);
    *err = ps.err;
    return NULL;
  }
  if (!root) *err = bc_xstrdup("1:1: error: expected a YAML document, got nothing");
  return root;
}

bc_node_t *bc_node_get(const bc_node_t *map, const char *key) {
  if (!map || map->kind != BC_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->keys[i]->str, key) == 0) return map->items[i];
  return NULL;
}

bc_node_t *bc_node_key(const bc_node_t *map, const char *key) {
  if (!map || map->kind != BC_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->keys[i]->str, key) == 0) return map->keys[i];
  return NULL;
}

bool bc_node_is_null(const bc_node_t *n) {
  return n && n->kind == BC_SCALAR && n->plain &&
         (!*n->str || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
          strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
}

static bool match(const char *re, const char *s) {
  regex_t r;
  if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB)) return false;
  bool m = regexec(&r, s, 0, NULL, 0) == 0;
  regfree(&r);
  return m;
}

const char *bc_node_kind_name(const bc_node_t *n) {
  if (!n) return "nothing";
  if (n->kind == BC_MAP) return "a map";
  if (n->kind == BC_SEQ) return "a list";
  json_t *j = bc_node_to_json(n);
  const char *r = "a string";
  if (json_is_null(j)) r = "null";
  else if (json_is_boolean(j)) r = "a boolean";
  else if (json_is_integer(j)) r = "an integer";
  else if (json_is_real(j)) r = "a number";
  json_decref(j);
  return r;
}

json_t *bc_node_to_json(const bc_node_t *n) {
  if (!n) return json_null();
  switch (n->kind) {
  case BC_MAP: {
    json_t *o = json_object();
    for (size_t i = 0; i < n->n; i++)
      json_object_set_new(o, n->keys[i]->str, bc_node_to_json(n->items[i]));
    return o;
  }
  case BC_SEQ: {
    json_t *a = json_array();
    for (size_t i = 0; i < n->n; i++) json_array_append_new(a, bc_node_to_json(n->items[i]));
    return a;
  }
  case BC_SCALAR:
    break;
  }
  const char *s = n->str;
  if (!n->plain) return json_string(s);
  if (bc_node_is_null(n)) return json_null();
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return json_true();
  if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return json_false();
  if (match("^[-+]?[0-9]+$", s)) {
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (!errno) return json_integer(v);
    return json_real(strtod(s, NULL));
  }
  if (match("^[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$", s))
    return json_real(strtod(s, NULL));
  return json_string(s);
}
