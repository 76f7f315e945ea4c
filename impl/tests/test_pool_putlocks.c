/* test_pool_putlocks.c: Pool(putlocks, semaphore): apply_async waits while
 * putlock_slots of its jobs are unresolved, a resolved job frees its slot,
 * close ends the wait, map never waits. Jobs are held by a gate pipe the
 * workers inherit (a byte per job lets one finish), not by sleeps. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>

#include "helpers.h"
#include "pool_tasks.h"

static int gate[2] = {-1, -1};

/* Blocks until a byte arrives on the gate, then returns its argument. */
static int tk_gated(bl_task_ctx_t *c, const void *a, size_t n) {
  char b;
  while (read(gate[0], &b, 1) < 0 && errno == EINTR) {
  }
  return bl_task_return(c, a, n);
}

static void setup(void) {
  t_register_pool_tasks();
  bl_register_task("gated", tk_gated);
  cr_assert_eq(pipe2(gate, O_CLOEXEC), 0);
}
static void teardown(void) {
  bl__close(&gate[0]);
  bl__close(&gate[1]);
}
TestSuite(pool_putlocks, .init = setup, .fini = teardown, .timeout = 60);

static void open_gate(int n) {
  for (int i = 0; i < n; i++) cr_assert_eq(write(gate[1], "x", 1), 1);
}

static bl_pool_t *putlock_pool(unsigned n, unsigned slots, int threads) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = n;
  o.threads = threads;
  o.putlocks = 1;
  o.putlock_slots = slots;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  return p;
}

/* A submitter thread: apply_async of "echo" with its value; reports the
 * return code, then writes a byte on done[1] so the test can wait for it. */
struct submitter {
  bl_pool_t *p;
  int32_t value;
  int rc;
  bl_result_t *r;
  int done[2];
  pthread_t th;
};
static void *submit_main(void *arg) {
  struct submitter *s = arg;
  s->rc = t_apply_int(s->p, "echo", s->value, NULL, &s->r);
  ssize_t n = write(s->done[1], "d", 1);
  (void)n;
  return NULL;
}
static void submit_start(struct submitter *s, bl_pool_t *p, int32_t value) {
  *s = (struct submitter){.p = p, .value = value, .rc = 1};
  cr_assert_eq(pipe2(s->done, O_CLOEXEC), 0);
  cr_assert_eq(pthread_create(&s->th, NULL, submit_main, s), 0);
}
/* 1 when the submitter returned within ms. */
static int submit_returned(struct submitter *s, int ms) {
  struct pollfd pfd = {s->done[0], POLLIN, 0};
  return poll(&pfd, 1, ms) == 1;
}
static void submit_join(struct submitter *s) {
  pthread_join(s->th, NULL);
  bl__close(&s->done[0]);
  bl__close(&s->done[1]);
}

static void expect_value(bl_result_t **r, int32_t want) {
  int rc;
  cr_expect_eq(t_get_int(*r, &rc), want);
  cr_expect_eq(rc, 0);
  bl_result_free(r);
}

Test(pool_putlocks, apply_async_waits_for_a_resolved_job) {
  bl_pool_t *p = putlock_pool(2, 0, 1); /* slots = pool size = 2 */
  bl_result_t *a = NULL, *b = NULL;
  cr_assert_eq(t_apply_int(p, "gated", 1, NULL, &a), 0);
  cr_assert_eq(t_apply_int(p, "gated", 2, NULL, &b), 0);
  struct submitter s;
  submit_start(&s, p, 3);
  /* Both slots are held by gated jobs: the third submission must wait. */
  cr_expect_not(submit_returned(&s, 300), "apply_async returned with no free slot");
  open_gate(1); /* one gated job resolves and frees its slot */
  cr_expect(submit_returned(&s, 30000), "apply_async still waiting after a job resolved");
  submit_join(&s);
  cr_assert_eq(s.rc, 0);
  expect_value(&s.r, 3);
  open_gate(1);
  int32_t got = 0, rc;
  got += t_get_int(a, &rc);
  got += t_get_int(b, &rc);
  cr_expect_eq(got, 3);
  bl_result_free(&a);
  bl_result_free(&b);
  bl_pool_free(&p);
}

