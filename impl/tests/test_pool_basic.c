/* test_pool_basic.c: submitting work and reading results: apply, map,
 * imap, starmap, chunking, errors, callbacks, result states, pool states,
 * threads = 0 driven from the caller's own epoll loop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <poll.h>
#include <sys/epoll.h>

#include "helpers.h"
#include "pool_tasks.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_basic, .init = setup, .timeout = 60);

Test(pool_basic, apply_async_get_and_result_fields) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_apply_async(p, "echo", "hello", 6, NULL, &r), 0);
  const void *v;
  size_t l;
  cr_assert_eq(bl_result_get(r, 30000, &v, &l, NULL), 0);
  cr_expect_eq(l, 6);
  cr_expect_str_eq(v, "hello");
  cr_expect_eq(bl_result_ready(r), 1);
  cr_expect_eq(bl_result_successful(r), 1);
  cr_expect_eq(bl_result_accepted(r), 1);
  pid_t pids[4];
  int n = bl_pool_pids(p, pids, 4);
  cr_expect_eq(n, 2);
  pid_t wp = bl_result_worker_pid(r);
  cr_expect(wp == pids[0] || wp == pids[1]);
  bl_result_t *r2 = NULL;
  cr_assert_eq(bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r2), 0);
  cr_expect_gt(bl_result_job_id(r2), bl_result_job_id(r));
  cr_expect_eq(bl_result_get(r2, 30000, &v, &l, NULL), 0);
  cr_expect_eq(l, 0);
  bl_result_free(&r);
  bl_result_free(&r2);
  cr_expect_null(r);
  bl_pool_free(&p);
  cr_expect_null(p);
}

Test(pool_basic, apply_blocks_and_copies) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  int32_t x = 7;
  void *v = NULL;
  size_t l = 0;
  cr_assert_eq(bl_pool_apply(p, "square", &x, sizeof x, NULL, &v, &l, NULL), 0);
  cr_expect_eq(l, 4);
  cr_expect_eq(t_int(v, l), 49);
  free(v);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_pool_apply(p, "fail", NULL, 0, NULL, &v, &l, &e), BL_ETASK);
  cr_expect_str_eq(e.type, "ValueError");
  bl_error_info_clear(&e);
  bl_pool_free(&p);
}

static void make_ints(size_t n, int32_t *vals, const void **args, size_t *lens) {
  for (size_t i = 0; i < n; i++) {
    vals[i] = (int32_t)i;
    args[i] = &vals[i];
    lens[i] = sizeof vals[i];
  }
}

Test(pool_basic, map_keeps_order_for_every_chunksize) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 103 };
  int32_t vals[N];
  const void *args[N];
  size_t lens[N];
  make_ints(N, vals, args, lens);
  size_t sizes[] = {0, 1, 2, 7, 64, 200};
  for (size_t s = 0; s < BL__ARRAY_SIZE(sizes); s++) {
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.chunksize = sizes[s];
    bl_result_t *r = NULL;
    cr_assert_eq(bl_pool_map(p, "square", args, lens, N, &ao, &r, NULL), 0);
    cr_assert_eq(bl_result_count(r), N);
    for (size_t i = 0; i < N; i++) {
      const void *v;
      size_t l;
      cr_assert_eq(bl_result_item(r, i, &v, &l), 0);
      cr_assert_eq(t_int(v, l), (int32_t)(i * i), "chunksize %zu item %zu", sizes[s], i);
    }
    cr_expect_eq(bl_result_item(r, N, NULL, NULL), -ERANGE);
    cr_expect_eq(bl_result_accepted(r), 1);
    bl_result_free(&r);
  }
  /* starmap is map over argument blobs */
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_starmap(p, "square", args, lens, 5, NULL, &r, NULL), 0);
  const void *v;
  size_t l;
  cr_expect_eq(bl_result_item(r, 4, &v, &l), 0);
  cr_expect_eq(t_int(v, l), 16);
  bl_result_free(&r);
  cr_assert_eq(bl_pool_starmap_async(p, "square", args, lens, 3, NULL, &r), 0);
  cr_expect_eq(bl_result_get(r, 30000, NULL, &l, NULL), 0);
  cr_expect_eq(l, 3);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_basic, default_chunksize_like_billiard) {
  cr_expect_eq(bl_pool_default_chunksize(8, 2), 1);
  cr_expect_eq(bl_pool_default_chunksize(9, 2), 2);
  cr_expect_eq(bl_pool_default_chunksize(17, 2), 3);
  cr_expect_eq(bl_pool_default_chunksize(100, 2), 13);
  cr_expect_eq(bl_pool_default_chunksize(0, 2), 1);
}

