/* test_pool_claim.c: a caller blocked in bl_pool_apply (or in a get on the
 * only job in its worker's pipe) reads that worker's result pipe itself
 * (pool.c, claim_wait). Every way a job can end must still reach it, once:
 * its result, its worker's death (the pidfd event is parked while the pipe
 * is claimed), a hard or soft limit, terminate() from another thread, a get
 * timeout (the pipe goes back to the supervisor), recycling, and other
 * threads' jobs on the same pool meanwhile. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>

#include "helpers.h"
#include "pool_tasks.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_claim, .init = setup, .timeout = 60);

static int apply_int(bl_pool_t *p, const char *task, int32_t arg,
                     const bl_apply_options_t *ao, int32_t *out,
                     bl_error_info_t *e) {
  void *v = NULL;
  size_t l = 0;
  int rc = bl_pool_apply(p, task, &arg, sizeof arg, ao, &v, &l, e);
  if (rc == 0 && out) *out = l == 4 ? t_int(v, l) : -1;
  free(v);
  return rc;
}

Test(pool_claim, sequential_applies_return_their_results) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  for (int32_t i = 0; i < 300; i++) {
    int32_t v = 0;
    cr_assert_eq(apply_int(p, "square", i, NULL, &v, NULL), 0);
    cr_assert_eq(v, i * i);
  }
  cr_assert_eq(bl_pool_close(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_claim, worker_death_during_apply_fails_that_job_once) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_error_info_t e = {0};
  cr_assert_eq(apply_int(p, "die", SIGKILL, NULL, NULL, &e), BL_EWORKERLOST);
  cr_expect(strstr(e.message ? e.message : "", "signal 9 (SIGKILL)") != NULL,
            "message: %s", e.message ? e.message : "(null)");
  bl_error_info_clear(&e);
  /* The replacement serves the next apply. */
  int32_t v = 0;
  cr_assert_eq(apply_int(p, "square", 7, NULL, &v, NULL), 0);
  cr_assert_eq(v, 49);
  /* And an exit without a signal. */
  cr_assert_eq(apply_int(p, "die", 0, NULL, NULL, &e), BL_EWORKERLOST);
  cr_expect(strstr(e.message ? e.message : "", "exitcode 7") != NULL);
  bl_error_info_clear(&e);
  bl_pool_free(&p);
}

Test(pool_claim, hard_limit_reaches_a_blocked_apply) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.time_limit_ms = 100;
  cr_assert_eq(apply_int(p, "sleep", 20000, &ao, NULL, NULL), BL_ETIMELIMIT);
  int32_t v = 0;
  cr_assert_eq(apply_int(p, "square", 3, NULL, &v, NULL), 0);
  cr_assert_eq(v, 9);
  bl_pool_free(&p);
}

Test(pool_claim, soft_limit_reaches_a_blocked_apply) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.soft_time_limit_ms = 100;
  int32_t ms = 20000;
  void *v = NULL;
  size_t l = 0;
  /* The deadline starts from the ACK the caller itself reads. */
  cr_assert_eq(bl_pool_apply(p, "csleep", &ms, sizeof ms, &ao, &v, &l, NULL), 0);
  cr_assert_str_eq((const char *)v, "soft");
  free(v);
  bl_pool_free(&p);
}

struct term_arg {
  bl_pool_t *p;
  int fd;  /* read end: the blocked caller is ready */
};

static void *terminator(void *arg) {
  struct term_arg *t = arg;
  /* Wait until the job has surely started (its pid is known), then let
   * the blocked caller be woken by terminate() alone. */
  char c;
  if (read(t->fd, &c, 1) != 1) return NULL;
  bl_pool_terminate(t->p);
  return NULL;
}

static int tk_started(bl_task_ctx_t *c, const void *a, size_t n) {
  int fd = t_int(a, n);
  (void)c;
  if (write(fd, "s", 1) != 1) return -1;
  t_sleep_ms(20000);
  return 0;
}

