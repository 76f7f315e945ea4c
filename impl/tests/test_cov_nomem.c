/* test_cov_nomem.c: out-of-memory sweeps (SQLite-style OOM loops). For
 * n = 1, 2, ... the n-th malloc/calloc/realloc made by the test's thread
 * fails (libfiu's POSIX preload, armed through a callback that counts only
 * this thread's calls); each operation must then return -ENOMEM (or
 * succeed, where a failure is absorbed) and leave no fd behind. The sweep
 * ends at the first n the operation no longer reaches. Leaks on these paths
 * are not checked: valgrind's and ASan's malloc shadow the preload's. Needs an FI build without sanitizers,
 * where meson preloads fiu_posix_preload.so for this test only. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"
#include "pool_tasks.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

static __thread int nm_armed;
static __thread long nm_left;

#ifdef FIU_ENABLE
static int nm_cb(const char *name, int *failnum, void **failinfo,
                 unsigned *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  if (!nm_armed || --nm_left > 0) return 0;
  nm_armed = 0;
  return 1;
}
#endif
/* A forked child inherits the forking thread's counters: disarm it there,
 * so children run normally and only the parent's paths are swept. */
static void nm_child(void) { nm_armed = 0; }

static void setup(void) {
  t_register_pool_tasks();
#ifdef FIU_ENABLE
  if (getenv("BL_FIU_POSIX")) {
    fiu_init(0);
    static const char *const pts[] = {"libc/mm/malloc", "libc/mm/calloc",
                                      "libc/mm/realloc"};
    for (size_t i = 0; i < 3; i++)
      fiu_enable_external(pts[i], 1, (void *)(intptr_t)ENOMEM, 0, nm_cb);
    pthread_atfork(NULL, NULL, nm_child);
  }
#endif
}
TestSuite(cov_nomem, .init = setup, .timeout = 120);

typedef int (*op_fn)(void);

static void sweep(const char *what, op_fn op) {
  if (!getenv("BL_FIU_POSIX"))
    cr_skip_test("needs the FI build (fiu_posix_preload.so preloaded)");
  int fds = t_count_fds();
  for (long n = 1; n < 5000; n++) {
    nm_left = n;
    nm_armed = 1;
    int rc = op();
    int hit = !nm_armed;
    nm_armed = 0;
    cr_expect_eq(t_count_fds(), fds, "%s: allocation %ld: fds leaked", what, n);
    if (!hit && n == 1)
      cr_skip_test("%s: no allocation reached the preload (valgrind's malloc "
                   "shadows it)", what);
    if (!hit) {
      if (getenv("NM_DEBUG")) fprintf(stderr, "%s: %ld allocations\n", what, n - 1);
      cr_expect_eq(rc, 0, "%s: no failure injected, yet %d", what, rc);
      return;
    }
    /* pthread_create reports a failed allocation as EAGAIN. */
    cr_expect(rc == 0 || rc == -ENOMEM || rc == -EAGAIN,
              "%s: allocation %ld failed -> %d (%s)",
              what, n, rc, bl_err_name(rc));
  }
  cr_assert_fail("%s: never completed", what);
}

static int op_error_info(void) {
  bl_error_info_t e = {0};
  int rc = bl_error_info_set(&e, BL_ETASK, "ValueError", "bad", "Traceback");
  if (rc == 0 && (strcmp(e.type, "ValueError") || strcmp(e.traceback, "Traceback")))
    rc = -EIO;
  bl_error_info_clear(&e);
  return rc;
}

static int registered;
static int t_noop_target(const void *a, size_t n) {
  (void)a, (void)n;
  return 0;
}
static int op_register(void) {
  /* A fresh name each time: past the first 16 the table grows again. */
  char name[32];
  int rc = 0;
  for (int i = 0; i < 20 && rc == 0; i++) {
    snprintf(name, sizeof name, "nomem-%d", registered);
    rc = bl_register_target(name, t_noop_target);
    if (rc == 0) registered++;
  }
  return rc;
}

static int op_context(void) {
  static const char *const pre[] = {"a", "bb", "ccc", NULL};
  int rc = bl_set_forkserver_preload(pre);
  if (rc == 0) rc = bl_set_executable("/proc/self/exe");
  (void)bl_set_forkserver_preload(NULL);
  (void)bl_set_executable(NULL);
  return rc;
}

static int op_pipe(void) {
  bl_conn_t *a = NULL, *b = NULL;
  int rc = bl_pipe(&a, &b, 1);
  if (rc == 0) rc = bl_conn_send_bytes(a, "hello", 5, 0, 5);
  void *got = NULL;
  size_t len = 0;
  if (rc == 0) rc = bl_conn_recv_bytes(b, &got, &len, 0);
  if (rc == 0 && (len != 5 || memcmp(got, "hello", 5))) rc = -EIO;
  free(got);
  bl_conn_free(&a);
  bl_conn_free(&b);
  return rc;
}

static int op_queue(void) {
  bl_queue_t *q = NULL;
  int rc = bl_queue_new(&q, NULL);
  if (rc == 0) rc = bl_queue_put(q, "item", 4, 1000);
  void *got = NULL;
  size_t len = 0;
  if (rc == 0) rc = bl_queue_get(q, &got, &len, 1000);
  free(got);
  bl_queue_free(&q);
  if (rc) return rc;
  bl_simple_queue_t *s = NULL;
  rc = bl_simple_queue_new(&s);
  bl_simple_queue_free(&s);
  if (rc) return rc;
  rc = bl_joinable_queue_new(&q, NULL);
  bl_queue_free(&q);
  return rc;
}