Test(pool_basic, map_empty_is_ready_and_empty) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map(p, "square", NULL, NULL, 0, NULL, &r, NULL), 0);
  cr_expect_eq(bl_result_ready(r), 1);
  cr_expect_eq(bl_result_count(r), 0);
  bl_result_free(&r);
  bl_imap_t *it = NULL;
  cr_assert_eq(bl_pool_imap(p, "square", NULL, NULL, 0, NULL, &it), 0);
  cr_expect_eq(bl_imap_next(it, 1000, NULL, NULL, NULL), BL_EEOF);
  bl_imap_free(&it);
  bl_pool_free(&p);
}

Test(pool_basic, map_error_is_the_failing_chunks) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 10 };
  int32_t vals[N];
  const void *args[N];
  size_t lens[N];
  make_ints(N, vals, args, lens);
  bl_result_t *r = NULL;
  bl_error_info_t e = {0};
  cr_expect_eq(bl_pool_map(p, "fail3", args, lens, N, NULL, &r, &e), BL_ETASK);
  cr_expect_str_eq(e.type, "KeyError");
  cr_expect_str_eq(e.message, "three");
  cr_expect_eq(bl_result_successful(r), 0);
  cr_expect_eq(bl_result_item(r, 0, NULL, NULL), BL_ESTATE);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  /* the pool is fine afterwards */
  cr_expect_eq(bl_pool_map(p, "square", args, lens, N, NULL, &r, NULL), 0);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_basic, task_error_carries_type_message_traceback) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_apply_async(p, "fail", NULL, 0, NULL, &r), 0);
  bl_error_info_t e = {0};
  const void *v = (void *)1;
  cr_expect_eq(bl_result_get(r, 30000, &v, NULL, &e), BL_ETASK);
  cr_expect_null(v);
  cr_expect_eq(e.code, BL_ETASK);
  cr_expect_str_eq(e.type, "ValueError");
  cr_expect_str_eq(e.message, "bad value");
  cr_expect_str_eq(e.traceback, "Traceback: tk_fail");
  cr_expect_eq(bl_result_successful(r), 0);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_basic, imap_in_order_and_unordered_complete) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 50 };
  int32_t vals[N];
  const void *args[N];
  size_t lens[N];
  make_ints(N, vals, args, lens);
  bl_imap_t *it = NULL;
  cr_assert_eq(bl_pool_imap(p, "square", args, lens, N, NULL, &it), 0);
  for (int i = 0; i < N; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_imap_next(it, 30000, &v, &l, NULL), 0);
    cr_assert_eq(t_int(v, l), i * i);
  }
  cr_expect_eq(bl_imap_next(it, 1000, NULL, NULL, NULL), BL_EEOF);
  bl_imap_free(&it);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 3;
  cr_assert_eq(bl_pool_imap_unordered(p, "square", args, lens, N, &ao, &it), 0);
  int seen[N] = {0};
  for (int i = 0; i < N; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_imap_next(it, 30000, &v, &l, NULL), 0);
    int32_t x = t_int(v, l);
    for (int j = 0; j < N; j++)
      if (j * j == x) seen[j]++;
  }
  for (int j = 0; j < N; j++) cr_expect_eq(seen[j], 1);
  cr_expect_eq(bl_imap_next(it, 1000, NULL, NULL, NULL), BL_EEOF);
  cr_expect_eq(bl_result_ready(bl_imap_result(it)), 1);
  bl_imap_free(&it);
  bl_pool_free(&p);
}

