/* proto.c: the driver protocol's line level (see proto.h). The messages
 * are what a run records as its crash reason. */
#include "proto.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

char *bc_proto_short_json(const json_t *v, size_t max) {
  if (!v) return bc_xstrdup("nothing");
  /* ASCII only: cutting it anywhere still leaves valid UTF-8. */
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
  if (!s) return bc_xstrdup("?");
  if (strlen(s) > max) {
    char *c = bc_asprintf("%.*s... (%zu bytes)", (int)max, s, strlen(s));
    free(s);
    return c;
  }
  char *c = bc_xstrdup(s);
  free(s);
  return c;
}

/* The start of an offending line for a message: at most 120 bytes, each
 * outside printable ASCII shown as '?' (the message goes into JSON
 * records, which take only UTF-8; a driver may print anything). */
static char *excerpt(const char *line) {
  char *e = bc_asprintf("%.120s", line);
  for (char *c = e; *c; c++)
    if (*c < 0x20 || *c > 0x7e) *c = '?';
  return e;
}

int bc_proto_hello(const char *line, json_t **hello, char **why) {
  *hello = NULL;
  *why = NULL;
  json_t *m = json_loads(line, 0, NULL);
  json_t *h = json_object_get(m, "hello");
  if (!json_is_object(h)) {
    json_decref(m);
    char *e = excerpt(line);
    *why = bc_asprintf("protocol violation: expected the hello as the first line, got '%s'", e);
    free(e);
    return -1;
  }
  json_t *v = json_object_get(m, "v"), *proto = json_object_get(h, "protocol");
  if (!json_is_integer(v) || json_integer_value(v) != BC_PROTOCOL || !json_is_integer(proto) ||
      json_integer_value(proto) != BC_PROTOCOL) {
    char *g = bc_proto_short_json(json_is_integer(proto) ? proto : v, 40);
    json_decref(m);
    *why = bc_asprintf("driver speaks protocol %s; this harness knows protocol %d only", g,
                       BC_PROTOCOL);
    free(g);
    return -1;
  }
  *hello = json_incref(h);
  json_decref(m);
  return 0;
}

int bc_proto_line(const char *line, long pending_id, json_t **msg, char **why) {
  *msg = NULL;
  *why = NULL;
  json_error_t jerr;
  json_t *m = json_loads(line, 0, &jerr);
  if (!m || !json_is_object(m)) {
    json_decref(m);
    char *e = excerpt(line);
    *why = bc_asprintf("protocol violation: expected a JSON object line on stdout, got '%s'", e);
    free(e);
    return -1;
  }
  json_t *v = json_object_get(m, "v");
  if (!json_is_integer(v) || json_integer_value(v) != BC_PROTOCOL) {
    char *g = bc_proto_short_json(v, 40);
    json_decref(m);
    *why = bc_asprintf("protocol violation: expected \"v\":%d in every message, got %s",
                       BC_PROTOCOL, g);
    free(g);
    return -1;
  }
  json_t *id = json_object_get(m, "id");
  if (json_is_string(json_object_get(m, "event"))) {
    *msg = m;
    return BC_LINE_EVENT;
  }
  if (id) {
    if (!json_is_integer(id) || json_integer_value(id) != pending_id) {
      char *g = bc_proto_short_json(id, 40);
      json_decref(m);
      *why = bc_asprintf("protocol violation: reply to unknown id %s", g);
      free(g);
      return -1;
    }
    *msg = m;
    return BC_LINE_REPLY;
  }
  if (json_object_get(m, "hello")) {
    json_decref(m);
    *why = bc_xstrdup("protocol violation: a second hello");
    return -1;
  }
  json_decref(m);
  char *e = excerpt(line);
  *why = bc_asprintf("protocol violation: expected a reply, an event or the hello, got '%s'", e);
  free(e);
  return -1;
}

int bc_proto_check_reply(json_t *m) {
  json_t *ok = json_object_get(m, "ok");
  json_t *err = json_object_get(m, "error");
  json_t *res = json_object_get(m, "result");
  if (!json_is_boolean(ok) ||
      (!json_is_true(ok) &&
       !(json_is_object(err) && json_is_string(json_object_get(err, "type")))) ||
      (json_is_true(ok) && res && !json_is_object(res)))
    return -1;
  if (!res && json_is_true(ok)) json_object_set_new(m, "result", json_object());
  return 0;
}
