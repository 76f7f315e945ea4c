/* test_cov2_fault.c: OS failures in the pool's supervisor and the start
 * methods that only a fault point can cause (libfiu, FI build only):
 * epoll_ctl for each fd a pool registers, the claim-wake eventfd, the
 * shared page of a spawn worker (memfd, ftruncate), the spawn child's boot
 * memfd, and a forkserver request that cannot be sent. Each must report
 * the simulated errno (or BL_EPROCESS), leave no fd and no child. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "startmethod.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

static int tg_seven(const void *a, size_t n) {
  (void)a, (void)n;
  return 7;
}

/* In a constructor: spawn and forkserver images need it before main. */
__attribute__((constructor)) static void reg(void) { bl_register_target("cov2/seven", tg_seven); }

static void setup(void) {
  t_register_pool_tasks();
#ifdef FIU_ENABLE
  fiu_init(0);
#endif
}
TestSuite(cov2_fault, .init = setup, .timeout = 60);

#ifdef FIU_ENABLE
#define ARM(name, err) fiu_enable(name, 1, (void *)(intptr_t)(err), FIU_ONETIME)
#else
#define ARM(name, err) cr_skip_test("fault points need -Dfault_injection=true")
#endif

static void no_children(void) {
  cr_expect(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "every child reaped");
}

static int new_pool(bl_pool_t **p, const char *method, int threads) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.threads = threads;
  o.start_method = method;
  return bl_pool_new(p, &o);
}

static void new_fails(const char *point, int err, const char *method, int threads) {
  ARM(point, err);
  int fds = t_count_fds();
  bl_pool_t *p = NULL;
  cr_expect_eq(new_pool(&p, method, threads), -err, "%s", point);
  cr_expect_null(p);
  cr_expect_eq(t_count_fds(), fds);
  no_children();
}

Test(cov2_fault, cwake_eventfd_fails) {
  new_fails("supervisor/eventfd/cwake", ENFILE, "fork", 1);
}
Test(cov2_fault, spawn_worker_page_memfd_fails) {
  new_fails("supervisor/spawn/memfd", EMFILE, "spawn", 1);
}
Test(cov2_fault, spawn_worker_page_ftruncate_fails) {
  new_fails("supervisor/spawn/ftruncate", ENOSPC, "spawn", 0);
}

#ifdef FIU_ENABLE
/* Fail exactly the n-th epoll_ctl(ADD) from now on (any thread). */
static atomic_int ep_calls, ep_fail_at;
static int nth_cb(const char *name, int *failnum, void **failinfo, unsigned *flags) {
  (void)name, (void)failnum, (void)flags;
  *failinfo = (void *)(intptr_t)ENOSPC;
  return atomic_fetch_add(&ep_calls, 1) + 1 == atomic_load(&ep_fail_at);
}
#endif

/* Each registration bl_pool_new makes (eventfd, timerfd, every worker's
 * result pipe and pidfd) fails in turn: the pool is not made and the
 * workers already started are killed and reaped. A failure after those
 * (arming a task pipe for writing) is not fatal. */
static void epoll_add_sweep(int threads) {
#ifndef FIU_ENABLE
  (void)threads;
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  int failed = 0;
  for (int n = 1; n <= 12; n++) {
    atomic_store(&ep_calls, 0);
    atomic_store(&ep_fail_at, n);
    fiu_enable_external("supervisor/epoll/add", 1, NULL, 0, nth_cb);
    int fds = t_count_fds();
    bl_pool_t *p = NULL;
    int rc = new_pool(&p, "fork", threads);
    if (rc == 0) {
      /* Past the last registration of the start: the pool works. */
      bl_result_t *r = NULL;
      int v;
      cr_assert_eq(t_apply_int(p, "square", 3, NULL, &r), 0);
      cr_expect_eq(t_get_int(r, &v), 9);
      bl_result_free(&r);
      fiu_disable("supervisor/epoll/add");
      bl_pool_close(p);
      cr_expect_eq(bl_pool_join(p, 30000), 0);
      bl_pool_free(&p);
      cr_expect_eq(t_count_fds(), fds);
      break;
    }
    fiu_disable("supervisor/epoll/add");
    failed++;
    cr_expect_eq(rc, -ENOSPC, "call %d: rc %d", n, rc);
    cr_expect_null(p);
    cr_expect_eq(t_count_fds(), fds, "call %d", n);
    no_children();
  }
  /* eventfd, (timerfd,) 2 x (result pipe, pidfd) */
  cr_expect_eq(failed, threads ? 5 : 6);
#endif
}

Test(cov2_fault, epoll_add_fails_at_each_registration_threads) { epoll_add_sweep(1); }
Test(cov2_fault, epoll_add_fails_at_each_registration_no_threads) { epoll_add_sweep(0); }