Test(pool_basic, imap_failing_item_yields_error_then_continues) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 6 };
  int32_t vals[N];
  const void *args[N];
  size_t lens[N];
  make_ints(N, vals, args, lens);
  bl_imap_t *it = NULL;
  cr_assert_eq(bl_pool_imap(p, "fail3", args, lens, N, NULL, &it), 0);
  for (int i = 0; i < N; i++) {
    const void *v;
    size_t l;
    bl_error_info_t e = {0};
    int rc = bl_imap_next(it, 30000, &v, &l, &e);
    if (i == 3) {
      cr_expect_eq(rc, BL_ETASK);
      cr_expect_str_eq(e.type, "KeyError");
    } else {
      cr_expect_eq(rc, 0);
      cr_expect_eq(t_int(v, l), i * i);
    }
    bl_error_info_clear(&e);
  }
  cr_expect_eq(bl_imap_next(it, 1000, NULL, NULL, NULL), BL_EEOF);
  bl_imap_free(&it);
  bl_pool_free(&p);
}

struct cbs {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ok, err, accepted;
  pid_t accept_pid;
  int accept_mismatch; /* accept pid != that result's worker pid */
  int32_t value;
  int err_code;
  bl_pool_t *pool;
  int nested_rc, join_rc;
  bl_result_t *nested;
};

static void on_ok(bl_result_t *r, const void *v, size_t l, void *u) {
  struct cbs *c = u;
  pthread_mutex_lock(&c->mu);
  c->ok++;
  c->value = t_int(v, l);
  pthread_mutex_unlock(&c->mu);
  cr_assert(bl_result_ready(r)); /* ready before the callback, as billiard */
}
static void on_err(bl_result_t *r, const bl_error_info_t *e, void *u) {
  (void)r;
  struct cbs *c = u;
  pthread_mutex_lock(&c->mu);
  c->err++;
  c->err_code = e->code;
  pthread_mutex_unlock(&c->mu);
}
static void on_accept(bl_result_t *r, pid_t pid, void *u) {
  struct cbs *c = u;
  pthread_mutex_lock(&c->mu);
  c->accepted++;
  c->accept_pid = pid;
  c->accept_mismatch += pid != bl_result_worker_pid(r);
  pthread_mutex_unlock(&c->mu);
}

Test(pool_basic, callbacks_fire_once_with_worker_pid) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct cbs c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = on_ok;
  ao.error_callback = on_err;
  ao.accept_callback = on_accept;
  ao.user = &c;
  bl_result_t *r = NULL, *r2 = NULL;
  cr_assert_eq(t_apply_int(p, "square", 5, &ao, &r), 0);
  cr_assert_eq(bl_pool_apply_async(p, "fail", NULL, 0, &ao, &r2), 0);
  int rc;
  cr_expect_eq(t_get_int(r, &rc), 25);
  cr_expect_eq(bl_result_wait(r2, 30000), 0);
  /* Callbacks run after ready: wait for them by draining the pool. */
  bl_pool_close(p);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  cr_expect_eq(c.ok, 1);
  cr_expect_eq(c.value, 25);
  cr_expect_eq(c.err, 1);
  cr_expect_eq(c.err_code, BL_ETASK);
  cr_expect_eq(c.accepted, 2);
  /* Two workers may accept in either order: check each job's own pid. */
  cr_expect_eq(c.accept_mismatch, 0);
  cr_expect(c.accept_pid == bl_result_worker_pid(r2) ||
            c.accept_pid == bl_result_worker_pid(r));
  bl_result_free(&r);
  bl_result_free(&r2);
  bl_pool_free(&p);
}

