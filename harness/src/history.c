/* history.c: per-job resolution history. */
#include "history.h"

#include <string.h>

void bc_history_init(bc_history_t *h) {
  h->jobs = json_object();
  h->order = json_array();
}

void bc_history_free(bc_history_t *h) {
  json_decref(h->jobs);
  json_decref(h->order);
  h->jobs = h->order = NULL;
}

static json_t *job(bc_history_t *h, const char *name) {
  json_t *j = json_object_get(h->jobs, name);
  if (!j) {
    j = json_pack("{s:i, s:n}", "ready", 0, "answer");
    json_object_set_new(h->jobs, name, j);
    json_array_append_new(h->order, json_string(name));
  }
  return j;
}

void bc_history_submit(bc_history_t *h, const char *name) { job(h, name); }

void bc_history_ready(bc_history_t *h, const char *name) {
  json_t *j = job(h, name);
  json_object_set_new(j, "ready", json_integer(json_integer_value(json_object_get(j, "ready")) + 1));
}

int bc_history_answer(bc_history_t *h, const char *name, const char *answer, char **prev) {
  json_t *j = job(h, name);
  const char *a = json_string_value(json_object_get(j, "answer"));
  if (!a) {
    json_object_set_new(j, "answer", json_string(answer));
    return 0;
  }
  if (strcmp(a, answer) == 0) return 0;
  *prev = (char *)a;
  return -1;
}

size_t bc_history_count(const bc_history_t *h) { return json_array_size(h->order); }

const char *bc_history_job(const bc_history_t *h, size_t i) {
  return json_string_value(json_array_get(h->order, i));
}

int bc_history_ready_count(const bc_history_t *h, const char *name) {
  return (int)json_integer_value(json_object_get(json_object_get(h->jobs, name), "ready"));
}

const char *bc_history_first_answer(const bc_history_t *h, const char *name) {
  return json_string_value(json_object_get(json_object_get(h->jobs, name), "answer"));
}
