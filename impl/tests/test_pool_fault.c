/* test_pool_fault.c: the pool's fault points (libfiu, FI build only):
 * spawn, epoll/eventfd/timerfd creation, dispatch write, result read, and
 * worker-side crashes after the ACK and before the result write. */
#include <criterion/criterion.h>
#include <sys/wait.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "poolint.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

static void setup(void) {
  t_register_pool_tasks();
#ifdef FIU_ENABLE
  fiu_init(0);
#endif
}
TestSuite(pool_fault, .init = setup, .timeout = 60);

#ifdef FIU_ENABLE
#define ARM(name, err) fiu_enable(name, 1, (void *)(intptr_t)(err), FIU_ONETIME)
#else
#define ARM(name, err) cr_skip_test("fault points need -Dfault_injection=true")
#endif

static void new_fails(const char *point, int err, int threads) {
  ARM(point, err);
  int fds = t_count_fds();
  bl_pool_t *p = NULL;
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.threads = threads;
  cr_expect_eq(bl_pool_new(&p, &o), -err);
  cr_expect_null(p);
  cr_expect_eq(t_count_fds(), fds);
  cr_expect(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

Test(pool_fault, epoll_create_fails) { new_fails("supervisor/epoll/create", EMFILE, 1); }
Test(pool_fault, eventfd_create_fails) { new_fails("supervisor/eventfd/create", ENFILE, 1); }
Test(pool_fault, timerfd_create_fails) { new_fails("supervisor/timerfd/create", EMFILE, 0); }
Test(pool_fault, spawn_fork_fails_at_start) { new_fails("child/fork/fork", EAGAIN, 1); }
Test(pool_fault, spawn_pidfd_fails_at_start) { new_fails("child/pidfd/open", EMFILE, 0); }

/* A failed dispatch write kills that worker: the job is re-dispatched (it
 * never started) or, had it been running, lost. It always resolves. */
Test(pool_fault, dispatch_write_fails) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  ARM("pool/dispatch/write", EPIPE);
  bl_result_t *r = NULL;
  int rc;
  cr_assert_eq(t_apply_int(p, "square", 5, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 25);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_fault, result_read_fails) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  ARM("pool/result/read", EIO);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "square", 5, NULL, &r), 0);
  int rc = bl_result_get(r, 30000, NULL, NULL, NULL);
  /* the ACK or the READY was lost with the worker */
  cr_expect(rc == 0 || rc == BL_EWORKERLOST, "rc %d", rc);
  bl_result_free(&r);
  /* and the pool recovers */
  cr_assert_eq(t_apply_int(p, "square", 6, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 36);
  bl_result_free(&r);
  bl_pool_free(&p);
}

/* Crash points are armed before the pool forks, so every worker inherits
 * them: each worker dies on its first job at that step. */
static void worker_crash(const char *point) {
  ARM(point, SIGKILL);
  bl_pool_t *p = t_pool(1, 1);
#ifdef FIU_ENABLE
  fiu_disable(point);
#endif
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "square", 5, NULL, &r), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &e), BL_EWORKERLOST);
  cr_expect(e.message && strstr(e.message, "signal 9 (SIGKILL)"));
  bl_error_info_clear(&e);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_fault, worker_crash_after_ack) { worker_crash("worker/task/after-ack"); }
Test(pool_fault, worker_crash_before_result_write) { worker_crash("worker/result/write"); }

/* A replacement that cannot be forked is retried (50 ms later): the queued
 * job still runs. */
Test(pool_fault, respawn_fork_fails_then_retries) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  ARM("child/fork/fork", EAGAIN);
  bl_result_t *r = NULL, *q = NULL;
  cr_assert_eq(t_apply_int(p, "die", SIGKILL, NULL, &r), 0);
  cr_assert_eq(t_apply_int(p, "square", 4, NULL, &q), 0);
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, NULL), BL_EWORKERLOST);
  int rc;
  cr_expect_eq(t_get_int(q, &rc), 16);
  bl_result_free(&r);
  bl_result_free(&q);
  bl_pool_free(&p);
}

#ifdef FIU_ENABLE
static atomic_long crash_hits, crash_from;
static int crash_from_nth(const char *name, int *failnum, void **failinfo,
                          unsigned *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  return ++crash_hits >= crash_from; /* counted in each worker, from 0 */
}
#endif

/* Every worker dies after accepting its Nth unit: the map job fails, its
 * other units are dropped, and the pool releases the job even when join
 * ends while those units still wait for a worker (crash-loop back-off;
 * docs/reliability.md "Found" 2). */
