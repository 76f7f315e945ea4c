/* test_pool_submit.c: apply_async's lock-free submission stack. Jobs pushed
 * while a driver is busy are queued in submission order, each resolved
 * exactly once; close/terminate racing with submitters either accept a job
 * (it runs, or fails with TERMINATED) or refuse it (BL_ENOTRUNNING), never
 * lose it; a caller-driven pool (threads = 0) sees its fd readable for a
 * job pushed from another thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>

#include "helpers.h"
#include "pool_tasks.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_submit, .init = setup, .timeout = 120);

/* Per job: how many times each callback ran (exactly once in total). */
struct tally {
  atomic_int ok, err, bad;
  int err_code;          /* the only error expected, 0 = none */
  atomic_int *seen;      /* by value: resolutions of job v */
  int nseen;
};

static void on_ok(bl_result_t *r, const void *v, size_t n, void *user) {
  struct tally *t = user;
  (void)r;
  int32_t x = t_int(v, n);
  if (n != sizeof x || x < 0 || x >= t->nseen) atomic_fetch_add(&t->bad, 1);
  else atomic_fetch_add(&t->seen[x], 1);
  atomic_fetch_add(&t->ok, 1);
}
static void on_err(bl_result_t *r, const bl_error_info_t *e, void *user) {
  struct tally *t = user;
  (void)r;
  if (!t->err_code || e->code != t->err_code) atomic_fetch_add(&t->bad, 1);
  atomic_fetch_add(&t->err, 1);
}

struct submitter {
  bl_pool_t *p;
  struct tally *t;
  int first, n;          /* values first .. first+n-1 */
  int accepted;          /* submitted before the first refusal */
  int after_refusal;     /* accepted after a refusal: must stay 0 */
  int other_rc;          /* any code but 0 / ENOTRUNNING */
  int after_close;       /* accepted though close had returned: must be 0 */
  atomic_int *closed;    /* set once close/terminate returned */
  bl_result_t **r;
  atomic_int *progress;  /* jobs accepted by every submitter */
  pthread_t th;
};

static void *submit_main(void *arg) {
  struct submitter *s = arg;
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = on_ok;
  ao.error_callback = on_err;
  ao.user = s->t;
  int refused = 0;
  for (int i = 0; i < s->n; i++) {
    int32_t v = s->first + i;
    bl_result_t *r = NULL;
    int was_closed = atomic_load(s->closed);
    int rc = bl_pool_apply_async(s->p, "echo", &v, sizeof v, &ao, &r);
    if (rc == 0 && was_closed) s->after_close++;
    if (rc == BL_ENOTRUNNING) {
      refused = 1;
      continue;
    }
    if (rc) {
      s->other_rc = rc;
      break;
    }
    if (refused) s->after_refusal++;
    s->r[s->accepted++] = r;
    atomic_fetch_add(s->progress, 1);
  }
  return NULL;
}

enum { NTH = 4, PER = 3000 };

struct run {
  struct tally t;
  struct submitter s[NTH];
  atomic_int progress;
  atomic_int closed;
};

static void run_start(struct run *x, bl_pool_t *p, int err_code) {
  memset(x, 0, sizeof *x);
  x->t.err_code = err_code;
  x->t.nseen = NTH * PER;
  x->t.seen = calloc((size_t)x->t.nseen, sizeof *x->t.seen);
  cr_assert_not_null(x->t.seen);
  for (int i = 0; i < NTH; i++) {
    x->s[i] = (struct submitter){.p = p, .t = &x->t, .first = i * PER, .n = PER,
                                 .progress = &x->progress, .closed = &x->closed};
    x->s[i].r = calloc(PER, sizeof *x->s[i].r);
    cr_assert_not_null(x->s[i].r);
    cr_assert_eq(pthread_create(&x->s[i].th, NULL, submit_main, &x->s[i]), 0);
  }
}

/* Join the submitters, then check every accepted job: resolved, its
 * callback run exactly once, with its own value or the expected error. */
