/* corpus.c: path expansion and loading. */
#include "corpus.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void walk(bc_corpus_t *c, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  bc_strv_t names = {0};
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') bc_strv_push(&names, e->d_name);
  closedir(d);
  bc_strv_sort(&names);
  for (size_t i = 0; i < names.n; i++) {
    char *p = bc_asprintf("%s/%s", dir, names.v[i]);
    struct stat st;
    size_t len = strlen(names.v[i]);
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) walk(c, p);
    else if (len > 5 && strcmp(names.v[i] + len - 5, ".yaml") == 0) bc_strv_push(&c->files, p);
    free(p);
  }
  bc_strv_free(&names);
}

static int add_path(bc_corpus_t *c, const char *p) {
  struct stat st;
  if (stat(p, &st) < 0) {
    fprintf(stderr, "billiard-conform: %s: %s\n", p, strerror(errno));
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    char *d = bc_xstrdup(p);
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/') d[--n] = '\0';
    walk(c, d);
    free(d);
  } else {
    bc_strv_push(&c->files, p);
  }
  return 0;
}

int bc_corpus_collect(bc_corpus_t *c, char *const paths[], int n) {
  memset(c, 0, sizeof *c);
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (bc_has_glob(paths[i])) {
      glob_t g;
      if (glob(paths[i], 0, NULL, &g) != 0) {
        fprintf(stderr, "billiard-conform: %s: no match\n", paths[i]);
        rc = -1;
        continue;
      }
      for (size_t k = 0; k < g.gl_pathc; k++)
        if (add_path(c, g.gl_pathv[k])) rc = -1;
      globfree(&g);
    } else if (add_path(c, paths[i])) {
      rc = -1;
    }
  }
  /* Unique by real path, first spelling kept. */
  bc_strv_t seen = {0}, keep = {0};
  for (size_t i = 0; i < c->files.n; i++) {
    char *rp = realpath(c->files.v[i], NULL);
    const char *key = rp ? rp : c->files.v[i];
    if (!bc_strv_has(&seen, key)) {
      bc_strv_push(&seen, key);
      bc_strv_push(&keep, c->files.v[i]);
    }
    free(rp);
  }
  bc_strv_free(&seen);
  bc_strv_free(&c->files);
  c->files = keep;
  return rc;
}

bool bc_corpus_filter_match(const char *filter, const char *id) {
  if (!filter || !*filter) return true;
  if (bc_has_glob(filter)) return fnmatch(filter, id, 0) == 0;
  return strstr(id, filter) != NULL;
}

static bc_features_t *features_for(bc_corpus_t *c, const char *file) {
  char *path = bc_features_path_for(file);
  for (size_t i = 0; i < c->nfeatures; i++)
    if (!strcmp(c->features[i].path, path)) {
      free(path);
      return c->features[i].ok ? &c->features[i] : NULL;
    }
  c->features = bc_xrealloc(c->features, (c->nfeatures + 1) * sizeof *c->features);
  bc_features_t *f = &c->features[c->nfeatures++];
  bc_diag_t d = {.path = path};
  if (bc_features_load(f, path, &d) < 0) {
    for (size_t i = 0; i < d.errors.n; i++) bc_strv_push(&c->diag.errors, d.errors.v[i]);
    bc_strv_free(&d.errors);
    free(path);
    return NULL; /* f stays (empty) so the error is printed once */
  }
  bc_strv_free(&d.errors);
  free(path);
  return f;
}

size_t bc_corpus_load(bc_corpus_t *c, const char *filter) {
  c->sc = bc_xcalloc(c->files.n, sizeof *c->sc);
  size_t before = c->diag.errors.n;
  for (size_t i = 0; i < c->files.n; i++) {
    const char *f = c->files.v[i];
    char *id = bc_scenario_id(f);
    bool want = bc_corpus_filter_match(filter, id);
    free(id);
    if (!want) continue;
    bc_features_t *ft = features_for(c, f);
    c->diag.path = f;
    c->sc[c->n++] = bc_scenario_load(f, ft, &c->diag);
  }
  c->diag.path = NULL;
  return c->diag.errors.n - before;
}

void bc_corpus_free(bc_corpus_t *c) {
  for (size_t i = 0; i < c->n; i++) bc_scenario_free(&c->sc[i]);
  free(c->sc);
  for (size_t i = 0; i < c->nfeatures; i++) bc_features_free(&c->features[i]);
  free(c->features);
  bc_strv_free(&c->files);
  bc_strv_free(&c->diag.errors);
  memset(c, 0, sizeof *c);
}