Test(pool_putlocks, one_slot_serialises_even_with_idle_workers) {
  bl_pool_t *p = putlock_pool(2, 1, 1); /* billiard's semaphore of value 1 */
  bl_result_t *a = NULL;
  cr_assert_eq(t_apply_int(p, "gated", 1, NULL, &a), 0);
  struct submitter s;
  submit_start(&s, p, 2);
  cr_expect_not(submit_returned(&s, 300), "second apply_async did not wait for the slot");
  open_gate(1);
  cr_expect(submit_returned(&s, 30000));
  submit_join(&s);
  cr_assert_eq(s.rc, 0);
  expect_value(&a, 1);
  expect_value(&s.r, 2);
  bl_pool_free(&p);
}

Test(pool_putlocks, a_failed_job_frees_its_slot) {
  bl_pool_t *p = putlock_pool(1, 1, 1);
  bl_result_t *r = NULL;
  for (int i = 0; i < 3; i++) { /* would wait forever if failures kept slots */
    cr_assert_eq(bl_pool_apply_async(p, "fail", NULL, 0, NULL, &r), 0);
    cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, NULL), BL_ETASK);
    bl_result_free(&r);
  }
  cr_assert_eq(bl_pool_apply_async(p, "die", NULL, 0, NULL, &r), 0);
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, NULL), BL_EWORKERLOST);
  bl_result_free(&r);
  cr_assert_eq(t_apply_int(p, "echo", 9, NULL, &r), 0);
  expect_value(&r, 9);
  bl_pool_free(&p);
}

Test(pool_putlocks, close_ends_the_wait) {
  bl_pool_t *p = putlock_pool(1, 1, 1);
  bl_result_t *a = NULL;
  cr_assert_eq(t_apply_int(p, "gated", 1, NULL, &a), 0);
  struct submitter s;
  submit_start(&s, p, 2);
  cr_expect_not(submit_returned(&s, 300));
  cr_assert_eq(bl_pool_close(p), 0);
  cr_expect(submit_returned(&s, 30000), "close did not end the wait");
  submit_join(&s);
  cr_expect_eq(s.rc, BL_ENOTRUNNING);
  cr_expect_null(s.r);
  open_gate(1);
  expect_value(&a, 1);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_putlocks, map_never_waits) {
  bl_pool_t *p = putlock_pool(1, 1, 1);
  bl_result_t *a = NULL, *m = NULL;
  cr_assert_eq(t_apply_int(p, "gated", 1, NULL, &a), 0);
  int32_t v[3] = {1, 2, 3};
  const void *args[3] = {&v[0], &v[1], &v[2]};
  size_t lens[3] = {4, 4, 4};
  /* Returns at once (this thread would block for ever otherwise). */
  cr_assert_eq(bl_pool_map_async(p, "square", args, lens, 3, NULL, &m), 0);
  open_gate(1);
  expect_value(&a, 1);
  cr_expect_eq(bl_result_get(m, 30000, NULL, NULL, NULL), 0);
  bl_result_free(&m);
  bl_pool_free(&p);
}

Test(pool_putlocks, caller_driven_pool_waits_by_stepping) {
  bl_pool_t *p = putlock_pool(1, 1, 0); /* threads = 0: the waiter drives */
  bl_result_t *a = NULL, *b = NULL;
  cr_assert_eq(t_apply_int(p, "echo", 1, NULL, &a), 0);
  /* No other thread runs the pool: the second submission steps it itself
   * until the first job resolves, then takes the slot. */
  cr_assert_eq(t_apply_int(p, "echo", 2, NULL, &b), 0);
  cr_expect_eq(bl_result_ready(a), 1);
  expect_value(&a, 1);
  expect_value(&b, 2);
  bl_pool_free(&p);
}

Test(pool_putlocks, without_putlocks_submission_never_waits) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r[4] = {0};
  for (int i = 0; i < 4; i++) cr_assert_eq(t_apply_int(p, "gated", i, NULL, &r[i]), 0);
  open_gate(4);
  for (int i = 0; i < 4; i++) expect_value(&r[i], i);
  bl_pool_free(&p);
}
