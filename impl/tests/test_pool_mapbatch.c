/* test_pool_mapbatch.c: how map results travel through the pipes and are
 * kept: the path of spawn/forkserver pools, of maps with a limit and of a
 * full arena. Each pool here drops its arena so that maps take it
 * (test_pool_shared.c covers the shared map path).
 *
 * - A map chunk's items are stored packed when they all have one length and
 *   with an offset table otherwise; every item reads back the same either
 *   way (map, map_async, imap, imap_unordered), including empty ones and
 *   results large enough for the job's big (mmap'd) result blocks.
 * - A worker may hold a map chunk's READY while it runs the next chunk of
 *   the same job (BL__PW_F_BATCH), never behind another job's unit, and a
 *   failed chunk is written before the next unit runs; a worker that dies
 *   holding results fails its map exactly once. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "poolint.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

/* Item i's result: len_of(i) bytes, byte k = i * 31 + k. Chunks of 16:
 * all empty, all 8 bytes, all 13 bytes, or mixed lengths. */
static size_t len_of(int32_t i) {
  switch ((i / 16) % 4) {
  case 0: return 0;
  case 1: return 8;
  case 2: return 13;
  default: return (size_t)(i % 7) * 3;
  }
}

static int tk_blob(bl_task_ctx_t *c, const void *a, size_t n) {
  int32_t i = t_int(a, n);
  uint8_t out[32];
  size_t l = len_of(i);
  for (size_t k = 0; k < l; k++) out[k] = (uint8_t)(i * 31 + (int32_t)k);
  return bl_task_return(c, out, l);
}

/* 0 fails; anything else sleeps that many ms. */
static int tk_fail_or_sleep(bl_task_ctx_t *c, const void *a, size_t n) {
  int32_t v = t_int(a, n);
  if (v == 0) return bl_task_fail(c, "ValueError", "zero", NULL);
  return tk_sleep(c, a, n);
}

static void setup(void) {
  t_register_pool_tasks();
#ifdef FIU_ENABLE
  fiu_init(0);
#endif
  bl_register_task("blob", tk_blob);
  bl_register_task("fail_or_sleep", tk_fail_or_sleep);
}

TestSuite(pool_mapbatch, .init = setup, .timeout = 60);

/* A fork pool whose maps go through the pipes: without its arena (the
 * workers inherited the mapping, which nothing then uses). */
static bl_pool_t *pipe_pool(unsigned n, int threads) {
  bl_pool_t *p = t_pool(n, threads);
  if (p) { /* under the lock: a replacement's spawn reads it */
    pthread_mutex_lock(&p->mu);
    bl__arena_unref(p->arena);
    p->arena = NULL;
    pthread_mutex_unlock(&p->mu);
  }
  return p;
}

static void make_ints(size_t n, int32_t *vals, const void **args, size_t *lens) {
  for (size_t i = 0; i < n; i++) {
    vals[i] = (int32_t)i;
    args[i] = &vals[i];
    lens[i] = sizeof vals[i];
  }
}

static int blob_ok(int32_t i, const void *v, size_t l) {
  if (l != len_of(i)) return 0;
  for (size_t k = 0; k < l; k++)
    if (((const uint8_t *)v)[k] != (uint8_t)(i * 31 + (int32_t)k)) return 0;
  return 1;
}