/* A callback that submits more work and tries to join: it must not wedge
 * or kill the supervisor; join from the supervisor thread is refused. */
static void on_ok_misbehave(bl_result_t *r, const void *v, size_t l, void *u) {
  (void)r, (void)v, (void)l;
  struct cbs *c = u;
  c->join_rc = bl_pool_join(c->pool, 0);
  c->nested_rc = bl_pool_apply_async(c->pool, "echo", "x", 2, NULL, &c->nested);
  const void *nv;
  /* Blocking inside a callback drives the pool itself. */
  if (c->nested_rc == 0) c->nested_rc = bl_result_get(c->nested, 30000, &nv, NULL, NULL);
  pthread_mutex_lock(&c->mu);
  c->ok++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void fire_and_forget_misbehaving(int threads) {
  bl_pool_t *p = t_pool(2, threads);
  cr_assert_not_null(p);
  struct cbs c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .pool = p};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = on_ok_misbehave;
  ao.user = &c;
  cr_assert_eq(bl_pool_apply_async(p, "noop", NULL, 0, &ao, NULL), 0);
  uint64_t end = t_now_ms() + 30000;
  for (;;) {
    pthread_mutex_lock(&c.mu);
    int ok = c.ok;
    pthread_mutex_unlock(&c.mu);
    if (ok || t_now_ms() > end) break;
    if (threads) {
      pthread_mutex_lock(&c.mu);
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      if (!c.ok) pthread_cond_timedwait(&c.cv, &c.mu, &ts);
      pthread_mutex_unlock(&c.mu);
    } else {
      bl_pool_step(p, 100);
    }
  }
  cr_expect_eq(c.ok, 1);
  cr_expect_eq(c.join_rc, BL_ESTATE); /* RUN, or on the supervisor thread */
  cr_expect_eq(c.nested_rc, 0);
  bl_result_free(&c.nested);
  bl_pool_free(&p);
}

Test(pool_basic, misbehaving_callback_threads) { fire_and_forget_misbehaving(1); }
Test(pool_basic, misbehaving_callback_no_threads) { fire_and_forget_misbehaving(0); }

Test(pool_basic, get_timeout_then_success_and_successful_misuse) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "csleep", 400, NULL, &r), 0);
  cr_expect_eq(bl_result_get(r, 10, NULL, NULL, NULL), BL_ETIMEOUT);
  cr_expect_eq(bl_result_successful(r), BL_ESTATE);
  cr_expect_eq(bl_result_ready(r), 0);
  const void *v;
  cr_expect_eq(bl_result_get(r, 30000, &v, NULL, NULL), 0);
  cr_expect_str_eq(v, "full");
  cr_expect_eq(bl_result_successful(r), 1);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_basic, state_errors) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  cr_expect_eq(bl_pool_state(p), BL_POOL_RUN);
  cr_expect_eq(bl_pool_maintain_pool(p), 0);
  cr_expect_eq(bl_pool_error(p, NULL), 0);
  cr_expect_eq(bl_pool_join(p, 0), BL_ESTATE);
  cr_expect_eq(bl_pool_apply_async(p, "nope", NULL, 0, NULL, NULL), BL_ENOTFOUND);
  cr_expect_eq(bl_pool_close(p), 0);
  cr_expect_eq(bl_pool_close(p), 0);
  cr_expect_eq(bl_pool_state(p), BL_POOL_CLOSE);
  bl_result_t *r = (bl_result_t *)1;
  cr_expect_eq(bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r), BL_ENOTRUNNING);
  cr_expect_eq(bl_pool_map_async(p, "noop", NULL, NULL, 0, NULL, &r), BL_ENOTRUNNING);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  cr_expect_eq(bl_pool_terminate(p), 0);
  cr_expect_eq(bl_pool_state(p), BL_POOL_TERMINATE);
  cr_expect_eq(bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r), BL_ENOTRUNNING);
  bl_pool_free(&p);

  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.size = 3;
  cr_expect_eq(bl_pool_new(&p, &o), -EINVAL);
  bl_pool_options_init(&o);
  o.reserved[1] = 1;
  cr_expect_eq(bl_pool_new(&p, &o), -EINVAL);
  bl_pool_options_init(&o);
  o.initializer = "nope";
  cr_expect_eq(bl_pool_new(&p, &o), BL_ENOTFOUND);
  bl_pool_options_init(&o);
  cr_expect_eq(o.threads, 1);
  cr_expect_eq(o.lost_worker_timeout_ms, 10000);
}