Test(pool_claim, terminate_from_another_thread_wakes_a_blocked_apply) {
  bl_register_task("started", tk_started);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  struct term_arg t = {p, fds[0]};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, terminator, &t), 0);
  uint64_t t0 = t_now_ms();
  cr_assert_eq(apply_int(p, "started", fds[1], NULL, NULL, NULL), BL_ETERMINATED);
  cr_expect_lt(t_now_ms() - t0, 15000); /* not the task's 20 s */
  pthread_join(th, NULL);
  close(fds[0]);
  close(fds[1]);
  bl_pool_free(&p);
}

Test(pool_claim, get_timeout_hands_the_pipe_back) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 300, NULL, &r), 0);
  /* The only unit in its worker's pipe: this get claims it, then times out. */
  cr_assert_eq(bl_result_get(r, 20, NULL, NULL, NULL), BL_ETIMEOUT);
  /* The supervisor reads the result now; a plain wait sees it. */
  cr_assert_eq(bl_result_wait(r, 30000), 0);
  cr_assert_eq(bl_result_successful(r), 1);
  bl_result_free(&r);
  /* Queued behind a running job: still delivered. */
  bl_result_t *a = NULL, *b = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 50, NULL, &a), 0);
  cr_assert_eq(t_apply_int(p, "square", 5, NULL, &b), 0);
  int rc;
  cr_assert_eq(t_get_int(b, &rc), 25);
  cr_assert_eq(rc, 0);
  cr_assert_eq(bl_result_wait(a, 30000), 0);
  bl_result_free(&a);
  bl_result_free(&b);
  bl_pool_free(&p);
}

Test(pool_claim, recycled_worker_after_each_apply) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.maxtasksperchild = 1;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  pid_t last = 0;
  for (int i = 0; i < 10; i++) {
    int32_t pid = 0;
    cr_assert_eq(apply_int(p, "pid", 0, NULL, &pid, NULL), 0);
    cr_assert_neq(pid, last, "a recycled worker served twice");
    last = pid;
  }
  cr_assert_eq(bl_pool_close(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

struct mix_arg {
  bl_pool_t *p;
  int bad;
};

static void *async_user(void *arg) {
  struct mix_arg *m = arg;
  for (int32_t i = 0; i < 150; i++) {
    bl_result_t *r = NULL;
    int rc;
    if (t_apply_int(m->p, "square", i, NULL, &r) != 0) {
      m->bad++;
      continue;
    }
    if (t_get_int(r, &rc) != i * i || rc) m->bad++;
    bl_result_free(&r);
  }
  return NULL;
}

Test(pool_claim, blocking_and_async_users_share_a_pool) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct mix_arg m = {p, 0};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, async_user, &m), 0);
  for (int32_t i = 0; i < 150; i++) {
    int32_t v = 0;
    cr_assert_eq(apply_int(p, "square", i + 1000, NULL, &v, NULL), 0);
    cr_assert_eq(v, (i + 1000) * (i + 1000));
  }
  pthread_join(th, NULL);
  cr_assert_eq(m.bad, 0);
  cr_assert_eq(bl_pool_close(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_claim, map_results_of_mixed_lengths) {
  /* Chunks whose items differ in length use an offset table; equal
   * lengths use the stride. */
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 500 };
  static char buf[N][40];
  const void *args[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    int n = snprintf(buf[i], sizeof buf[i], "%d", i * (i % 7 ? 1 : 1000));
    args[i] = buf[i];
    lens[i] = (size_t)n;
  }
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 16;
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map(p, "echo", args, lens, N, &ao, &r, NULL), 0);
  for (int i = 0; i < N; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_result_item(r, (size_t)i, &v, &l), 0);
    cr_assert_eq(l, lens[i]);
    cr_assert_eq(memcmp(v, buf[i], l), 0);
  }
  bl_result_free(&r);
  bl_pool_free(&p);
}
