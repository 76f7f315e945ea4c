/* test_cov_pool.c: worker-side paths the pool suites do not reach: a task
 * registered only after the workers forked, an initializer that returns a
 * value, task-context getters without a context, a result written twice. */
#include <criterion/criterion.h>

#include "helpers.h"
#include "pool_tasks.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(cov_pool, .init = setup, .timeout = 60);

static int tk_late(bl_task_ctx_t *c, const void *a, size_t n) { return tk_echo(c, a, n); }

Test(cov_pool, task_registered_after_fork_is_not_found_in_workers) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  /* The parent knows the name now; the worker (forked before) does not. */
  cr_assert_eq(bl_register_task("late", tk_late), 0);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "late", 1, NULL, &r), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &e), BL_ENOTFOUND);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  /* The worker survived it. */
  int rc;
  cr_assert_eq(t_apply_int(p, "square", 4, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 16);
  bl_result_free(&r);
  bl_pool_free(&p);
}

/* An initializer has no result frame: its return value is kept aside. */
static int tk_init_returns(bl_task_ctx_t *c, const void *a, size_t n) {
  int rc = bl_task_return(c, a, n);
  t_inited = rc == 0 ? 77 : -1;
  return 0;
}
static int tk_twice(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  int32_t first = 1, second = 2;
  if (bl_task_return(c, &first, sizeof first)) return -1;
  return bl_task_return(c, &second, sizeof second); /* the last one wins */
}
static int tk_getters(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  int32_t v = bl_task_job_id(NULL) == 0 && bl_task_index(NULL) == 0 &&
              bl_task_soft_limit_exceeded(NULL) == 0 &&
              bl_task_sleep(NULL, 1) == -EINVAL && bl_task_job_id(c) != 0;
  return bl_task_return(c, &v, sizeof v);
}

Test(cov_pool, initializer_results_and_context_getters) {
  cr_assert_eq(bl_register_task("init_returns", tk_init_returns), 0);
  cr_assert_eq(bl_register_task("twice", tk_twice), 0);
  cr_assert_eq(bl_register_task("getters", tk_getters), 0);
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.initializer = "init_returns";
  int32_t arg = 5;
  o.initarg = &arg;
  o.initarg_len = sizeof arg;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  bl_result_t *r = NULL;
  int rc;
  cr_assert_eq(t_apply_int(p, "inited", 0, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 77, "the initializer ran and its return worked");
  bl_result_free(&r);
  cr_assert_eq(t_apply_int(p, "twice", 0, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 2);
  bl_result_free(&r);
  cr_assert_eq(t_apply_int(p, "getters", 0, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 1);
  bl_result_free(&r);
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

/* More task bytes than a worker's pipe holds while it is busy: the
 * supervisor waits for room (EPOLLOUT) instead of blocking or tearing a
 * frame, and every job completes. */
Test(cov_pool, task_frames_larger_than_the_pipe_wait_for_room) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  enum { N = 12 };
  size_t big = 1 << 20;
  uint8_t *arg = calloc(1, big);
  int32_t ms = 100;
  memcpy(arg, &ms, sizeof ms);
  bl_result_t *r[N] = {0};
  /* The first job sleeps; the rest queue up behind it in the pipe. */
  for (int i = 0; i < N; i++)
    cr_assert_eq(bl_pool_apply_async(p, i ? "noop" : "sleep", arg, big, NULL, &r[i]), 0);
  free(arg);
  for (int i = 0; i < N; i++) {
    cr_expect_eq(bl_result_get(r[i], 60000, NULL, NULL, NULL), 0, "job %d", i);
    bl_result_free(&r[i]);
  }
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#include <sys/wait.h>
#endif

/* supervisor/spawn/mmap: a new worker's shared page cannot be mapped. At
 * start, bl_pool_new fails cleanly; for a replacement, the pool retries
 * and the next job still runs. */
Test(cov_pool, worker_page_mmap_fails_at_start) {
#ifndef FIU_ENABLE
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  fiu_init(0);
  int fds = t_count_fds();
  fiu_enable("supervisor/spawn/mmap", 1, (void *)(intptr_t)ENOMEM, FIU_ONETIME);
  bl_pool_t *p = t_pool(2, 1);
  cr_expect_null(p);
  cr_expect_eq(t_count_fds(), fds);
  cr_expect(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "no child left");
#endif
}

Test(cov_pool, worker_page_mmap_fails_for_a_replacement) {
#ifndef FIU_ENABLE
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  fiu_init(0);
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "die", 0, NULL, &r), 0);
  /* Armed before the loss is seen: the first replacement fails. */
  fiu_enable("supervisor/spawn/mmap", 1, (void *)(intptr_t)ENOMEM, FIU_ONETIME);
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, NULL), BL_EWORKERLOST);
  bl_result_free(&r);
  int rc;
  cr_assert_eq(t_apply_int(p, "square", 5, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 25, "a later replacement runs the job");
  bl_result_free(&r);
  bl_pool_free(&p);
#endif
}
