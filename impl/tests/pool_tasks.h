/* pool_tasks.h: tasks shared by the pool tests (header-only: each test
 * executable registers its own copy). Integers travel as raw int32. */
#ifndef BL_POOL_TASKS_H
#define BL_POOL_TASKS_H

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "internal.h"

#pragma GCC diagnostic ignored "-Wunused-function"

static int32_t t_int(const void *a, size_t n) {
  int32_t v = 0;
  if (n >= sizeof v) memcpy(&v, a, sizeof v);
  return v;
}

static void t_sleep_ms(uint32_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int tk_echo(bl_task_ctx_t *c, const void *a, size_t n) { return bl_task_return(c, a, n); }
static int tk_noop(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c, (void)a, (void)n;
  return 0;
}
static int tk_square(bl_task_ctx_t *c, const void *a, size_t n) {
  int32_t v = t_int(a, n);
  v *= v;
  return bl_task_return(c, &v, sizeof v);
}
static int tk_pid(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  int32_t v = (int32_t)bl_task_pid(c);
  return bl_task_return(c, &v, sizeof v);
}
/* Sleeps arg ms without looking at the soft limit, then returns its pid. */
static int tk_sleep(bl_task_ctx_t *c, const void *a, size_t n) {
  t_sleep_ms((uint32_t)t_int(a, n));
  return tk_pid(c, a, n);
}
/* Cooperative sleep: "soft" when the soft limit interrupted it. */
static int tk_csleep(bl_task_ctx_t *c, const void *a, size_t n) {
  int rc = bl_task_sleep(c, (uint32_t)t_int(a, n));
  if (rc == BL_ESOFTTIMELIMIT) return bl_task_return(c, "soft", 5);
  return bl_task_return(c, "full", 5);
}
static int tk_fail(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  return bl_task_fail(c, "ValueError", "bad value", "Traceback: tk_fail");
}
/* Squares, but fails on 3. */
static int tk_fail3(bl_task_ctx_t *c, const void *a, size_t n) {
  if (t_int(a, n) == 3) return bl_task_fail(c, "KeyError", "three", NULL);
  return tk_square(c, a, n);
}
/* Squares; a negative argument dies by that signal. */
static int tk_square_or_die(bl_task_ctx_t *c, const void *a, size_t n) {
  int32_t v = t_int(a, n);
  if (v < 0) {
    signal(-v, SIG_DFL);
    raise(-v);
  }
  return tk_square(c, a, n);
}
/* Dies by the signal given as arg (0: _exit(7)). */
static int tk_die(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c;
  int sig = t_int(a, n);
  if (sig) {
    signal(sig, SIG_DFL); /* ASan handles SIGSEGV itself otherwise */
    raise(sig);
  }
  bl__child_exit(7);
}
/* Allocates and touches arg MiB, kept for the worker's life. */
extern void *t_alloc_keep[64];
void *t_alloc_keep[64];
static int tk_alloc(bl_task_ctx_t *c, const void *a, size_t n) {
  void **keep = t_alloc_keep;
  static int nkeep;
  size_t sz = (size_t)t_int(a, n) << 20;
  void *m = malloc(sz);
  if (m) memset(m, 1, sz);
  if (nkeep < 64) keep[nkeep++] = m;
  return tk_pid(c, a, n);
}
static int t_inited;
static int tk_init_ok(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c;
  t_inited = t_int(a, n);
  return 0;
}
static int tk_init_fail(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c, (void)a, (void)n;
  return -1;
}
static int tk_inited(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  int32_t v = t_inited;
  return bl_task_return(c, &v, sizeof v);
}

static void t_register_pool_tasks(void) {
  bl_register_task("echo", tk_echo);
  bl_register_task("noop", tk_noop);
  bl_register_task("square", tk_square);
  bl_register_task("pid", tk_pid);
  bl_register_task("sleep", tk_sleep);
  bl_register_task("csleep", tk_csleep);
  bl_register_task("fail", tk_fail);
  bl_register_task("fail3", tk_fail3);
  bl_register_task("die", tk_die);
  bl_register_task("square_or_die", tk_square_or_die);
  bl_register_task("alloc", tk_alloc);
  bl_register_task("init_ok", tk_init_ok);
  bl_register_task("init_fail", tk_init_fail);
  bl_register_task("inited", tk_inited);
}

/* A pool of n workers with the given threads mode and defaults. */
static bl_pool_t *t_pool(unsigned n, int threads) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = n;
  o.threads = threads;
  bl_pool_t *p = NULL;
  if (bl_pool_new(&p, &o) != 0) return NULL;
  return p;
}

static int t_apply_int(bl_pool_t *p, const char *task, int32_t arg,
                       const bl_apply_options_t *ao, bl_result_t **r) {
  return bl_pool_apply_async(p, task, &arg, sizeof arg, ao, r);
}

static int32_t t_get_int(bl_result_t *r, int *rc) {
  const void *v = NULL;
  size_t l = 0;
  *rc = bl_result_get(r, 30000, &v, &l, NULL);
  return *rc == 0 && l == 4 ? t_int(v, l) : -1;
}

#endif
