/* test_pool_limits.c: soft and hard time limits (supervisor clock, stamped
 * at ACK), injected clock jumps, recycling by maxtasksperchild and memory,
 * terminate_job (by job and fenced by pid), grow/shrink/restart. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "poolint.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_limits, .init = setup, .timeout = 60);

static bl_pool_t *pool_with(unsigned n, void (*tweak)(bl_pool_options_t *, void *),
                            void *arg) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = n;
  if (tweak) tweak(&o, arg);
  bl_pool_t *p = NULL;
  return bl_pool_new(&p, &o) == 0 ? p : NULL;
}

static void soft100(bl_pool_options_t *o, void *a) {
  (void)a;
  o->soft_time_limit_ms = 100;
}

Test(pool_limits, soft_limit_handled_task_returns_result) {
  bl_pool_t *p = pool_with(1, soft100, NULL);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "csleep", 20000, NULL, &r), 0);
  const void *v;
  cr_expect_eq(bl_result_get(r, 30000, &v, NULL, NULL), 0);
  cr_expect_str_eq(v, "soft");
  bl_result_free(&r);
  /* the worker survives a soft limit */
  cr_assert_eq(t_apply_int(p, "csleep", 1, NULL, &r), 0);
  cr_expect_eq(bl_result_get(r, 30000, &v, NULL, NULL), 0);
  cr_expect_str_eq(v, "full");
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_limits, soft_limit_ignored_fails_job_worker_survives) {
  bl_pool_t *p = pool_with(1, soft100, NULL);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 400, NULL, &r), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &e), BL_ESOFTTIMELIMIT);
  cr_expect_str_eq(bl_error_info_type(&e), "SoftTimeLimitExceeded");
  pid_t pid = bl_result_worker_pid(r);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  int rc;
  cr_assert_eq(t_apply_int(p, "pid", 0, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), pid);
  bl_result_free(&r);
  bl_pool_free(&p);
}

struct tev {
  pthread_mutex_t mu;
  int set, cancel;
  uint32_t soft, hard;
  uint64_t job;
};
static void on_tset(bl_pool_t *p, uint64_t job, uint32_t s, uint32_t h, void *u) {
  (void)p;
  struct tev *t = u;
  pthread_mutex_lock(&t->mu);
  t->set++;
  t->soft = s;
  t->hard = h;
  t->job = job;
  pthread_mutex_unlock(&t->mu);
}
static void on_tcancel(bl_pool_t *p, uint64_t job, void *u) {
  (void)p;
  struct tev *t = u;
  pthread_mutex_lock(&t->mu);
  if (job == t->job) t->cancel++;
  pthread_mutex_unlock(&t->mu);
}
static void hard_cb(bl_pool_options_t *o, void *a) {
  o->on_timeout_set = on_tset;
  o->on_timeout_cancel = on_tcancel;
  o->user = a;
}

Test(pool_limits, hard_limit_fails_job_and_replaces_worker) {
  struct tev t = {.mu = PTHREAD_MUTEX_INITIALIZER};
  bl_pool_t *p = pool_with(1, hard_cb, &t);
  cr_assert_not_null(p);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.time_limit_ms = 200; /* per-job override; the pool has none */
  ao.soft_time_limit_ms = 100;
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 20000, &ao, &r), 0);
  bl_error_info_t e = {0};
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &e), BL_ETIMELIMIT);
  cr_expect_lt(t_now_ms() - t0, 15000); /* loose: it did not run to the end */
  cr_expect_str_eq(bl_error_info_type(&e), "TimeLimitExceeded");
  cr_expect_str_eq(e.message, "TimeLimitExceeded(0.2,)");
  pid_t old = bl_result_worker_pid(r);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  int rc;
  cr_assert_eq(t_apply_int(p, "pid", 0, NULL, &r), 0);
  pid_t now = t_get_int(r, &rc);
  cr_expect_eq(rc, 0);
  cr_expect_neq(now, old);
  bl_result_free(&r);
  bl_pool_close(p);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  cr_expect_eq(t.set, 1);
  cr_expect_eq(t.soft, 100);
  cr_expect_eq(t.hard, 200);
  cr_expect_eq(t.cancel, 1);
  bl_pool_free(&p);
}

