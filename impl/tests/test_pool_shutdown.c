/* test_pool_shutdown.c: close + join waits for all work and returns
 * promptly; terminate resolves every pending job; nothing leaks (fds,
 * zombies, threads); free without join. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/wait.h>

#include "helpers.h"
#include "pool_tasks.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_shutdown, .init = setup, .timeout = 60);

static int count_threads(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static int no_children(void) {
  /* Every worker reaped: no child (zombie or alive) is left. */
  return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

Test(pool_shutdown, close_join_waits_for_pending_work) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 30 };
  bl_result_t *r[N];
  for (int i = 0; i < N; i++) cr_assert_eq(t_apply_int(p, i % 5 ? "square" : "sleep", i % 5 ? i : 20, NULL, &r[i]), 0);
  cr_assert_eq(bl_pool_close(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  for (int i = 0; i < N; i++) {
    cr_expect(bl_result_ready(r[i]), "job %d", i);
    cr_expect_eq(bl_result_successful(r[i]), 1);
    bl_result_free(&r[i]);
  }
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 0);
  cr_expect(no_children());
  bl_pool_free(&p);
}

Test(pool_shutdown, close_join_idle_is_prompt) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  uint64_t t0 = t_now_ms();
  cr_assert_eq(bl_pool_close(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  /* loose sanity bound (billiard: always >= 1 s) */
  cr_expect_lt(t_now_ms() - t0, t_under_valgrind() ? 10000 : 900);
  bl_pool_free(&p);
}

static void terminate_pending(int threads) {
  bl_pool_t *p = t_pool(2, threads);
  cr_assert_not_null(p);
  enum { N = 10 };
  bl_result_t *r[N];
  for (int i = 0; i < N; i++) cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &r[i]), 0);
  cr_assert_eq(bl_result_wait(r[0], 100), BL_ETIMEOUT);
  cr_assert_eq(bl_pool_terminate(p), 0);
  for (int i = 0; i < N; i++) {
    bl_error_info_t e = {0};
    cr_expect_eq(bl_result_get(r[i], 0, NULL, NULL, &e), BL_ETERMINATED, "job %d", i);
    cr_expect_str_eq(e.message, "Pool terminated");
    bl_error_info_clear(&e);
    bl_result_free(&r[i]);
  }
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 0);
  cr_expect(no_children());
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_shutdown, terminate_resolves_every_job_threads) { terminate_pending(1); }
Test(pool_shutdown, terminate_resolves_every_job_no_threads) { terminate_pending(0); }

struct counter {
  int ok, err;
};
static void c_ok(bl_result_t *r, const void *v, size_t l, void *u) {
  (void)r, (void)v, (void)l;
  ((struct counter *)u)->ok++;
}
static void c_err(bl_result_t *r, const bl_error_info_t *e, void *u) {
  (void)r, (void)e;
  ((struct counter *)u)->err++;
}