Test(pool_mapbatch, equal_and_mixed_lengths_read_back) {
  bl_pool_t *p = pipe_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 16 * 4 * 3 + 5 }; /* every kind of chunk, and a short last one */
  static int32_t vals[N];
  static const void *args[N];
  static size_t lens[N];
  make_ints(N, vals, args, lens);
  size_t sizes[] = {16, 5, 1};
  for (size_t s = 0; s < BL__ARRAY_SIZE(sizes); s++) {
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.chunksize = sizes[s];
    bl_result_t *r = NULL, *ra = NULL;
    cr_assert_eq(bl_pool_map(p, "blob", args, lens, N, &ao, &r, NULL), 0);
    cr_assert_eq(bl_pool_map_async(p, "blob", args, lens, N, &ao, &ra), 0);
    cr_assert_eq(bl_result_wait(ra, 30000), 0);
    for (int32_t i = 0; i < N; i++) {
      const void *v, *va;
      size_t l, la;
      cr_assert_eq(bl_result_item(r, (size_t)i, &v, &l), 0);
      cr_assert(blob_ok(i, v, l), "map chunksize %zu item %d", sizes[s], i);
      cr_assert_eq(bl_result_item(ra, (size_t)i, &va, &la), 0);
      cr_assert(blob_ok(i, va, la), "map_async chunksize %zu item %d", sizes[s], i);
    }
    bl_result_free(&r);
    bl_result_free(&ra);
  }
  /* imap keeps order; imap_unordered yields every item once. */
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 16;
  bl_imap_t *it = NULL;
  cr_assert_eq(bl_pool_imap(p, "blob", args, lens, N, &ao, &it), 0);
  for (int32_t i = 0; i < N; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_imap_next(it, 30000, &v, &l, NULL), 0);
    cr_assert(blob_ok(i, v, l), "imap item %d", i);
  }
  cr_expect_eq(bl_imap_next(it, 30000, NULL, NULL, NULL), BL_EEOF);
  bl_imap_free(&it);
  static uint8_t seen[N];
  cr_assert_eq(bl_pool_imap_unordered(p, "blob", args, lens, N, &ao, &it), 0);
  for (int k = 0; k < N; k++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_imap_next(it, 30000, &v, &l, NULL), 0);
    /* which item: the chunk's order is kept, so count per length class */
    int found = 0;
    for (int32_t i = 0; i < N && !found; i++)
      if (!seen[i] && blob_ok(i, v, l)) seen[i] = 1, found = 1;
    cr_assert(found, "imap_unordered value %d matches no unseen item", k);
  }
  cr_expect_eq(bl_imap_next(it, 30000, NULL, NULL, NULL), BL_EEOF);
  bl_imap_free(&it);
  bl_pool_free(&p);
}

Test(pool_mapbatch, large_results_read_back) {
  /* 8-byte results for 60 000 items: well over the size from which result
   * blocks are mmap'd, in chunks of 64 and of 1000. */
  bl_pool_t *p = pipe_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 60000 };
  int32_t *vals = malloc(N * sizeof *vals);
  const void **args = malloc(N * sizeof *args);
  size_t *lens = malloc(N * sizeof *lens);
  cr_assert(vals && args && lens);
  make_ints(N, vals, args, lens);
  size_t sizes[] = {64, 1000};
  for (size_t s = 0; s < BL__ARRAY_SIZE(sizes); s++) {
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.chunksize = sizes[s];
    bl_result_t *r = NULL;
    cr_assert_eq(bl_pool_map(p, "echo", args, lens, N, &ao, &r, NULL), 0);
    for (size_t i = 0; i < N; i++) {
      const void *v;
      size_t l;
      cr_assert_eq(bl_result_item(r, i, &v, &l), 0);
      cr_assert_eq(l, 4);
      cr_assert_eq(t_int(v, l), (int32_t)i, "chunksize %zu item %zu", sizes[s], i);
    }
    bl_result_free(&r);
  }
  free(vals);
  free(args);
  free(lens);
  bl_pool_free(&p);
}

Test(pool_mapbatch, worker_dying_with_held_results_fails_the_map_once) {
  bl_pool_t *p = pipe_pool(1, 1);
  cr_assert_not_null(p);
  /* Chunks 0-3 succeed (their READYs may be held: same job), chunk 4
   * kills the worker. */
  int32_t vals[] = {1, 2, 3, 4, -SIGKILL, 6};
  const void *args[6];
  size_t lens[6];
  for (int i = 0; i < 6; i++) args[i] = &vals[i], lens[i] = sizeof vals[i];
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  bl_result_t *r = NULL;
  bl_error_info_t e = {0};
  cr_expect_eq(bl_pool_map(p, "square_or_die", args, lens, 6, &ao, &r, &e),
               BL_EWORKERLOST);
  cr_expect_str_eq(bl_error_info_type(&e), "WorkerLostError");
  char want[64];
  snprintf(want, sizeof want, "Job: %llu.", (unsigned long long)bl_result_job_id(r));
  cr_expect(e.message && strstr(e.message, want), "%s", e.message ? e.message : "(null)");
  cr_expect_eq(bl_result_successful(r), 0);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  /* The replacement runs the next map. */
  vals[4] = 5;
  cr_assert_eq(bl_pool_map(p, "square_or_die", args, lens, 6, &ao, &r, NULL), 0);
  const void *v;
  size_t l;
  cr_expect_eq(bl_result_item(r, 5, &v, &l), 0);
  cr_expect_eq(t_int(v, l), 36);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_mapbatch, results_never_held_behind_another_job) {
  /* threads = 0: nothing dispatches until we step, so every unit below
   * lands in the one worker's pipe in order: a blocker, a plain apply,
   * map A's three chunks, map B's chunk, which sleeps 20 s, and applies
   * (they make the queue long enough for one dispatch to send B's chunk
   * too). A's results must be written before B's chunk runs. */
  bl_pool_t *p = pipe_pool(1, 0);
  cr_assert_not_null(p);
  bl_result_t *blocker = NULL, *x = NULL, *a = NULL, *b = NULL;
  cr_assert_eq(t_apply_int(p, "sleep", 200, NULL, &blocker), 0);
  cr_assert_eq(t_apply_int(p, "noop", 0, NULL, &x), 0);
  int32_t av[3] = {1, 2, 3}, bv[1] = {20000};
  const void *aa[3] = {&av[0], &av[1], &av[2]}, *ba[1] = {&bv[0]};
  size_t al[3] = {4, 4, 4}, bl[1] = {4};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  cr_assert_eq(bl_pool_map_async(p, "square", aa, al, 3, &ao, &a), 0);
  cr_assert_eq(bl_pool_map_async(p, "sleep", ba, bl, 1, &ao, &b), 0);
  bl_result_t *c[4] = {0};
  for (int i = 0; i < 4; i++) cr_assert_eq(t_apply_int(p, "noop", 0, NULL, &c[i]), 0);
  /* Loose bound: B's chunk takes 20 s, A must not wait for it. */
  cr_expect_eq(bl_result_wait(a, 10000), 0);
  cr_expect_eq(bl_result_successful(a), 1);
  cr_expect_eq(bl_result_ready(b), 0);
  bl_result_free(&blocker);
  bl_result_free(&x);
  bl_result_free(&a);
  bl_result_free(&b);
  for (int i = 0; i < 4; i++) bl_result_free(&c[i]);
  bl_pool_terminate(p);
  bl_pool_free(&p);
}