Test(pool_fault, map_with_workers_dying_persistently_is_released) {
#ifdef FIU_ENABLE
  for (int iter = 0; iter < 32; iter++) {
    crash_hits = 0;
    crash_from = 1 + iter % 4;
    fiu_enable_external("worker/task/after-ack", 1, NULL, 0, crash_from_nth);
    bl_pool_t *p = t_pool(2, 1);
    fiu_disable("worker/task/after-ack");
    cr_assert_not_null(p);
    int32_t v[24];
    const void *args[24];
    size_t lens[24];
    for (int i = 0; i < 24; i++) v[i] = i, args[i] = &v[i], lens[i] = sizeof v[i];
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.chunksize = 3;
    bl_result_t *r = NULL;
    cr_assert_eq(bl_pool_map_async(p, "echo", args, lens, 24, &ao, &r), 0);
    int rc = bl_result_get(r, 30000, NULL, NULL, NULL);
    cr_expect(rc == BL_EWORKERLOST || rc == BL_ERESTARTFREQ, "rc %d", rc);
    cr_expect_eq(bl_pool_close(p), 0);
    rc = bl_pool_join(p, 30000);
    cr_expect(rc == 0 || rc == BL_ERESTARTFREQ, "join %d", rc);
    bl_pool_free(&p);
    cr_expect_eq(atomic_load(&r->refs), 1, "from hit %ld: refs %d", (long)crash_from,
                 (int)atomic_load(&r->refs));
    bl_result_free(&r);
  }
#else
  cr_skip_test("fault points need -Dfault_injection=true");
#endif
}

/* Found 8 (reliability.md): libfiu's tables have their own locks, taken
 * (even for writing, to fill a lookup cache) inside every fault-point
 * evaluation. A worker forked by the supervisor thread while a caller's
 * thread was inside one inherited that lock held and hung at its first
 * fault point: its jobs never resolved. No fork may start while another
 * thread evaluates a fault point. The point's callback stays inside the
 * evaluation until a fork starts (seen by an atfork handler) or 1 s passes;
 * meanwhile a pool is created (which forks its worker). */
#ifdef FIU_ENABLE
static pthread_mutex_t ff_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ff_cv = PTHREAD_COND_INITIALIZER;
static int ff_watch, ff_inside, ff_forks, ff_forked_inside;
static pthread_t ff_th;

static void ff_prepare(void) {
  pthread_mutex_lock(&ff_mu);
  if (ff_watch) ff_forks++;
  pthread_cond_broadcast(&ff_cv);
  pthread_mutex_unlock(&ff_mu);
}

static int ff_cb(const char *name, int *failnum, void **failinfo, unsigned *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  if (!pthread_equal(pthread_self(), ff_th)) return 0; /* the pool's own pipes */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 1;
  pthread_mutex_lock(&ff_mu);
  ff_inside = 1;
  int forks = ff_forks;
  pthread_cond_broadcast(&ff_cv);
  while (ff_forks == forks &&
         pthread_cond_timedwait(&ff_cv, &ff_mu, &until) != ETIMEDOUT) {
  }
  ff_forked_inside = ff_forks != forks;
  ff_inside = 2;
  pthread_mutex_unlock(&ff_mu);
  return 0;
}

static void *ff_thread(void *arg) {
  (void)arg;
  pthread_mutex_lock(&ff_mu); /* ff_th is set: the creator released ff_mu */
  pthread_mutex_unlock(&ff_mu);
  int fds[2];
  if (bl__pipe(fds) == 0) {
    close(fds[0]);
    close(fds[1]);
  }
  return NULL;
}
#endif

Test(pool_fault, no_fork_while_a_fault_point_is_evaluated) {
#ifdef FIU_ENABLE
  cr_assert_eq(pthread_atfork(ff_prepare, NULL, NULL), 0);
  ff_watch = 1;
  cr_assert_eq(fiu_enable_external("fdutil/pipe/create", 1, NULL, 0, ff_cb), 0);
  pthread_mutex_lock(&ff_mu);
  cr_assert_eq(pthread_create(&ff_th, NULL, ff_thread, NULL), 0);
  while (!ff_inside) pthread_cond_wait(&ff_cv, &ff_mu);
  pthread_mutex_unlock(&ff_mu);
  bl_pool_t *p = t_pool(1, 1); /* forks while ff_thread is in the point */
  pthread_join(ff_th, NULL);
  fiu_disable("fdutil/pipe/create");
  cr_assert_not_null(p);
  cr_expect_eq(ff_inside, 2);
  cr_expect_not(ff_forked_inside, "a fork started inside a fault-point evaluation");
  bl_result_t *r = NULL;
  int rc;
  cr_assert_eq(t_apply_int(p, "square", 6, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 36);
  cr_expect_eq(rc, 0);
  bl_result_free(&r);
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 10000), 0);
  bl_pool_free(&p);
#else
  cr_skip_test("fault points need -Dfault_injection=true");
#endif
}
