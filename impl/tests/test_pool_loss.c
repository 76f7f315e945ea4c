/* test_pool_loss.c: losing workers. A dead worker fails exactly the job it
 * had started (WorkerLostError, billiard's message), the jobs queued in its
 * pipe run elsewhere, results it wrote before dying are delivered, it is
 * replaced at once, and killing any worker at any moment never wedges the
 * pool. The restart limiter breaks the pool on a crashing initializer. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>

#include "helpers.h"
#include "pool_tasks.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_loss, .init = setup, .timeout = 60);

struct events {
  pthread_mutex_t mu;
  int up, down, last_status, broken;
  char broken_msg[64];
};
static void ev_up(bl_pool_t *p, pid_t pid, void *u) {
  (void)p, (void)pid;
  struct events *e = u;
  pthread_mutex_lock(&e->mu);
  e->up++;
  pthread_mutex_unlock(&e->mu);
}
static void ev_down(bl_pool_t *p, pid_t pid, int status, void *u) {
  (void)p, (void)pid;
  struct events *e = u;
  pthread_mutex_lock(&e->mu);
  e->down++;
  e->last_status = status;
  pthread_mutex_unlock(&e->mu);
}
static void ev_broken(bl_pool_t *p, int code, const char *msg, void *u) {
  (void)p;
  struct events *e = u;
  pthread_mutex_lock(&e->mu);
  e->broken = code;
  snprintf(e->broken_msg, sizeof e->broken_msg, "%s", msg ? msg : "");
  pthread_mutex_unlock(&e->mu);
}

static bl_pool_t *pool_ev(unsigned n, struct events *e) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = n;
  o.on_process_up = ev_up;
  o.on_process_down = ev_down;
  o.on_pool_error = ev_broken;
  o.user = e;
  bl_pool_t *p = NULL;
  return bl_pool_new(&p, &o) == 0 ? p : NULL;
}

static void expect_lost(int sig, const char *status) {
  struct events e = {.mu = PTHREAD_MUTEX_INITIALIZER};
  bl_pool_t *p = pool_ev(2, &e);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "die", sig, NULL, &r), 0);
  bl_error_info_t err = {0};
  cr_assert_eq(bl_result_get(r, 30000, NULL, NULL, &err), BL_EWORKERLOST);
  char want[128];
  snprintf(want, sizeof want, "Worker exited prematurely: %s Job: %llu.", status,
           (unsigned long long)bl_result_job_id(r));
  cr_expect_str_eq(err.message, want);
  cr_expect_str_eq(bl_error_info_type(&err), "WorkerLostError");
  bl_error_info_clear(&err);
  bl_result_free(&r);
  /* replaced at once: the pool still has 2 workers and works */
  for (int i = 0; i < 4; i++) {
    int rc;
    cr_assert_eq(t_apply_int(p, "square", i, NULL, &r), 0);
    cr_expect_eq(t_get_int(r, &rc), i * i);
    bl_result_free(&r);
  }
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 2);
  bl_pool_close(p);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  cr_expect_geq(e.up, 3);
  cr_expect_geq(e.down, 1);
  bl_pool_free(&p);
}

Test(pool_loss, sigkill_busy_worker) { expect_lost(SIGKILL, "signal 9 (SIGKILL)"); }
Test(pool_loss, sigsegv_busy_worker) { expect_lost(SIGSEGV, "signal 11 (SIGSEGV)"); }
Test(pool_loss, exit7_busy_worker) { expect_lost(0, "exitcode 7"); }

Test(pool_loss, external_sigkill_of_running_job) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  bl_result_t *slow = NULL, *quick = NULL;
  cr_assert_eq(t_apply_int(p, "csleep", 20000, NULL, &slow), 0);
  /* wait until it runs somewhere */
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_accepted(slow) && t_now_ms() < end) bl_result_wait(slow, 5);
  pid_t pid = bl_result_worker_pid(slow);
  cr_assert_gt(pid, 0);
  cr_assert_eq(kill(pid, SIGKILL), 0); /* our own child, by pid */
  cr_assert_eq(t_apply_int(p, "square", 6, NULL, &quick), 0);
  bl_error_info_t err = {0};
  cr_expect_eq(bl_result_get(slow, 30000, NULL, NULL, &err), BL_EWORKERLOST);
  cr_expect(strstr(err.message, "signal 9 (SIGKILL)") != NULL);
  int rc;
  cr_expect_eq(t_get_int(quick, &rc), 36);
  bl_error_info_clear(&err);
  bl_result_free(&slow);
  bl_result_free(&quick);
  bl_pool_free(&p);
}

/* processes = 1 and two jobs: both sit in the one worker's pipe. The first
 * kills the worker; the second never started and must run on the
 * replacement, not fail. */
Test(pool_loss, queued_jobs_of_dead_worker_are_redispatched) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r[5];
  cr_assert_eq(t_apply_int(p, "die", SIGKILL, NULL, &r[0]), 0);
  for (int i = 1; i < 5; i++) cr_assert_eq(t_apply_int(p, "square", i, NULL, &r[i]), 0);
  cr_expect_eq(bl_result_get(r[0], 30000, NULL, NULL, NULL), BL_EWORKERLOST);
  for (int i = 1; i < 5; i++) {
    int rc;
    cr_expect_eq(t_get_int(r[i], &rc), i * i);
    cr_expect_eq(rc, 0);
  }
  for (int i = 0; i < 5; i++) bl_result_free(&r[i]);
  bl_pool_free(&p);
}

