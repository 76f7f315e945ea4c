/* expectations.c: per-port expectations files. */
#include "expectations.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void load_map(bc_diag_t *d, const bc_node_t *n, bc_expect_entry_t **out, size_t *nout) {
  if (bc_node_is_null(n)) return; /* "known_failures:" with nothing under it */
  if (n->kind != BC_MAP) {
    bc_diag_at(d, n->line, n->col, "expected a map of scenario id: reason, got %s",
               bc_node_kind_name(n));
    return;
  }
  *out = bc_xcalloc(n->n, sizeof **out);
  for (size_t i = 0; i < n->n; i++) {
    const bc_node_t *v = n->items[i];
    bc_expect_entry_t *e = &(*out)[(*nout)++];
    e->id = bc_xstrdup(n->keys[i]->str);
    e->line = n->keys[i]->line;
    e->col = n->keys[i]->col;
    if (v->kind != BC_SCALAR || bc_node_is_null(v) || !*v->str) {
      bc_diag_at(d, v->line, v->col, "expected a non-empty reason for '%s', got %s", e->id,
                 bc_node_is_null(v)                 ? "nothing"
                 : v->kind == BC_SCALAR && !*v->str ? "an empty string"
                                                    : bc_node_kind_name(v));
      e->reason = bc_xstrdup("");
    } else {
      e->reason = bc_xstrdup(v->str);
    }
  }
}

int bc_expectations_load(bc_expectations_t *e, const char *path, bc_diag_t *d) {
  memset(e, 0, sizeof *e);
  e->path = bc_xstrdup(path);
  size_t before = d->errors.n, len;
  char *text = bc_read_file(path, &len);
  if (!text) {
    bc_diag_at(d, 1, 1, "expected a readable expectations file, got %s", strerror(errno));
    return -EIO;
  }
  char *err = NULL;
  bc_node_t *root = bc_node_parse(text, len, &err);
  free(text);
  if (!root) {
    bc_strv_push_owned(&d->errors, bc_asprintf("%s:%s", path, err));
    free(err);
    return -EINVAL;
  }
  if (root->kind != BC_MAP) {
    bc_diag_at(d, root->line, root->col, "expected a map, got %s", bc_node_kind_name(root));
  } else {
    for (size_t i = 0; i < root->n; i++) {
      const char *k = root->keys[i]->str;
      const bc_node_t *v = root->items[i];
      if (strcmp(k, "port") == 0) {
        if (v->kind == BC_SCALAR && *v->str) e->port = bc_xstrdup(v->str);
        else bc_diag_at(d, v->line, v->col, "expected a port name, got %s", bc_node_kind_name(v));
      } else if (strcmp(k, "known_failures") == 0) {
        load_map(d, v, &e->known, &e->nknown);
      } else if (strcmp(k, "skip") == 0) {
        load_map(d, v, &e->skip, &e->nskip);
      } else {
        bc_diag_at(d, root->keys[i]->line, root->keys[i]->col,
                   "expected a key (port, known_failures, skip), got unknown key '%s'", k);
      }
    }
  }
  bc_node_free(&root);
  return d->errors.n == before ? 0 : -EINVAL;
}

static void free_entries(bc_expect_entry_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].id);
    free(v[i].reason);
  }
  free(v);
}

void bc_expectations_free(bc_expectations_t *e) {
  free(e->path);
  free(e->port);
  free_entries(e->known, e->nknown);
  free_entries(e->skip, e->nskip);
  memset(e, 0, sizeof *e);
}

static const char *find(const bc_expect_entry_t *v, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].id, id) == 0) return v[i].reason;
  return NULL;
}

/* "id@method" (that start method only) first, then "id" (every method). */
static const char *find_for(const bc_expect_entry_t *v, size_t n, const char *id,
                            const char *method) {
  const char *why = NULL;
  if (method) {
    char *k = bc_asprintf("%s@%s", id, method);
    why = find(v, n, k);
    free(k);
  }
  return why ? why : find(v, n, id);
}

const char *bc_expectations_known(const bc_expectations_t *e, const char *id, const char *method) {
  return e ? find_for(e->known, e->nknown, id, method) : NULL;
}

const char *bc_expectations_skip(const bc_expectations_t *e, const char *id, const char *method) {
  return e ? find_for(e->skip, e->nskip, id, method) : NULL;
}

static void lint_entries(const bc_expect_entry_t *v, size_t n, const char *root, bc_diag_t *d) {
  for (size_t i = 0; i < n; i++) {
    const char *at = strchr(v[i].id, '@');
    int len = at ? (int)(at - v[i].id) : (int)strlen(v[i].id);
    if (at && strcmp(at + 1, "fork") && strcmp(at + 1, "spawn") && strcmp(at + 1, "forkserver"))
      bc_diag_at(d, v[i].line, v[i].col,
                 "expected a start method (fork, spawn, forkserver) after '@', got '%s'", at + 1);
    char *p = bc_asprintf("%s/%.*s", root, len, v[i].id);
    if (access(p, R_OK) != 0)
      bc_diag_at(d, v[i].line, v[i].col, "expected an existing scenario id, got '%s' (no %s)",
                 v[i].id, p);
    free(p);
  }
}

void bc_expectations_lint(const bc_expectations_t *e, const char *root, bc_diag_t *d) {
  lint_entries(e->known, e->nknown, root, d);
  lint_entries(e->skip, e->nskip, root, d);
  for (size_t i = 0; i < e->nknown; i++)
    if (find(e->skip, e->nskip, e->known[i].id))
      bc_diag_at(d, e->known[i].line, e->known[i].col,
                 "expected a scenario in known_failures or skip, got '%s' in both",
                 e->known[i].id);
}
