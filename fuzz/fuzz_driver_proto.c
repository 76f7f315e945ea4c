/* fuzz_driver_proto.c: billiard-conform's driver-protocol line level
 * (harness/src/proto.c) on any bytes, taken as a driver's whole stdout.
 *
 * Lines split at '\n' as harness/src/driver.c splits them (a NUL ends the
 * C string; a last line without '\n' still counts). The first line goes
 * through bc_proto_hello; every later one through bc_proto_line with the
 * id of the command the harness would be waiting for (1, then one more
 * after each accepted reply), each reply through bc_proto_check_reply, as
 * runner.c does. Any input must be accepted or rejected with a reason:
 * never a crash, leak, hang or undefined behaviour; an accepted message
 * must have the shape the runner relies on (checked with abort()). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static void check(int ok) {
  if (!ok) abort();
}

/* A rejection's reason goes into the run's JSON record: it must be a
 * string jansson accepts (UTF-8), or the record loses it. */
static void check_why(const char *why) {
  check(why && *why);
  json_t *s = json_string(why);
  check(s != NULL);
  json_decref(s);
}

/* One line; returns 0 to go on, 1 when the runner would stop the run. */
static int one_line(const char *line, int first, long *pending) {
  char *why = NULL;
  if (first) {
    json_t *h = NULL;
    int rc = bc_proto_hello(line, &h, &why);
    if (rc == 0) check(json_is_object(h) && !why);
    else check(!h), check_why(why);
    json_decref(h);
    free(why);
    return rc != 0;
  }
  json_t *m = NULL;
  int kind = bc_proto_line(line, *pending, &m, &why);
  if (kind < 0) {
    check(!m);
    check_why(why);
    free(why);
    return 1;
  }
  check(!why && json_is_object(m));
  json_t *v = json_object_get(m, "v");
  check(json_is_integer(v) && json_integer_value(v) == BC_PROTOCOL);
  if (kind == BC_LINE_EVENT) {
    check(json_is_string(json_object_get(m, "event")));
    char *s = bc_proto_short_json(json_object_get(m, "value"), 80);
    check(s != NULL);
    free(s);
  } else {
    check(kind == BC_LINE_REPLY);
    json_t *id = json_object_get(m, "id");
    check(json_is_integer(id) && json_integer_value(id) == *pending);
    if (bc_proto_check_reply(m) == 0) {
      json_t *ok = json_object_get(m, "ok");
      check(json_is_boolean(ok));
      if (json_is_true(ok)) check(json_is_object(json_object_get(m, "result")));
      else check(json_is_string(json_object_get(json_object_get(m, "error"), "type")));
      ++*pending;
    } else {
      json_decref(m);
      return 1;
    }
  }
  json_decref(m);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long pending = 1;
  size_t at = 0;
  int first = 1;
  while (at < size) {
    const uint8_t *nl = memchr(data + at, '\n', size - at);
    size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
    char *line = malloc(len + 1);
    if (!line) return 0;
    memcpy(line, data + at, len);
    line[len] = '\0';
    int stop = one_line(line, first, &pending);
    free(line);
    if (stop) break;
    first = 0;
    at += len + 1;
  }
  return 0;
}