static int run_finish(struct run *x, bl_pool_t *p) {
  int accepted = 0;
  for (int i = 0; i < NTH; i++) {
    pthread_join(x->s[i].th, NULL);
    cr_expect_eq(x->s[i].other_rc, 0, "submitter %d: %d", i, x->s[i].other_rc);
    cr_expect_eq(x->s[i].after_refusal, 0, "accepted after a refusal");
    cr_expect_eq(x->s[i].after_close, 0, "accepted after close returned");
    accepted += x->s[i].accepted;
  }
  bl_pool_close(p);
  cr_assert_eq(bl_pool_join(p, 60000), 0);
  int ok = 0;
  for (int i = 0; i < NTH; i++) {
    for (int k = 0; k < x->s[i].accepted; k++) {
      bl_result_t *r = x->s[i].r[k];
      cr_assert(bl_result_ready(r), "job %d/%d not resolved after join", i, k);
      int rc = bl_result_get(r, 0, NULL, NULL, NULL);
      if (rc == 0) ok++;
      else cr_expect_eq(rc, x->t.err_code, "job %d/%d: %s", i, k, bl_err_name(rc));
      bl_result_free(&r);
    }
    free(x->s[i].r);
  }
  /* join waits for callbacks too: the tallies are final. */
  cr_expect_eq(atomic_load(&x->t.bad), 0);
  cr_expect_eq(atomic_load(&x->t.ok) + atomic_load(&x->t.err), accepted);
  cr_expect_eq(atomic_load(&x->t.ok), ok);
  int twice = 0, succeeded = 0;
  for (int v = 0; v < x->t.nseen; v++) {
    twice += atomic_load(&x->t.seen[v]) > 1;
    succeeded += atomic_load(&x->t.seen[v]) == 1;
  }
  cr_expect_eq(twice, 0, "a job's callback ran twice");
  cr_expect_eq(succeeded, ok);
  free(x->t.seen);
  return accepted;
}

Test(pool_submit, concurrent_submitters_each_job_resolved_once) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct run x;
  run_start(&x, p, 0);
  int accepted = run_finish(&x, p);
  cr_expect_eq(accepted, NTH * PER);
  cr_expect_eq(atomic_load(&x.t.ok), NTH * PER);
  bl_pool_free(&p);
}

/* Wait (by polling the shared counter, with a generous bound) until the
 * submitters are in full flow, so that close/terminate lands mid-burst. */
static void wait_progress(struct run *x, int n) {
  uint64_t end = t_now_ms() + 60000;
  while (atomic_load(&x->progress) < n && t_now_ms() < end) sched_yield();
  cr_assert_geq(atomic_load(&x->progress), n);
}

Test(pool_submit, close_racing_submitters_loses_no_job) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct run x;
  run_start(&x, p, 0);
  wait_progress(&x, NTH * PER / 4);
  cr_assert_eq(bl_pool_close(p), 0);
  atomic_store(&x.closed, 1);
  int accepted = run_finish(&x, p);
  cr_expect_geq(accepted, NTH * PER / 4);
  cr_expect_eq(atomic_load(&x.t.ok), accepted, "accepted before close: all run");
  bl_pool_free(&p);
}

Test(pool_submit, terminate_racing_submitters_resolves_each_once) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct run x;
  run_start(&x, p, BL_ETERMINATED);
  wait_progress(&x, NTH * PER / 4);
  cr_assert_eq(bl_pool_terminate(p), 0);
  atomic_store(&x.closed, 1);
  int accepted = run_finish(&x, p);
  cr_expect_geq(accepted, NTH * PER / 4);
  bl_pool_free(&p);
}

/* One worker runs jobs in queue order, and callbacks run in resolution
 * order: lock-free pushes, locked submissions (a blocking apply, a map)
 * and direct hand-offs must keep one FIFO. */
static int order[4096];
static atomic_int norder;
static void on_seq(bl_result_t *r, const void *v, size_t n, void *user) {
  (void)r, (void)user;
  int k = atomic_fetch_add(&norder, 1);
  if (k < (int)BL__ARRAY_SIZE(order)) order[k] = n == 4 ? t_int(v, n) : -1;
}
static void on_map_seq(bl_result_t *r, const void *v, size_t n, void *user) {
  (void)v, (void)n;
  int k = atomic_fetch_add(&norder, 1);
  if (k < (int)BL__ARRAY_SIZE(order)) order[k] = (int)(intptr_t)user;
  (void)r;
}