Test(pool_basic, initializer_runs_in_each_worker) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.initializer = "init_ok";
  int32_t arg = 42;
  o.initarg = &arg;
  o.initarg_len = sizeof arg;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  for (int i = 0; i < 4; i++) {
    bl_result_t *r = NULL;
    int rc;
    cr_assert_eq(bl_pool_apply_async(p, "inited", NULL, 0, NULL, &r), 0);
    cr_expect_eq(t_get_int(r, &rc), 42);
    bl_result_free(&r);
  }
  bl_pool_free(&p);
}

/* threads = 0: the caller's own epoll loop watches bl_pool_fd(). */
Test(pool_basic, threads_false_driven_by_callers_epoll) {
  bl_pool_t *p = t_pool(2, 0);
  cr_assert_not_null(p);
  int pfd = bl_pool_fd(p);
  cr_assert_geq(pfd, 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &e), 0);
  enum { N = 20 };
  bl_result_t *r[N];
  for (int i = 0; i < N; i++) cr_assert_eq(t_apply_int(p, "square", i, NULL, &r[i]), 0);
  int done = 0;
  uint64_t end = t_now_ms() + 30000;
  while (done < N && t_now_ms() < end) {
    struct epoll_event got;
    if (epoll_wait(ep, &got, 1, 1000) == 1) cr_assert_geq(bl_pool_step(p, 0), 0);
    done = 0;
    for (int i = 0; i < N; i++) done += bl_result_ready(r[i]);
  }
  cr_assert_eq(done, N);
  for (int i = 0; i < N; i++) {
    int rc;
    cr_expect_eq(t_get_int(r[i], &rc), i * i);
    bl_result_free(&r[i]);
  }
  /* Blocking calls drive the pool themselves. */
  bl_result_t *x = NULL;
  cr_assert_eq(t_apply_int(p, "square", 9, NULL, &x), 0);
  int rc;
  cr_expect_eq(t_get_int(x, &rc), 81);
  bl_result_free(&x);
  cr_expect_eq(bl_pool_close(p), 0);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  close(ep);
  bl_pool_free(&p);
}

Test(pool_basic, threaded_pool_rejects_step_and_fd) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  cr_expect_eq(bl_pool_fd(p), -EINVAL);
  cr_expect_eq(bl_pool_step(p, 0), -EINVAL);
  bl_pool_free(&p);
}

Test(pool_basic, many_small_jobs_all_resolve) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  int n = t_under_valgrind() ? 200 : 20000;
  bl_result_t **r = calloc((size_t)n, sizeof *r);
  for (int i = 0; i < n; i++) cr_assert_eq(t_apply_int(p, "square", i % 1000, NULL, &r[i]), 0);
  for (int i = 0; i < n; i++) {
    int rc;
    cr_assert_eq(t_get_int(r[i], &rc), (i % 1000) * (i % 1000));
    bl_result_free(&r[i]);
  }
  free(r);
  bl_pool_free(&p);
}