Test(pool_limits, hard_limit_on_map_chunk) {
  bl_pool_t *p = pool_with(2, NULL, NULL);
  cr_assert_not_null(p);
  int32_t ms[3] = {1, 20000, 1};
  const void *args[3] = {&ms[0], &ms[1], &ms[2]};
  size_t lens[3] = {4, 4, 4};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.time_limit_ms = 200;
  ao.chunksize = 1;
  bl_result_t *r = NULL;
  cr_expect_eq(bl_pool_map(p, "sleep", args, lens, 3, &ao, &r, NULL), BL_ETIMELIMIT);
  bl_result_free(&r);
  bl_pool_free(&p);
}

static bl_offset_clock_t oclock;
static void with_clock(bl_pool_options_t *o, void *a) {
  (void)a;
  bl_offset_clock_init(&oclock);
  o->clock = &oclock.clock;
  o->time_limit_ms = 60000;
}

/* The limits run on the pool's injected monotonic clock: a jump of that
 * clock (skew) past the deadline fires the hard limit now. */
Test(pool_limits, injected_clock_jump_fires_hard_limit) {
  bl_pool_t *p = pool_with(1, with_clock, NULL);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 30000, NULL, &r), 0);
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_accepted(r) && t_now_ms() < end) bl_result_wait(r, 5);
  cr_assert(bl_result_accepted(r));
  cr_expect_eq(bl_result_get(r, 300, NULL, NULL, NULL), BL_ETIMEOUT);
  bl_offset_clock_jump(&oclock, 120 * (int64_t)BL__NS_PER_S);
  bl_pool_wakeup(p);
  cr_expect_eq(bl_result_get(r, 20000, NULL, NULL, NULL), BL_ETIMELIMIT);
  bl_result_free(&r);
  bl_pool_free(&p);
}

static void maxtasks2(bl_pool_options_t *o, void *a) {
  (void)a;
  o->maxtasksperchild = 2;
}

Test(pool_limits, maxtasksperchild_recycles_without_loss) {
  bl_pool_t *p = pool_with(1, maxtasks2, NULL);
  cr_assert_not_null(p);
  int n = t_under_valgrind() ? 4 : 10;
  pid_t pids[10];
  for (int i = 0; i < n; i++) {
    bl_result_t *r = NULL;
    int rc;
    cr_assert_eq(t_apply_int(p, "pid", 0, NULL, &r), 0);
    pids[i] = t_get_int(r, &rc);
    cr_assert_eq(rc, 0);
    bl_result_free(&r);
  }
  for (int i = 0; i + 1 < n; i += 2) {
    cr_expect_eq(pids[i], pids[i + 1]);
    if (i + 2 < n) cr_expect_neq(pids[i], pids[i + 2]);
  }
  bl_pool_free(&p);
}

static void mem_limit(bl_pool_options_t *o, void *a) {
  (void)a;
  o->max_memory_per_child_kib = bl__rss_kib() + 64 * 1024; /* parent + 64 MiB */
}

Test(pool_limits, memory_limit_recycles_after_task) {
  bl_pool_t *p = pool_with(1, mem_limit, NULL);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  int rc;
  cr_assert_eq(t_apply_int(p, "alloc", 1, NULL, &r), 0);
  pid_t a = t_get_int(r, &rc);
  bl_result_free(&r);
  cr_assert_eq(t_apply_int(p, "alloc", 1, NULL, &r), 0);
  pid_t b = t_get_int(r, &rc);
  bl_result_free(&r);
  cr_expect_eq(a, b); /* small: no recycling */
  cr_assert_eq(t_apply_int(p, "alloc", 128, NULL, &r), 0);
  pid_t c = t_get_int(r, &rc);
  cr_expect_eq(rc, 0); /* its result is delivered, then it recycles */
  bl_result_free(&r);
  cr_assert_eq(t_apply_int(p, "pid", 0, NULL, &r), 0);
  pid_t d = t_get_int(r, &rc);
  bl_result_free(&r);
  cr_expect_eq(c, b);
  cr_expect_neq(d, c);
  bl_pool_free(&p);
}