Test(pool_loss, killing_idle_workers_never_wedges) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  int rounds = t_under_valgrind() ? 3 : 25;
  for (int i = 0; i < rounds; i++) {
    pid_t pids[8];
    int n = bl_pool_pids(p, pids, 8);
    cr_assert_gt(n, 0);
    kill(pids[i % n], SIGKILL); /* idle, or being replaced: any moment */
    bl_result_t *r = NULL;
    int rc;
    cr_assert_eq(t_apply_int(p, "square", i, NULL, &r), 0);
    cr_assert_eq(t_get_int(r, &rc), i * i, "round %d rc %d", i, rc);
    bl_result_free(&r);
  }
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

/* With maxtasksperchild = 1 every worker exits right after writing its
 * READY; its pidfd may be seen before the result pipe. No result is lost. */
Test(pool_loss, result_written_before_death_is_delivered) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.maxtasksperchild = 1;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  int n = t_under_valgrind() ? 4 : 40;
  bl_result_t *r[40];
  for (int i = 0; i < n; i++) cr_assert_eq(t_apply_int(p, "square", i, NULL, &r[i]), 0);
  for (int i = 0; i < n; i++) {
    int rc;
    cr_expect_eq(t_get_int(r[i], &rc), i * i, "job %d rc %d", i, rc);
    bl_result_free(&r[i]);
  }
  bl_pool_free(&p);
}

/* A crashing initializer: each worker exits 1 before taking a job. The
 * limiter trips on the (max_restarts+1)-th restart: the pool breaks,
 * pending jobs fail with RestartFreqExceeded, the owner is told. */
Test(pool_loss, crashing_initializer_trips_restart_limiter) {
  struct events e = {.mu = PTHREAD_MUTEX_INITIALIZER};
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.initializer = "init_fail";
  o.max_restarts = 3;
  o.max_restart_freq_ms = 60000;
  o.on_process_down = ev_down;
  o.on_pool_error = ev_broken;
  o.user = &e;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  bl_result_t *r = NULL;
  int rc = bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r);
  if (rc == 0) {
    bl_error_info_t err = {0};
    cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &err), BL_ERESTARTFREQ);
    cr_expect_str_eq(err.message, "3 in 60s");
    bl_error_info_clear(&err);
    bl_result_free(&r);
  } else {
    cr_expect_eq(rc, BL_ENOTRUNNING); /* broke before the submit */
  }
  cr_expect_eq(bl_pool_join(p, 30000), BL_ERESTARTFREQ);
  cr_expect_eq(bl_pool_maintain_pool(p), BL_ERESTARTFREQ);
  cr_expect_eq(bl_pool_state(p), BL_POOL_BROKEN);
  cr_expect_eq(bl_pool_apply_async(p, "noop", NULL, 0, NULL, NULL), BL_ENOTRUNNING);
  bl_error_info_t info = {0};
  cr_expect_eq(bl_pool_error(p, &info), BL_ERESTARTFREQ);
  cr_expect_str_eq(info.message, "3 in 60s");
  bl_error_info_clear(&info);
  cr_expect_eq(e.broken, BL_ERESTARTFREQ);
  cr_expect_str_eq(e.broken_msg, "3 in 60s");
  cr_expect_eq(e.down, 4); /* 1 start + 3 counted restarts, the 4th trips */
  cr_expect_eq(e.last_status, 1);
  bl_pool_free(&p);
}

/* Without the limiter a crashing initializer restarts forever (billiard);
 * a job still resolves when the pool is terminated. */
Test(pool_loss, crashing_initializer_without_limiter_terminate_resolves) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.initializer = "init_fail";
  o.max_restarts = 0;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r), 0);
  cr_expect_eq(bl_result_get(r, 50, NULL, NULL, NULL), BL_ETIMEOUT);
  cr_expect_eq(bl_pool_terminate(p), 0);
  cr_expect_eq(bl_result_get(r, 0, NULL, NULL, NULL), BL_ETERMINATED);
  bl_result_free(&r);
  bl_pool_free(&p);
}

/* The crash-loop backoff never spaces restarts further apart than half
 * the limiter's allowed interval: a limit of 20 in 2 s must still trip
 * (a fixed 250 ms backoff, 8 per 2 s, never would). */
Test(pool_loss, crash_loop_backoff_still_trips_a_loose_limiter) {
  /* A rate test: under valgrind a restart alone takes longer than the
   * 100 ms the limiter allows. */
  if (t_under_valgrind()) cr_skip_test("restart rate too slow under valgrind");
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.initializer = "init_fail";
  o.max_restarts = 20;
  o.max_restart_freq_ms = 2000;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  bl_result_t *r = NULL;
  int rc = bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r);
  if (rc == 0) {
    cr_expect_eq(bl_result_get(r, 20000, NULL, NULL, NULL), BL_ERESTARTFREQ);
    bl_result_free(&r);
  } else {
    cr_expect_eq(rc, BL_ENOTRUNNING); /* broke before the submit */
  }
  cr_expect_eq(bl_pool_join(p, 20000), BL_ERESTARTFREQ);
  cr_expect_eq(bl_pool_state(p), BL_POOL_BROKEN);
  bl_pool_free(&p);
}