static int op_sync(void) {
  bl_lock_t *l = NULL, *r = NULL;
  bl_semaphore_t *s = NULL;
  bl_event_t *e = NULL;
  bl_condition_t *c = NULL;
  bl_barrier_t *b = NULL;
  int rc = bl_lock_new(&l);
  if (rc == 0) rc = bl_rlock_new(&r);
  if (rc == 0) rc = bl_semaphore_new(&s, 2);
  if (rc == 0) rc = bl_event_new(&e);
  if (rc == 0) rc = bl_condition_new(&c, NULL);
  if (rc == 0) rc = bl_barrier_new(&b, 2, NULL, NULL);
  bl_barrier_free(&b);
  bl_condition_free(&c);
  bl_event_free(&e);
  bl_semaphore_free(&s);
  bl_lock_free(&r);
  bl_lock_free(&l);
  return rc;
}

static int op_shared(void) {
  bl_value_t *v = NULL, *a = NULL;
  int rc = bl_value_new(&v, 'i', NULL);
  if (rc == 0) rc = bl_array_new(&a, 'd', 16, NULL);
  bl_value_free(&a);
  bl_value_free(&v);
  return rc;
}

static int op_process(void) {
  bl_process_t *p = NULL;
  int32_t arg = 0;
  int rc = bl_process_new(&p, "nomem-0", &arg, sizeof arg, NULL);
  if (rc == 0) rc = bl_process_start(p);
  if (rc == 0) rc = bl_process_join(p, 20000);
  bl_process_free(&p);
  return rc;
}

static int op_pool(void) {
  bl_pool_t *p = NULL;
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  int rc = bl_pool_new(&p, &o);
  bl_result_t *r = NULL;
  int32_t v = 9;
  if (rc == 0) rc = bl_pool_apply_async(p, "square", &v, sizeof v, NULL, &r);
  if (rc == 0) rc = bl_result_get(r, 20000, NULL, NULL, NULL);
  bl_result_free(&r);
  if (p) {
    (void)bl_pool_terminate(p);
    (void)bl_pool_join(p, 20000);
  }
  bl_pool_free(&p);
  return rc;
}

static int op_manager(void) {
  bl_manager_t *m = NULL;
  bl_proxy_t *d = NULL, *l = NULL;
  int rc = bl_manager_new(&m, NULL);
  if (rc == 0) rc = bl_manager_start(m);
  if (rc == 0) rc = bl_manager_dict(m, &d);
  if (rc == 0) rc = bl_dict_set(d, "k", "v", 1);
  void *got = NULL;
  size_t len = 0;
  if (rc == 0) rc = bl_dict_get(d, "k", &got, &len);
  free(got);
  if (rc == 0) rc = bl_manager_list(m, &l);
  if (rc == 0) rc = bl_list_append(l, "x", 1);
  bl_proxy_free(&l);
  bl_proxy_free(&d);
  if (m) (void)bl_manager_shutdown(m);
  bl_manager_free(&m);
  return rc;
}

Test(cov_nomem, error_info) { sweep("error_info_set", op_error_info); }
Test(cov_nomem, registry) {
  if (bl_register_target("nomem-0", t_noop_target) == 0) registered = 1;
  sweep("register", op_register);
}
Test(cov_nomem, context) { sweep("context", op_context); }
Test(cov_nomem, pipe) { sweep("pipe", op_pipe); }
Test(cov_nomem, queue) { sweep("queue", op_queue); }
Test(cov_nomem, sync) { sweep("sync", op_sync); }
Test(cov_nomem, shared) { sweep("sharedctypes", op_shared); }
Test(cov_nomem, process) {
  cr_assert_eq(bl_register_target("nomem-0", t_noop_target), 0);
  sweep("process", op_process);
}
Test(cov_nomem, pool) { sweep("pool", op_pool); }
Test(cov_nomem, manager) { sweep("manager", op_manager); }

/* fork() itself failing (libfiu's posix/proc/fork, same preload): bl__fork
 * returns -errno and leaks nothing, with pidfds and on the death-pipe
 * fallback (child/pidfd/probe). */
static void fork_fails(int fallback) {
  if (!getenv("BL_FIU_POSIX"))
    cr_skip_test("needs the FI build (fiu_posix_preload.so preloaded)");
#ifdef FIU_ENABLE
  if (fallback)
    fiu_enable("child/pidfd/probe", 1, (void *)(intptr_t)ENOSYS, FIU_ONETIME);
  if (!fallback && !bl__have_pidfd()) cr_skip_test("no pidfds here (valgrind)");
  cr_expect_eq(bl__have_pidfd(), !fallback);
  int fds = t_count_fds();
  fiu_enable("posix/proc/fork", 1, (void *)(intptr_t)EAGAIN, FIU_ONETIME);
  pid_t pid = bl__fork(SIGKILL);
  fiu_disable("posix/proc/fork");
  if (pid == 0) bl__child_exit(0); /* the preload did not reach fork() */
  cr_expect_eq(pid, -EAGAIN);
  cr_expect_eq(t_count_fds(), fds, "the death pipe was closed");
  pid = bl__fork(SIGKILL); /* and the next fork works */
  if (pid == 0) bl__child_exit(4);
  cr_assert_gt(pid, 0);
  int st = 0;
  cr_expect_eq(bl__waitpid(pid, &st, 0), pid);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 4);
#else
  (void)fallback;
#endif
}
Test(cov_nomem, fork_fails_with_pidfds) { fork_fails(0); }
Test(cov_nomem, fork_fails_on_death_pipes) { fork_fails(1); }