static int run(const char *method, const char *target) {
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = method;
  bl_process_t *p = NULL;
  int rc = bl_process_new(&p, target, NULL, 0, &o);
  if (rc) return rc;
  rc = bl_process_start(p);
  if (rc == 0) {
    cr_assert_eq(bl_process_join(p, 60000), 0);
    cr_assert_eq(bl_process_exitcode(p, &rc), 0);
  }
  bl_process_free(&p);
  return rc;
}

Test(cov2_fault, spawn_boot_memfd_fails_in_the_child) {
  ARM("spawn/exec/memfd", ENFILE);
  int fds = t_count_fds();
  cr_expect_eq(run("spawn", "cov2/seven"), -ENFILE);
#ifdef FIU_ENABLE
  fiu_disable("spawn/exec/memfd"); /* it fired in the child, our copy is armed */
#endif
  cr_expect_eq(t_count_fds(), fds);
  no_children();
  cr_expect_eq(run("spawn", "cov2/seven"), 7, "the next start works");
}

Test(cov2_fault, forkserver_request_send_fails) {
  if (t_under_valgrind()) cr_skip_test("valgrind refuses clone(CLONE_PARENT)");
  cr_expect_eq(run("forkserver", "cov2/seven"), 7); /* the server is up */
  int fds = t_count_fds();
  ARM("forkserver/request/sendmsg", EPIPE);
  /* Taken for a dead server: dropped (and reaped), the start fails. */
  cr_expect_eq(run("forkserver", "cov2/seven"), BL_EPROCESS);
  cr_expect_eq(t_count_fds(), fds - 1, "the server's socket is gone");
  no_children();
  cr_expect_eq(run("forkserver", "cov2/seven"), 7, "a new server serves");
}

/* Fail exactly the n-th call of a point from now on (fd creation). */
#ifdef FIU_ENABLE
static atomic_int fd_calls, fd_fail_at;
static int nth_fd_cb(const char *name, int *failnum, void **failinfo, unsigned *flags) {
  (void)name, (void)failnum, (void)flags;
  *failinfo = (void *)(intptr_t)EMFILE;
  return atomic_fetch_add(&fd_calls, 1) + 1 == atomic_load(&fd_fail_at);
}
#endif

/* Every pipe and socketpair of a forkserver start (the Process's status
 * pipe, the server's socket and status pipe) fails in turn, with no
 * server running yet: the start reports EMFILE and leaves nothing. */
Test(cov2_fault, forkserver_first_start_fd_failures) {
#ifndef FIU_ENABLE
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  if (t_under_valgrind()) cr_skip_test("valgrind refuses clone(CLONE_PARENT)");
  const char *points[] = {"fdutil/pipe/create", "fdutil/socketpair/create"};
  for (size_t k = 0; k < 2; k++) {
    int failed = 0;
    for (int n = 1; n <= 6; n++) {
      bl__forkserver_stop();
      int fds = t_count_fds();
      atomic_store(&fd_calls, 0);
      atomic_store(&fd_fail_at, n);
      fiu_enable_external(points[k], 1, NULL, 0, nth_fd_cb);
      int rc = run("forkserver", "cov2/seven");
      fiu_disable(points[k]);
      if (rc == 7) break;
      failed++;
      cr_expect_eq(rc, -EMFILE, "%s call %d", points[k], n);
      cr_expect_eq(t_count_fds(), fds, "%s call %d", points[k], n);
      no_children();
    }
    cr_expect_gt(failed, 0, "%s", points[k]);
    cr_expect_lt(failed, 6, "%s", points[k]);
  }
  bl__forkserver_stop();
#endif
}

/* A preload name over the registry's limit cannot be sent: the server is
 * stopped and the start reports it as not found. */
Test(cov2_fault, forkserver_preload_name_too_long) {
  if (t_under_valgrind()) cr_skip_test("valgrind refuses clone(CLONE_PARENT)");
  char name[BL_TASK_NAME_MAX + 2];
  memset(name, 'a', sizeof name - 1);
  name[sizeof name - 1] = 0;
  bl__forkserver_stop();
  int fds = t_count_fds();
  cr_assert_eq(bl_set_forkserver_preload((const char *const[]){name, NULL}), 0);
  cr_expect_eq(run("forkserver", "cov2/seven"), BL_ENOTFOUND);
  cr_expect_eq(t_count_fds(), fds);
  no_children();
  cr_assert_eq(bl_set_forkserver_preload(NULL), 0);
  cr_expect_eq(run("forkserver", "cov2/seven"), 7);
  bl__forkserver_stop();
}