Test(pool_submit, one_fifo_across_submission_paths) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  atomic_store(&norder, 0);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.callback = on_seq;
  bl_apply_options_t mo;
  bl_apply_options_init(&mo);
  mo.callback = on_map_seq;
  mo.chunksize = 1;
  int32_t seq = 0;
  enum { ROUNDS = 20, BURST = 150 };
  int32_t items[4] = {0, 1, 2, 3};
  const void *args[4] = {&items[0], &items[1], &items[2], &items[3]};
  size_t lens[4] = {4, 4, 4, 4};
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < BURST; i++, seq++) {
      bl_result_t *r = NULL;
      cr_assert_eq(bl_pool_apply_async(p, "echo", &seq, sizeof seq, &ao, &r), 0);
      bl_result_free(&r);
    }
    /* a map job through the locked path, numbered like the others */
    mo.user = (void *)(intptr_t)seq++;
    bl_result_t *m = NULL;
    cr_assert_eq(bl_pool_map_async(p, "echo", args, lens, 4, &mo, &m), 0);
    bl_result_free(&m);
    if (round % 5 == 4) { /* a blocking apply waits behind everything */
      const int32_t b = seq++;
      bl_result_t *r = NULL;
      cr_assert_eq(bl_pool_apply_async(p, "echo", &b, sizeof b, &ao, &r), 0);
      cr_assert_eq(bl_result_wait(r, 60000), 0);
      bl_result_free(&r);
    }
  }
  bl_pool_close(p);
  cr_assert_eq(bl_pool_join(p, 60000), 0);
  cr_assert_eq(atomic_load(&norder), seq);
  for (int k = 0; k < seq; k++)
    cr_assert_eq(order[k], k, "resolution %d was job %d", k, order[k]);
  bl_pool_free(&p);
}

/* threads = 0: a job pushed from another thread while the caller's loop
 * sleeps on bl_pool_fd() must make that fd readable. */
struct async_one {
  bl_pool_t *p;
  int n, rc;
  bl_result_t **r;
  atomic_int pub;        /* r[0, pub) are set */
};
static void *push_many(void *arg) {
  struct async_one *a = arg;
  for (int32_t i = 0; i < a->n && !a->rc; i++) {
    a->rc = bl_pool_apply_async(a->p, "square", &i, sizeof i, NULL, &a->r[i]);
    if (!a->rc) atomic_store(&a->pub, i + 1);
  }
  return NULL;
}

Test(pool_submit, caller_driven_pool_wakes_for_pushed_jobs) {
  bl_pool_t *p = t_pool(2, 0);
  cr_assert_not_null(p);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, bl_pool_fd(p), &e), 0);
  enum { N = 2000 };
  bl_result_t **r = calloc(N, sizeof *r);
  struct async_one a = {.p = p, .n = N, .r = r};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, push_many, &a), 0);
  int done = 0;
  uint64_t end = t_now_ms() + 60000;
  /* Block on the fd only: no step without an event, so a missed wake-up
   * shows as a timeout here. */
  while (done < N && t_now_ms() < end) {
    struct epoll_event got;
    if (epoll_wait(ep, &got, 1, 2000) == 1) cr_assert_geq(bl_pool_step(p, 0), 0);
    int pub = atomic_load(&a.pub);
    done = 0;
    for (int i = 0; i < pub; i++) done += bl_result_ready(r[i]);
  }
  pthread_join(th, NULL);
  cr_assert_eq(a.rc, 0);
  cr_assert_eq(done, N, "%d of %d resolved", done, N);
  for (int i = 0; i < N; i++) {
    int rc;
    cr_expect_eq(t_get_int(r[i], &rc), i * i);
    bl_result_free(&r[i]);
  }
  free(r);
  cr_expect_eq(bl_pool_close(p), 0);
  cr_expect_eq(bl_pool_join(p, 60000), 0);
  close(ep);
  bl_pool_free(&p);
}
