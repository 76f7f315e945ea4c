/* registry.c: names -> functions for Process targets and Pool tasks.
 * Names cross into children instead of pointers (see <billiard/task.h>). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/task.h>

#include "internal.h"

enum kind { TARGET, TASK };

struct reg {
  char *name;
  enum kind kind;
  void (*fn)(void);
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg *regs;
static size_t nregs, capregs;

static int add(const char *name, enum kind kind, void (*fn)(void)) {
  BL_VALIDATE(name && *name && fn, -EINVAL);
  BL_VALIDATE(strlen(name) <= BL_TASK_NAME_MAX, -ENAMETOOLONG);
  int rc = 0;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nregs; i++) {
    if (regs[i].kind == kind && strcmp(regs[i].name, name) == 0) {
      rc = regs[i].fn == fn ? 0 : -EEXIST;
      goto out;
    }
  }
  if (nregs == capregs) {
    size_t ncap = capregs ? capregs * 2 : 16;
    struct reg *n = realloc(regs, ncap * sizeof *n);
    if (!n) {
      rc = -ENOMEM;
      goto out;
    }
    regs = n;
    capregs = ncap;
  }
  char *copy = bl__strdup(name);
  if (!copy) {
    rc = -ENOMEM;
    goto out;
  }
  regs[nregs++] = (struct reg){copy, kind, fn};
out:
  pthread_mutex_unlock(&mu);
  return rc;
}

static int lookup(const char *name, enum kind kind, void (**fn)(void)) {
  BL_VALIDATE(name && fn, -EINVAL);
  int rc = BL_ENOTFOUND;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nregs; i++) {
    if (regs[i].kind == kind && strcmp(regs[i].name, name) == 0) {
      *fn = regs[i].fn;
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  return rc;
}

/* Function pointers of different types are converted through void (*)(void),
 * which C allows as long as each is converted back before a call. */
BL_API int bl_register_target(const char *name, bl_target_fn fn) {
  return add(name, TARGET, (void (*)(void))fn);
}
BL_API int bl_register_task(const char *name, bl_task_fn fn) {
  return add(name, TASK, (void (*)(void))fn);
}
BL_API int bl_lookup_target(const char *name, bl_target_fn *fn) {
  void (*f)(void) = NULL;
  BL_VALIDATE(fn != NULL, -EINVAL);
  int rc = lookup(name, TARGET, &f);
  if (rc == 0) *fn = (bl_target_fn)f;
  return rc;
}
BL_API int bl_lookup_task(const char *name, bl_task_fn *fn) {
  void (*f)(void) = NULL;
  BL_VALIDATE(fn != NULL, -EINVAL);
  int rc = lookup(name, TASK, &f);
  if (rc == 0) *fn = (bl_task_fn)f;
  return rc;
}

/* A fork while another thread registers must not leave the child with a
 * held mutex: take it across fork. */
static void atfork_prepare(void) { pthread_mutex_lock(&mu); }
static void atfork_release(void) { pthread_mutex_unlock(&mu); }
__attribute__((constructor)) static void registry_init(void) {
  pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

/* Free the table at exit so leak checkers see a clean process. */
__attribute__((destructor)) static void registry_fini(void) {
  for (size_t i = 0; i < nregs; i++) free(regs[i].name);
  free(regs);
  regs = NULL;
  nregs = capregs = 0;
}