struct sub {
  bl_pool_t *p;
  int n, bad;
};
static void *submitter(void *arg) {
  struct sub *s = arg;
  for (int i = 0; i < s->n; i++) {
    bl_result_t *r = NULL;
    int rc;
    if (t_apply_int(s->p, "square", i % 100, NULL, &r) != 0 ||
        t_get_int(r, &rc) != (i % 100) * (i % 100))
      s->bad++;
    bl_result_free(&r);
  }
  return NULL;
}

static void concurrent(int threads_mode) {
  bl_pool_t *p = t_pool(2, threads_mode);
  cr_assert_not_null(p);
  enum { T = 4 };
  pthread_t th[T];
  struct sub s[T];
  for (int i = 0; i < T; i++) {
    s[i] = (struct sub){p, t_under_valgrind() ? 20 : 2000, 0};
    cr_assert_eq(pthread_create(&th[i], NULL, submitter, &s[i]), 0);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    cr_expect_eq(s[i].bad, 0, "thread %d", i);
  }
  bl_pool_free(&p);
}

/* Several threads submit and block at once; with threads = 0 they take
 * turns driving the pool. */
Test(pool_basic, concurrent_submitters_threads) { concurrent(1); }
Test(pool_basic, concurrent_submitters_no_threads) { concurrent(0); }

/* Callbacks of jobs resolved outside a step (at submission, or by
 * terminate_job while queued) run promptly: the driver is woken. */
static void prompt_ok(bl_result_t *r, const void *v, size_t l, void *user) {
  (void)r, (void)v, (void)l;
  char b = 'o';
  if (write(*(int *)user, &b, 1) != 1) abort();
}
static void prompt_err(bl_result_t *r, const bl_error_info_t *e, void *user) {
  (void)r, (void)e;
  char b = 'e';
  if (write(*(int *)user, &b, 1) != 1) abort();
}

static char wait_byte(int fd, int ms) {
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  char b = 0;
  if (poll(&pf, 1, ms) == 1 && read(fd, &b, 1) != 1) b = 0;
  return b;
}

Test(pool_basic, empty_map_async_callback_runs_promptly_threads) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  int pp[2];
  cr_assert_eq(pipe(pp), 0);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = prompt_ok;
  ao.user = &pp[1];
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map_async(p, "square", NULL, NULL, 0, &ao, &r), 0);
  cr_expect_eq(bl_result_ready(r), 1);
  /* The supervisor has nothing else to wake it: only the fix delivers. */
  cr_expect_eq(wait_byte(pp[0], 10000), 'o');
  bl_result_free(&r);
  bl_pool_free(&p);
  close(pp[0]);
  close(pp[1]);
}

Test(pool_basic, empty_map_async_callback_runs_promptly_no_threads) {
  bl_pool_t *p = t_pool(1, 0);
  cr_assert_not_null(p);
  int pp[2];
  cr_assert_eq(pipe(pp), 0);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = prompt_ok;
  ao.user = &pp[1];
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map_async(p, "square", NULL, NULL, 0, &ao, &r), 0);
  /* The caller's loop learns through the pool fd that a step is due. */
  struct pollfd pf = {.fd = bl_pool_fd(p), .events = POLLIN};
  cr_assert_eq(poll(&pf, 1, 10000), 1);
  cr_assert_geq(bl_pool_step(p, 0), 0);
  cr_expect_eq(wait_byte(pp[0], 0), 'o');
  bl_result_free(&r);
  bl_pool_free(&p);
  close(pp[0]);
  close(pp[1]);
}