static void wait_accepted(bl_result_t *r) {
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_accepted(r) && t_now_ms() < end) bl_result_wait(r, 5);
  cr_assert(bl_result_accepted(r));
}

Test(pool_limits, terminate_job_running_and_queued) {
  bl_pool_t *p = pool_with(1, NULL, NULL);
  cr_assert_not_null(p);
  bl_result_t *run = NULL, *queued = NULL, *after = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &run), 0);
  wait_accepted(run);
  cr_assert_eq(t_apply_int(p, "square", 3, NULL, &queued), 0);
  cr_assert_eq(t_apply_int(p, "square", 4, NULL, &after), 0);
  cr_expect_eq(bl_pool_terminate_job(p, queued, 0), 0);
  cr_expect_eq(bl_result_get(queued, 0, NULL, NULL, NULL), BL_ETERMINATED);
  cr_expect_eq(bl_pool_terminate_job(p, run, SIGKILL), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(run, 30000, NULL, NULL, &e), BL_ETERMINATED);
  cr_expect_str_eq(e.message, "9");
  cr_expect_str_eq(bl_error_info_type(&e), "Terminated");
  bl_error_info_clear(&e);
  int rc;
  cr_expect_eq(t_get_int(after, &rc), 16);
  cr_expect_eq(bl_pool_terminate_job(p, after, 0), 0); /* done: no-op */
  bl_result_free(&run);
  bl_result_free(&queued);
  bl_result_free(&after);
  bl_pool_free(&p);
}

Test(pool_limits, terminate_job_pid_is_fenced_on_job) {
  bl_pool_t *p = pool_with(1, NULL, NULL);
  cr_assert_not_null(p);
  bl_result_t *run = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &run), 0);
  wait_accepted(run);
  pid_t pid = bl_result_worker_pid(run);
  uint64_t job = bl_result_job_id(run);
  cr_expect_eq(bl_pool_terminate_job_pid(p, pid, job + 1, SIGTERM), -ESRCH);
  cr_expect_eq(bl_pool_terminate_job_pid(p, pid + 100000, job, SIGTERM), -ESRCH);
  cr_expect_eq(bl_result_get(run, 100, NULL, NULL, NULL), BL_ETIMEOUT);
  cr_expect_eq(bl_pool_terminate_job_pid(p, pid, job, SIGTERM), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(run, 30000, NULL, NULL, &e), BL_ETERMINATED);
  cr_expect_str_eq(e.message, "15");
  bl_error_info_clear(&e);
  bl_result_free(&run);
  bl_pool_free(&p);
}

struct ups {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int up;
};
static void count_up(bl_pool_t *p, pid_t pid, void *u) {
  (void)p, (void)pid;
  struct ups *c = u;
  pthread_mutex_lock(&c->mu);
  c->up++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

Test(pool_limits, grow_shrink_restart) {
  struct ups ups = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.allow_restart = 1;
  o.on_process_up = count_up;
  o.user = &ups;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  cr_expect_eq(bl_pool_grow(p, 2), 0);
  cr_expect_eq(bl_pool_size(p), 3);
  bl_result_t *r = NULL;
  int rc;
  pthread_mutex_lock(&ups.mu);
  while (ups.up < 3) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    if (pthread_cond_timedwait(&ups.cv, &ups.mu, &ts) != 0) break;
  }
  pthread_mutex_unlock(&ups.mu);
  cr_expect_eq(ups.up, 3);
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 3);
  cr_expect_eq(bl_pool_shrink(p, 2), 0);
  cr_expect_eq(bl_pool_size(p), 1);
  /* one busy worker left: shrinking it is refused */
  cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &r), 0);
  wait_accepted(r);
  uint64_t end = t_now_ms() + 30000;
  while (bl_pool_pids(p, NULL, 0) > 1 && t_now_ms() < end) bl_result_wait(r, 5);
  cr_expect_eq(bl_pool_shrink(p, 1), -EBUSY);
  cr_expect_eq(bl_pool_terminate_job(p, r, SIGKILL), 0);
  bl_result_wait(r, 30000);
  bl_result_free(&r);
  /* restart: every worker replaced once it is idle */
  pid_t before[4];
  cr_assert_eq(bl_pool_pids(p, before, 4), 1);
  cr_expect_eq(bl_pool_restart(p), 0);
  cr_assert_eq(t_apply_int(p, "pid", 0, NULL, &r), 0);
  pid_t after = t_get_int(r, &rc);
  cr_expect_eq(rc, 0);
  cr_expect_neq(after, before[0]);
  bl_result_free(&r);
  bl_pool_free(&p);
  bl_pool_options_init(&o);
  o.processes = 1;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  cr_expect_eq(bl_pool_restart(p), BL_ESTATE); /* allow_restart = 0 */
  bl_pool_free(&p);
}