Test(pool_mapbatch, failed_chunk_is_not_held) {
  /* One worker, both chunks in its pipe: chunk 0 fails, chunk 1 sleeps
   * 20 s. The failure reaches the map before chunk 1 ends. */
  bl_pool_t *p = pipe_pool(1, 1);
  cr_assert_not_null(p);
  int32_t v[2] = {0, 20000};
  const void *args[2] = {&v[0], &v[1]};
  size_t lens[2] = {4, 4};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map_async(p, "fail_or_sleep", args, lens, 2, &ao, &r), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(r, 10000, NULL, NULL, &e), BL_ETASK);
  cr_expect_str_eq(bl_error_info_type(&e), "ValueError");
  bl_error_info_clear(&e);
  bl_result_free(&r);
  bl_pool_terminate(p);
  bl_pool_free(&p);
}

Test(pool_mapbatch, terminate_job_with_held_results_is_terminated) {
  /* Chunks 0 and 1 end at once (their READYs may be held), chunk 2 runs
   * 20 s and is terminated: the map fails as terminated, not as a lost
   * worker, although the held results die with the worker. */
  bl_pool_t *p = pipe_pool(1, 1);
  cr_assert_not_null(p);
  int32_t v[3] = {1, 2, 20000};
  const void *args[3] = {&v[0], &v[1], &v[2]};
  size_t lens[3] = {4, 4, 4};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map_async(p, "sleep", args, lens, 3, &ao, &r), 0);
  /* No event says that a chunk started (an accept callback would change
   * how the units travel): poll, loosely bounded. */
  uint64_t end = t_now_ms() + 10000;
  while (!bl_result_accepted(r) && t_now_ms() < end) t_sleep_ms(1);
  cr_assert_eq(bl_result_accepted(r), 1);
  cr_assert_eq(bl_pool_terminate_job(p, r, SIGTERM), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(r, 10000, NULL, NULL, &e), BL_ETERMINATED);
  bl_error_info_clear(&e);
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(pool_mapbatch, no_memory_for_results_fails_the_map_once) {
#ifndef FIU_ENABLE
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  bl_pool_t *p = pipe_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 1000 };
  static int32_t vals[N];
  static const void *args[N];
  static size_t lens[N];
  make_ints(N, vals, args, lens);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 10;
  fiu_enable("pool/result/store", 1, (void *)(intptr_t)ENOMEM, FIU_ONETIME);
  bl_result_t *r = NULL;
  cr_expect_eq(bl_pool_map(p, "square", args, lens, N, &ao, &r, NULL), -ENOMEM);
  fiu_disable("pool/result/store");
  cr_expect_eq(bl_result_successful(r), 0);
  bl_result_free(&r);
  /* The other chunks' results were dropped; the pool serves on. */
  cr_assert_eq(bl_pool_map(p, "square", args, lens, N, &ao, &r, NULL), 0);
  const void *v;
  size_t l;
  cr_expect_eq(bl_result_item(r, N - 1, &v, &l), 0);
  cr_expect_eq(t_int(v, l), (N - 1) * (N - 1));
  bl_result_free(&r);
  bl_pool_free(&p);
#endif
}