/* Fire-and-forget jobs with callbacks: each resolves exactly once. */
Test(pool_shutdown, every_job_resolved_exactly_once_via_callbacks) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct counter c = {0};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = c_ok;
  ao.error_callback = c_err;
  ao.user = &c; /* callbacks all run on the supervisor thread */
  for (int i = 0; i < 10; i++) cr_assert_eq(t_apply_int(p, "square", i, &ao, NULL), 0);
  cr_assert_eq(t_apply_int(p, "die", SIGKILL, &ao, NULL), 0);
  for (int i = 0; i < 6; i++) cr_assert_eq(t_apply_int(p, "sleep", 20000, &ao, NULL), 0);
  /* let the quick ones finish, then terminate the rest */
  bl_result_t *probe = NULL;
  cr_assert_eq(t_apply_int(p, "square", 1, NULL, &probe), 0);
  bl_result_free(&probe);
  cr_assert_eq(bl_pool_terminate(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  cr_expect_eq(c.ok + c.err, 17);
  bl_pool_free(&p);
}

Test(pool_shutdown, no_fd_zombie_or_thread_leak) {
  int fds = t_count_fds();
  int threads = count_threads();
  for (int round = 0; round < 2; round++) {
    bl_pool_t *p = t_pool(2, round);
    cr_assert_not_null(p);
    bl_result_t *r = NULL;
    int rc;
    cr_assert_eq(t_apply_int(p, "square", 3, NULL, &r), 0);
    cr_expect_eq(t_get_int(r, &rc), 9);
    bl_result_free(&r);
    cr_assert_eq(t_apply_int(p, "die", SIGKILL, NULL, &r), 0);
    cr_expect_eq(bl_result_wait(r, 30000), 0);
    bl_result_free(&r);
    if (round) {
      bl_pool_close(p);
      cr_assert_eq(bl_pool_join(p, 30000), 0);
    }
    bl_pool_free(&p);
  }
  cr_expect_eq(t_count_fds(), fds);
  cr_expect_eq(count_threads(), threads);
  cr_expect(no_children());
}

Test(pool_shutdown, free_without_close_terminates) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &r), 0);
  bl_pool_free(&p);
  /* the result outlives its pool, resolved */
  cr_expect_eq(bl_result_get(r, 0, NULL, NULL, NULL), BL_ETERMINATED);
  bl_result_free(&r);
  cr_expect(no_children());
}

/* on_process_exit runs in each worker before a normal exit; it reports
 * through a pipe the workers inherited. */
static void exit_report(pid_t pid, int code, void *u) {
  int fd = *(int *)u;
  int32_t rec[2] = {(int32_t)pid, code};
  if (write(fd, rec, sizeof rec) != (ssize_t)sizeof rec) _exit(3);
}

Test(pool_shutdown, on_process_exit_runs_in_worker) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.on_process_exit = exit_report;
  o.user = &fds[1];
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  pid_t pids[2];
  cr_assert_eq(bl_pool_pids(p, pids, 2), 2);
  cr_assert_eq(bl_pool_close(p), 0);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  close(fds[1]);
  int32_t rec[2];
  int n = 0;
  while (read(fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
    cr_expect(rec[0] == pids[0] || rec[0] == pids[1]);
    cr_expect_eq(rec[1], 0);
    n++;
  }
  cr_expect_eq(n, 2);
  close(fds[0]);
  bl_pool_free(&p);
}

/* A callback that terminates the pool from the supervisor thread. */
static void terminate_from_cb(bl_result_t *r, const void *v, size_t l, void *u) {
  (void)r, (void)v, (void)l;
  int *rc = (int *)((void **)u)[1];
  *rc = bl_pool_terminate((bl_pool_t *)((void **)u)[0]);
}

static void terminate_in_callback(int threads) {
  bl_pool_t *p = t_pool(2, threads);
  cr_assert_not_null(p);
  int trc = 1;
  void *ctx[2] = {p, &trc};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = terminate_from_cb;
  ao.user = ctx;
  bl_result_t *slow[2], *first = NULL;
  for (int i = 0; i < 2; i++) cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &slow[i]), 0);
  for (int i = 0; i < 2; i++)
    while (!bl_result_accepted(slow[i])) cr_assert_eq(bl_result_wait(slow[i], 5), BL_ETIMEOUT);
  cr_assert_eq(bl_pool_grow(p, 1), 0); /* a free worker for the quick job */
  cr_assert_eq(t_apply_int(p, "square", 2, &ao, &first), 0);
  cr_expect_eq(bl_result_wait(first, 30000), 0);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(bl_result_get(slow[i], 30000, NULL, NULL, NULL), BL_ETERMINATED);
    bl_result_free(&slow[i]);
  }
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  cr_expect_eq(trc, 0);
  cr_expect_eq(bl_pool_state(p), BL_POOL_TERMINATE);
  bl_result_free(&first);
  bl_pool_free(&p);
  cr_expect(no_children());
}

Test(pool_shutdown, terminate_from_callback_threads) { terminate_in_callback(1); }
Test(pool_shutdown, terminate_from_callback_no_threads) { terminate_in_callback(0); }
