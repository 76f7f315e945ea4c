/* context.c: start-method contexts: the default method (set once unless
 * forced, as billiard's DefaultContext), the executable for spawn and the
 * forkserver's preload list. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/context.h>
#include <billiard/pool.h>
#include <billiard/errors.h>

#include "internal.h"
#include "startmethod.h"

struct bl_context {
  int method;
};

static const bl_context_t contexts[] = {{BL__M_FORK}, {BL__M_SPAWN}, {BL__M_FORKSERVER}};
static const char *const names[] = {"fork", "spawn", "forkserver", NULL};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* A fork by another thread while mu is held must not leave it locked in
 * the child, which uses it right away (procinfo, exec path). The child
 * gets a fresh mutex; no prepare handler, so nothing here can interfere
 * with forks made from other atfork handlers. */
static void mu_reinit(void) { pthread_mutex_init(&mu, NULL); }
__attribute__((constructor)) static void mu_atfork(void) {
  pthread_atfork(NULL, NULL, mu_reinit);
}
static int chosen = -1; /* -1: not set yet */
static char *executable;
static char **preload;

const char *bl__method_name(int method) {
  return method >= 0 && method < 3 ? names[method] : NULL;
}

static int lookup(const char *name) {
  for (int i = 0; names[i]; i++)
    if (strcmp(name, names[i]) == 0) return i;
  return -EINVAL;
}

int bl__method_resolve(const char *name) {
  if (name) return lookup(name);
  pthread_mutex_lock(&mu);
  if (chosen < 0) chosen = BL__M_FORK; /* using the default fixes it */
  int m = chosen;
  pthread_mutex_unlock(&mu);
  return m;
}

BL_API int bl_get_context(const char *method, const bl_context_t **ctx) {
  BL_VALIDATE(ctx, -EINVAL);
  *ctx = NULL;
  int m = bl__method_resolve(method);
  if (m < 0) return m;
  *ctx = &contexts[m];
  return 0;
}

BL_API const char *bl_context_start_method(const bl_context_t *ctx) {
  return ctx ? bl__method_name(ctx->method) : NULL;
}

BL_API void bl_context_process_options(const bl_context_t *ctx,
                                       bl_process_options_t *o) {
  if (!o) return;
  bl_process_options_init(o);
  if (ctx) o->start_method = bl__method_name(ctx->method);
}

BL_API void bl_context_pool_options(const bl_context_t *ctx,
                                    bl_pool_options_t *o) {
  if (!o) return;
  bl_pool_options_init(o);
  if (ctx) o->start_method = bl__method_name(ctx->method);
}

BL_API int bl_set_start_method(const char *method, int force) {
  int m = -1;
  if (method) {
    m = lookup(method);
    if (m < 0) return m;
  } else {
    BL_VALIDATE(force, -EINVAL); /* billiard: only set_start_method(None, force=True) */
  }
  pthread_mutex_lock(&mu);
  int rc = 0;
  if (chosen >= 0 && !force) rc = BL_ESTATE; /* 'context has already been set' */
  else chosen = m;
  pthread_mutex_unlock(&mu);
  return rc;
}

BL_API const char *bl_get_start_method(int allow_none) {
  pthread_mutex_lock(&mu);
  if (chosen < 0 && !allow_none) chosen = BL__M_FORK;
  int m = chosen;
  pthread_mutex_unlock(&mu);
  return bl__method_name(m);
}

BL_API const char *const *bl_get_all_start_methods(void) { return names; }

BL_API int bl_set_executable(const char *path) {
  BL_VALIDATE(!path || *path, -EINVAL);
  char *copy = NULL;
  if (path && !(copy = bl__strdup(path))) return -ENOMEM;
  pthread_mutex_lock(&mu);
  free(executable);
  executable = copy;
  pthread_mutex_unlock(&mu);
  return 0;
}

char *bl__context_executable(void) {
  pthread_mutex_lock(&mu);
  char *c = bl__strdup(executable);
  pthread_mutex_unlock(&mu);
  return c;
}

void bl__strv_free(char **v) {
  if (!v) return;
  for (char **s = v; *s; s++) free(*s);
  free(v);
}

static char **strv_copy(const char *const *v) {
  size_t n = 0;
  while (v && v[n]) n++;
  if (n == 0) return NULL;
  char **c = calloc(n + 1, sizeof *c);
  if (!c) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(c[i] = bl__strdup(v[i]))) {
      bl__strv_free(c);
      return NULL;
    }
  return c;
}

BL_API int bl_set_forkserver_preload(const char *const *list) {
  size_t n = 0;
  while (list && list[n]) {
    BL_VALIDATE(*list[n], -EINVAL);
    n++;
  }
  char **c = strv_copy(list);
  if (n && !c) return -ENOMEM;
  pthread_mutex_lock(&mu);
  bl__strv_free(preload);
  preload = c;
  pthread_mutex_unlock(&mu);
  return 0;
}

char **bl__context_preload(void) {
  pthread_mutex_lock(&mu);
  char **c = strv_copy((const char *const *)preload);
  pthread_mutex_unlock(&mu);
  return c;
}

/* Free the settings at exit so leak checkers stay quiet. */
__attribute__((destructor)) static void context_free(void) {
  free(executable);
  executable = NULL;
  bl__strv_free(preload);
  preload = NULL;
}
