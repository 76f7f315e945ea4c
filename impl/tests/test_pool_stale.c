/* test_pool_stale.c: units left in the pool's queue after their job
 * resolved (a map job failed by a lost worker, terminate_job of queued
 * units) hold the pool's reference to the job until a worker would have
 * been handed them. join() may end while such units wait, when no worker
 * is alive (crash-loop back-off); the pool must still release them, or the
 * job leaks (docs/reliability.md, "Found" 2). */
#include <criterion/criterion.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "poolint.h"

static void setup(void) { t_register_pool_tasks(); }
TestSuite(pool_stale, .init = setup, .timeout = 60);

static void on_down(bl_pool_t *p, pid_t pid, int status, void *user) {
  (void)p, (void)pid, (void)status;
  ++*(int *)user;
}

/* threads = 0: nothing happens between our calls, so the window in which
 * no worker is alive (the second crash in a row backs off 25 ms) is ours
 * to use, deterministically. */
static bl_pool_t *crash_looping_pool(int *downs) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.threads = 0;
  o.initializer = "init_fail"; /* every worker exits 1 before any job */
  o.on_process_down = on_down;
  o.user = downs;
  bl_pool_t *p = NULL;
  if (bl_pool_new(&p, &o) != 0) return NULL;
  /* The first replacement is immediate, the second one waits. */
  uint64_t end = t_now_ms() + 30000;
  while (*downs < 2 && t_now_ms() < end) bl_pool_step(p, 1000);
  return p;
}

static void submit_then_free(int cancel_kind) {
  int downs = 0;
  bl_pool_t *p = crash_looping_pool(&downs);
  cr_assert_not_null(p);
  cr_assert_eq(downs, 2);
  int32_t v[24];
  const void *args[24];
  size_t lens[24];
  for (int i = 0; i < 24; i++) v[i] = i, args[i] = &v[i], lens[i] = sizeof v[i];
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 3;
  bl_result_t *r = NULL;
  bl_imap_t *it = NULL;
  if (cancel_kind == 0) {
    cr_assert_eq(bl_pool_map_async(p, "echo", args, lens, 24, &ao, &r), 0);
  } else {
    cr_assert_eq(bl_pool_imap_unordered(p, "echo", args, lens, 24, &ao, &it), 0);
    r = bl_imap_result(it);
  }
  /* No worker is alive: all 8 units are queued. Resolve the job. */
  cr_assert_eq(bl_pool_terminate_job(p, r, 0), 0);
  cr_assert(bl_result_ready(r));
  cr_expect_eq(bl_result_get(r, 0, NULL, NULL, NULL), cancel_kind == 0 ? BL_ETERMINATED : 0);
  cr_assert_eq(bl_pool_close(p), 0);
  /* Every job resolved and no worker alive: join ends at once, with the
   * stale units still queued. */
  cr_expect_eq(bl_pool_join(p, 10000), 0);
  bl_pool_free(&p);
  /* Only our reference is left: the pool released the units' one. */
  cr_expect_eq(atomic_load(&r->refs), 1, "refs %d", (int)atomic_load(&r->refs));
  if (it) bl_imap_free(&it);
  else bl_result_free(&r);
}

Test(pool_stale, map_units_queued_at_join_are_released) { submit_then_free(0); }
Test(pool_stale, imap_units_queued_at_join_are_released) { submit_then_free(1); }

/* terminate() fails every unit in the workers' pipes; the same units come
 * back when those workers die (the running one as lost, the unstarted ones
 * requeued and failed again). An imap chunk ends exactly once: a second
 * end would count past nchunks and write past imap_unordered's
 * completion order. */
Test(pool_stale, imap_chunks_end_once_on_terminate) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  int32_t v[4] = {10000, 10000, 10000, 10000}; /* ms each */
  const void *args[4] = {&v[0], &v[1], &v[2], &v[3]};
  size_t lens[4] = {4, 4, 4, 4};
  bl_imap_t *it = NULL;
  cr_assert_eq(bl_pool_imap_unordered(p, "sleep", args, lens, 4, NULL, &it), 0);
  /* the first unit runs (its worker's shared page says so) */
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_accepted(bl_imap_result(it)) && bl_result_worker_pid(bl_imap_result(it)) == 0 &&
         t_now_ms() < end)
    bl_result_wait(bl_imap_result(it), 10);
  cr_assert_eq(bl_pool_terminate(p), 0);
  int n = 0, rc;
  while ((rc = bl_imap_next(it, 10000, NULL, NULL, NULL)) != BL_EEOF) {
    cr_expect_eq(rc, BL_ETERMINATED);
    if (++n > 4) break;
  }
  cr_expect_eq(n, 4);
  cr_expect_eq(bl_imap_result(it)->ndone, 4);
  bl_imap_free(&it);
  bl_pool_free(&p);
}