/* threads = 0: the pool's fd becomes readable when a deadline is due
 * (timerfd), so a caller's loop fires the hard limit without polling. */
Test(pool_limits, hard_limit_in_callers_loop_threads_false) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.threads = 0;
  o.time_limit_ms = 200;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &r), 0);
  struct pollfd pfd = {.fd = bl_pool_fd(p), .events = POLLIN};
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_ready(r) && t_now_ms() < end)
    if (poll(&pfd, 1, 5000) == 1) cr_assert_geq(bl_pool_step(p, 0), 0);
  cr_expect_eq(bl_result_get(r, 0, NULL, NULL, NULL), BL_ETIMELIMIT);
  bl_result_free(&r);
  bl_pool_free(&p);
}

/* A task that leads its own process group and forks a helper: the hard
 * limit kills the whole group (billiard's killpg), so the helper dies too. */
static int g_pidpipe = -1;
static int tk_group_hang(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c, (void)a, (void)n;
  setpgid(0, 0);
  /* No parent-death signal: only the group kill may end it. */
  pid_t kid = bl__fork(0);
  if (kid == 0) {
    for (;;) pause();
  }
  int32_t v = (int32_t)kid;
  if (write(g_pidpipe, &v, sizeof v) != sizeof v) bl__child_exit(3);
  for (;;) pause();
}

Test(pool_limits, hard_limit_kills_the_workers_process_group) {
  if (t_under_valgrind()) cr_skip_test("no pidfds for a grandchild under valgrind");
  int pp[2];
  cr_assert_eq(pipe(pp), 0);
  g_pidpipe = pp[1]; /* inherited by the workers forked below */
  bl_register_task("group_hang", tk_group_hang);
  bl_pool_t *p = pool_with(1, NULL, NULL);
  cr_assert_not_null(p);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.time_limit_ms = 300;
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_apply_async(p, "group_hang", NULL, 0, &ao, &r), 0);
  int32_t kid = 0;
  struct pollfd pf = {.fd = pp[0], .events = POLLIN};
  cr_assert_eq(poll(&pf, 1, 30000), 1);
  cr_assert_eq(read(pp[0], &kid, sizeof kid), (ssize_t)sizeof kid);
  cr_assert_gt(kid, 0);
  int kfd = (int)syscall(SYS_pidfd_open, (pid_t)kid, 0);
  cr_assert_geq(kfd, 0);
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, NULL), BL_ETIMELIMIT);
  /* the helper, not our child, is gone: its pidfd turns readable */
  struct pollfd kf = {.fd = kfd, .events = POLLIN};
  int gone = poll(&kf, 1, 30000) == 1;
  if (!gone) syscall(SYS_pidfd_send_signal, kfd, SIGKILL, NULL, 0); /* ours */
  cr_expect(gone, "the task's child survived the hard limit");
  close(kfd);
  bl_result_free(&r);
  bl_pool_free(&p);
  close(pp[0]);
  close(pp[1]);
}