Test(pool_basic, terminate_queued_job_error_callback_runs_promptly) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  int pp[2];
  cr_assert_eq(pipe(pp), 0);
  bl_result_t *busy = NULL, *q = NULL;
  /* Occupies the only worker far longer than we wait below. */
  cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &busy), 0);
  uint64_t end = t_now_ms() + 10000;
  while (!bl_result_accepted(busy) && t_now_ms() < end) bl_result_wait(busy, 10);
  cr_assert_eq(bl_result_accepted(busy), 1);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.error_callback = prompt_err;
  ao.user = &pp[1];
  cr_assert_eq(bl_pool_apply_async(p, "noop", NULL, 0, &ao, &q), 0);
  /* No event tells when the supervisor has handled the submission and gone
   * back to sleep; give it time, or its wake-up would deliver anyway. */
  t_sleep_ms(200);
  cr_assert_eq(bl_pool_terminate_job(p, q, 0), 0);
  cr_expect_eq(bl_result_ready(q), 1);
  cr_expect_eq(wait_byte(pp[0], 10000), 'e');
  bl_result_free(&q);
  bl_result_free(&busy);
  bl_pool_free(&p);
  close(pp[0]);
  close(pp[1]);
}

/* Blocking map encodes straight from the caller's arrays: once it returns
 * (here early, on a failing chunk, with most chunks still queued) nothing
 * may read them again. The arrays are freed and poisoned; ASan/valgrind
 * would see a late read, and the later jobs must still be right. */
Test(pool_basic, blocking_map_never_reads_args_after_return) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 2000 };
  int32_t **vals = malloc(N * sizeof *vals);
  const void **args = malloc(N * sizeof *args);
  size_t *lens = malloc(N * sizeof *lens);
  cr_assert(vals && args && lens);
  for (int i = 0; i < N; i++) {
    vals[i] = malloc(sizeof **vals);
    cr_assert_not_null(vals[i]);
    *vals[i] = i;
    args[i] = vals[i];
    lens[i] = sizeof **vals;
  }
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  bl_result_t *r = NULL;
  cr_expect_eq(bl_pool_map(p, "fail3", args, lens, N, &ao, &r, NULL), BL_ETASK);
  for (int i = 0; i < N; i++) {
    *vals[i] = 3; /* a late read would fail more items, or touch freed memory */
    free(vals[i]);
  }
  memset(lens, 0xff, N * sizeof *lens);
  free(vals);
  free(args);
  free(lens);
  for (int i = 0; i < 20; i++) {
    bl_result_t *x = NULL;
    int rc;
    cr_assert_eq(t_apply_int(p, "square", i, NULL, &x), 0);
    cr_expect_eq(t_get_int(x, &rc), i * i);
    bl_result_free(&x);
  }
  bl_result_free(&r);
  bl_pool_free(&p);
}

static unsigned worker_no(bl_pool_t *p, pid_t pid) {
  char name[64];
  unsigned n = 0;
  if (bl_pool_worker_name(p, pid, name, sizeof name) != 0) return 0;
  if (sscanf(name, "ForkPoolWorker-%u", &n) != 1) return 0;
  return n;
}

Test(pool_basic, worker_names_like_billiard_continue_across_pools) {
  bl_pool_t *a = t_pool(2, 1);
  cr_assert_not_null(a);
  pid_t pa[2];
  cr_assert_eq(bl_pool_pids(a, pa, 2), 2);
  unsigned a0 = worker_no(a, pa[0]), a1 = worker_no(a, pa[1]);
  cr_expect_gt(a0, 0);
  cr_expect_gt(a1, 0);
  cr_expect_neq(a0, a1);
  bl_pool_t *b = t_pool(1, 0);
  cr_assert_not_null(b);
  pid_t pb;
  cr_assert_eq(bl_pool_pids(b, &pb, 1), 1);
  unsigned b0 = worker_no(b, pb);
  cr_expect_gt(b0, a0 > a1 ? a0 : a1); /* one counter per process */
  char small[8];
  cr_expect_eq(bl_pool_worker_name(a, pa[0], small, sizeof small), -ERANGE);
  cr_expect_eq(bl_pool_worker_name(a, pb, small, sizeof small), -ESRCH);
  cr_expect_eq(bl_pool_worker_name(a, pa[0], NULL, 0), -EINVAL);
  bl_pool_free(&b);
  bl_pool_free(&a);
}
