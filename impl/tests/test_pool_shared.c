/* test_pool_shared.c: the shared map path (docs/pool.md, "Shared map path").
 *
 * - A map gathers its arguments into the pool's arena (spawn/forkserver
 *   workers map its memfd: test_pool_methods checks maps there); the
 *   workers claim chunks there and store results over the chunk's own
 *   arguments (equal lengths, no longer), in the job's result area
 *   (longer or mixed lengths), or through the pipe (no room left); every
 *   item reads back the same in each case.
 * - A failing chunk fails the map once and stops the other workers'
 *   claims; a worker's death fails it as WorkerLostError, terminate_job as
 *   terminated; maxtasksperchild counts chunks and the job goes on in
 *   fresh workers; the pool serves on after each.
 * - A limit (a unit per chunk) keeps a map on the pipes.
 * - Results outlive their pool; a freed job's extent is reused; concurrent
 *   maps share the workers; bad arguments are refused as on the pipe path.
 * - The arena's extents: first fit, coalesced on free. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "arena.h"
#include "helpers.h"
#include "pool_tasks.h"
#include "poolint.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

/* 16 bytes for a 4-byte argument: the value, its square, and a tag. */
static int tk_widen(bl_task_ctx_t *c, const void *a, size_t n) {
  int32_t v = t_int(a, n);
  int32_t out[4] = {v, v * v, 0x51, -v};
  return bl_task_return(c, out, sizeof out);
}

/* Argument of any length: returns its length (1 byte) then the bytes
 * reversed. */
static int tk_rev(bl_task_ctx_t *c, const void *a, size_t n) {
  uint8_t out[64];
  out[0] = (uint8_t)n;
  for (size_t k = 0; k < n && k < 63; k++) out[1 + k] = ((const uint8_t *)a)[n - 1 - k];
  return bl_task_return(c, out, 1 + (n < 63 ? n : 63));
}

/* 8 KiB: byte k = (i + k) & 0xff. */
enum { BIG = 8192 };
static int tk_big(bl_task_ctx_t *c, const void *a, size_t n) {
  int32_t i = t_int(a, n);
  static uint8_t out[BIG];
  for (size_t k = 0; k < BIG; k++) out[k] = (uint8_t)((size_t)i + k);
  return bl_task_return(c, out, BIG);
}

static void setup(void) {
  t_register_pool_tasks();
#ifdef FIU_ENABLE
  fiu_init(0);
#endif
  bl_register_task("widen", tk_widen);
  bl_register_task("rev", tk_rev);
  bl_register_task("big", tk_big);
}

TestSuite(pool_shared, .init = setup, .timeout = 60);

struct ints {
  size_t n;
  int32_t *v;
  const void **a;
  size_t *l;
};

static struct ints ints_new(size_t n) {
  struct ints s = {n, calloc(n, sizeof(int32_t)), calloc(n, sizeof(void *)),
                   calloc(n, sizeof(size_t))};
  cr_assert(s.v && s.a && s.l);
  for (size_t i = 0; i < n; i++) {
    s.v[i] = (int32_t)i;
    s.a[i] = &s.v[i];
    s.l[i] = sizeof(int32_t);
  }
  return s;
}

static void ints_free(struct ints *s) {
  free(s->v);
  free((void *)s->a);
  free(s->l);
}

static int map_cs(bl_pool_t *p, const char *task, const struct ints *s, size_t cs,
                  bl_result_t **r) {
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = cs;
  return bl_pool_map(p, task, s->a, s->l, s->n, &ao, r, NULL);
}

/* Close and join before freeing: the workers leave by STOP, not by the
 * terminate that freeing a pool with live workers does. */
static void close_free(bl_pool_t **p) {
  cr_expect_eq(bl_pool_close(*p), 0);
  cr_expect_eq(bl_pool_join(*p, 30000), 0);
  bl_pool_free(p);
}

/* Where item i's bytes are, relative to the job's head in the arena. */
static size_t at_of(const bl_result_t *r, const void *v) {
  return (size_t)((const uint8_t *)v - (const uint8_t *)r->mj);
}

static void check_squares(const bl_result_t *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_result_item(r, i, &v, &l), 0);
    cr_assert_eq(l, 4);
    cr_assert_eq(t_int(v, l), (int32_t)(i * i), "item %zu", i);
  }
}

Test(pool_shared, equal_lengths_stored_over_their_arguments) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(20011); /* a short last chunk */
  bl_result_t *r = NULL;
  cr_assert_eq(map_cs(p, "square", &s, 64, &r), 0);
  cr_assert_not_null(r->mj, "a fork pool's map takes the shared path");
  cr_expect_eq(r->mj->astride, 4);
  check_squares(r, s.n);
  /* Packed over the arguments: no result area used. */
  for (size_t i = 0; i < s.n; i += 997) {
    const void *v;
    cr_assert_eq(bl_result_item(r, i, &v, NULL), 0);
    cr_expect_geq(at_of(r, v), r->mj->args);
    cr_expect_lt(at_of(r, v), r->mj->res);
  }
  cr_expect_eq(atomic_load(&r->mj->rused), 0);
  cr_expect_eq(bl_result_accepted(r), 1);
  cr_expect_gt(bl_result_worker_pid(r), 0);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, longer_results_go_to_the_result_area) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(5000);
  bl_result_t *r = NULL;
  cr_assert_eq(map_cs(p, "widen", &s, 37, &r), 0);
  cr_assert_not_null(r->mj);
  for (size_t i = 0; i < s.n; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_result_item(r, i, &v, &l), 0);
    cr_assert_eq(l, 16);
    int32_t w[4];
    memcpy(w, v, sizeof w);
    cr_assert(w[0] == (int32_t)i && w[1] == (int32_t)(i * i) && w[2] == 0x51 &&
                  w[3] == -(int32_t)i, "item %zu", i);
    cr_assert_geq(at_of(r, v), r->mj->res);
  }
  cr_expect_eq(atomic_load(&r->mj->rused), 16 * s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, mixed_lengths_travel_with_prefixes) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  enum { N = 3001 };
  static uint8_t bytes[N][8];
  static const void *a[N];
  static size_t l[N];
  for (size_t i = 0; i < N; i++) {
    l[i] = i % 9 == 8 ? 0 : i % 9; /* 0..7 bytes, some empty */
    for (size_t k = 0; k < l[i]; k++) bytes[i][k] = (uint8_t)(i * 7 + k);
    a[i] = l[i] ? bytes[i] : NULL;
  }
  size_t sizes[] = {1, 10, 64};
  for (size_t z = 0; z < BL__ARRAY_SIZE(sizes); z++) {
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.chunksize = sizes[z];
    bl_result_t *r = NULL;
    cr_assert_eq(bl_pool_map(p, "rev", a, l, N, &ao, &r, NULL), 0);
    cr_assert_not_null(r->mj);
    cr_expect_eq(r->mj->astride, BL__MJ_PREFIXED);
    for (size_t i = 0; i < N; i++) {
      const void *v;
      size_t vl;
      cr_assert_eq(bl_result_item(r, i, &v, &vl), 0);
      const uint8_t *b = v;
      cr_assert_eq(vl, 1 + l[i], "chunksize %zu item %zu", sizes[z], i);
      cr_assert_eq(b[0], l[i]);
      for (size_t k = 0; k < l[i]; k++)
        cr_assert_eq(b[1 + k], bytes[i][l[i] - 1 - k], "item %zu byte %zu", i, k);
    }
    bl_result_free(&r);
  }
  close_free(&p);
}

Test(pool_shared, results_beyond_the_area_come_through_the_pipe) {
  /* 40 results of 8 KiB against a 64 KiB result area: most chunks do not
   * fit and travel as READY frames; all read back. */
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(40);
  bl_result_t *r = NULL;
  cr_assert_eq(map_cs(p, "big", &s, 1, &r), 0);
  cr_assert_not_null(r->mj);
  size_t in_area = 0;
  for (size_t i = 0; i < s.n; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_result_item(r, i, &v, &l), 0);
    cr_assert_eq(l, BIG);
    for (size_t k = 0; k < BIG; k += 511)
      cr_assert_eq(((const uint8_t *)v)[k], (uint8_t)(i + k), "item %zu", i);
    in_area += at_of(r, v) < r->ext_len;
  }
  cr_expect_gt(in_area, 0);
  cr_expect_lt(in_area, s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, failing_chunk_fails_the_map_once_and_ends_claims) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(40000); /* squares within int32 */
  bl_result_t *r = NULL;
  bl_error_info_t e = {0};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  cr_assert_eq(bl_pool_map(p, "fail3", s.a, s.l, s.n, &ao, &r, &e), BL_ETASK);
  cr_expect_str_eq(bl_error_info_type(&e), "KeyError");
  cr_expect_str_eq(e.message, "three");
  bl_error_info_clear(&e);
  cr_assert_not_null(r->mj);
  cr_expect_eq(atomic_load(&r->mj->abort), 1);
  bl_result_free(&r);
  /* The pool serves on, and the next map reuses the freed extent. */
  int rc = map_cs(p, "square", &s, 64, &r);
  cr_assert_eq(rc, 0, "rc %d", rc);
  check_squares(r, s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, freed_extent_is_reused) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(10000);
  bl_result_t *r = NULL, *r2 = NULL;
  cr_assert_eq(map_cs(p, "square", &s, 64, &r), 0);
  size_t first = r->ext_off;
  cr_assert_eq(map_cs(p, "square", &s, 64, &r2), 0);
  cr_expect_neq(r2->ext_off, first, "both held: two extents");
  /* A join may still be on its way out after the map resolved (its DONE
   * unread, or never started): the pool lets go of the job, and the
   * extent, after the last one. No event tells it: poll, loosely bounded. */
  uint64_t end = t_now_ms() + 20000;
  while ((atomic_load(&r->refs) > 1 || atomic_load(&r2->refs) > 1) && t_now_ms() < end)
    t_sleep_ms(1);
  cr_assert_eq(atomic_load(&r->refs), 1);
  cr_assert_eq(atomic_load(&r2->refs), 1);
  bl_result_free(&r);
  bl_result_free(&r2);
  cr_assert_eq(map_cs(p, "square", &s, 64, &r), 0);
  cr_expect_eq(r->ext_off, first, "lowest first: the warm pages again");
  check_squares(r, s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, maxtasksperchild_counts_chunks) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.maxtasksperchild = 3;
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  struct ints s = ints_new(60);
  bl_result_t *r = NULL;
  cr_assert_eq(map_cs(p, "pid", &s, 1, &r), 0);
  cr_assert_not_null(r->mj);
  /* Each pid ran at most 3 chunks: at least 20 workers took part. */
  int32_t pids[60];
  size_t npid = 0;
  for (size_t i = 0; i < s.n; i++) {
    const void *v;
    size_t l;
    cr_assert_eq(bl_result_item(r, i, &v, &l), 0);
    int32_t pid = t_int(v, l), seen = 0;
    for (size_t k = 0; k < npid; k++) seen += pids[k] == pid;
    if (!seen) pids[npid++] = pid;
  }
  for (size_t k = 0; k < npid; k++) {
    int times = 0;
    for (size_t i = 0; i < s.n; i++) {
      const void *v;
      size_t l;
      bl_result_item(r, i, &v, &l);
      times += t_int(v, l) == pids[k];
    }
    cr_expect_leq(times, 3, "pid %d ran %d chunks", pids[k], times);
  }
  cr_expect_geq(npid, 20);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, worker_death_fails_the_map_as_lost) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(5000);
  s.v[2500] = -SIGKILL;
  bl_result_t *r = NULL;
  bl_error_info_t e = {0};
  cr_assert_eq(map_cs(p, "square_or_die", &s, 16, &r), BL_EWORKERLOST);
  cr_assert_not_null(r->mj);
  cr_expect_eq(bl_result_get(r, 0, NULL, NULL, &e), BL_EWORKERLOST);
  cr_expect_str_eq(bl_error_info_type(&e), "WorkerLostError");
  bl_error_info_clear(&e);
  bl_result_free(&r);
  s.v[2500] = 2500;
  cr_assert_eq(map_cs(p, "square_or_die", &s, 16, &r), 0);
  check_squares(r, s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, terminate_job_ends_a_shared_map) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  int32_t v[4] = {20000, 20000, 20000, 20000};
  const void *a[4] = {&v[0], &v[1], &v[2], &v[3]};
  size_t l[4] = {4, 4, 4, 4};
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 1;
  bl_result_t *r = NULL;
  cr_assert_eq(bl_pool_map_async(p, "sleep", a, l, 4, &ao, &r), 0);
  cr_assert_not_null(r->mj);
  /* No event says that a chunk started: poll, loosely bounded. */
  uint64_t end = t_now_ms() + 10000;
  while (atomic_load(&r->mj->next) < 2 && t_now_ms() < end) t_sleep_ms(1);
  cr_assert_geq(atomic_load(&r->mj->next), 2);
  cr_assert_eq(bl_pool_terminate_job(p, r, SIGTERM), 0);
  cr_expect_eq(bl_result_get(r, 10000, NULL, NULL, NULL), BL_ETERMINATED);
  bl_result_free(&r);
  struct ints s = ints_new(100);
  cr_assert_eq(map_cs(p, "square", &s, 8, &r), 0);
  check_squares(r, s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, results_outlive_their_pool) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(3000);
  bl_result_t *r = NULL;
  cr_assert_eq(map_cs(p, "square", &s, 50, &r), 0);
  cr_assert_not_null(r->mj);
  bl_pool_close(p);
  cr_assert_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
  check_squares(r, s.n); /* the job's reference keeps the arena mapped */
  bl_result_free(&r);
  ints_free(&s);
}

struct conc {
  bl_pool_t *p;
  size_t n;
  int ok;
};

static void *conc_map(void *arg) {
  struct conc *c = arg;
  struct ints s = ints_new(c->n);
  for (int round = 0; round < 5; round++) {
    bl_result_t *r = NULL;
    if (map_cs(c->p, "square", &s, 32, &r) != 0) break;
    int good = r->mj != NULL;
    for (size_t i = 0; good && i < s.n; i++) {
      const void *v;
      size_t l;
      good = bl_result_item(r, i, &v, &l) == 0 && t_int(v, l) == (int32_t)(i * i);
    }
    bl_result_free(&r);
    if (!good) break;
    if (round == 4) c->ok = 1;
  }
  ints_free(&s);
  return NULL;
}

Test(pool_shared, concurrent_maps_share_the_workers) {
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct conc c[3] = {{p, 30000, 0}, {p, 777, 0}, {p, 12345, 0}};
  pthread_t th[3];
  for (int i = 0; i < 3; i++) cr_assert_eq(pthread_create(&th[i], NULL, conc_map, &c[i]), 0);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 3; i++) cr_expect_eq(c[i].ok, 1, "thread %d", i);
  close_free(&p);
}

Test(pool_shared, bad_arguments_are_refused_as_on_the_pipes) {
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(100);
  bl_result_t *r = NULL;
  s.a[50] = NULL; /* a missing argument with a length */
  cr_expect_eq(map_cs(p, "square", &s, 8, &r), -EINVAL);
  cr_expect_null(r);
  s.a[50] = &s.v[50];
  s.l[70] = (size_t)BL__PW_MAX_BODY + 1; /* too long (its length only) */
  cr_expect_eq(map_cs(p, "square", &s, 8, &r), -EMSGSIZE);
  s.l[70] = 4;
  cr_assert_eq(map_cs(p, "square", &s, 8, &r), 0);
  check_squares(r, s.n);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
}

Test(pool_shared, limits_use_the_pipes) {
  struct ints s = ints_new(300);
  bl_result_t *r = NULL;
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.chunksize = 7;
  ao.time_limit_ms = 30000; /* a limit needs a unit per chunk */
  cr_assert_eq(bl_pool_map(p, "square", s.a, s.l, s.n, &ao, &r, NULL), 0);
  cr_expect_null(r->mj);
  check_squares(r, s.n);
  bl_result_free(&r);
  close_free(&p);
  ints_free(&s);
}

Test(pool_shared, no_room_in_the_arena_uses_the_pipes) {
#ifndef FIU_ENABLE
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  struct ints s = ints_new(1000);
  bl_result_t *r = NULL;
  fiu_enable("arena/alloc/extent", 1, (void *)(intptr_t)ENOMEM, FIU_ONETIME);
  cr_assert_eq(map_cs(p, "square", &s, 10, &r), 0);
  fiu_disable("arena/alloc/extent");
  cr_expect_null(r->mj);
  check_squares(r, s.n);
  bl_result_free(&r);
  cr_assert_eq(map_cs(p, "square", &s, 10, &r), 0);
  cr_expect_not_null(r->mj);
  bl_result_free(&r);
  ints_free(&s);
  close_free(&p);
#endif
}

Test(pool_shared, arena_extents_first_fit_and_coalesce) {
  bl__arena_t *a = NULL;
  cr_assert_eq(bl__arena_new(&a, 64 * 4096, 0), 0);
  size_t o1, o2, o3, o4;
  cr_assert_eq(bl__arena_alloc(a, 1, &o1), 0); /* rounded up to a page */
  cr_assert_eq(bl__arena_alloc(a, 5000, &o2), 0);
  cr_assert_eq(bl__arena_alloc(a, 4096, &o3), 0);
  cr_expect_eq(o1, 0);
  cr_expect_eq(o2, 4096);
  cr_expect_eq(o3, 3 * 4096);
  cr_expect_eq(bl__arena_alloc(a, 64 * 4096, &o4), -ENOMEM, "full");
  bl__arena_free(a, o2, 5000);
  cr_assert_eq(bl__arena_alloc(a, 4096, &o4), 0);
  cr_expect_eq(o4, o2, "first fit");
  bl__arena_free(a, o4, 4096);
  bl__arena_free(a, o1, 1);
  bl__arena_free(a, o3, 4096); /* the hole closes from both sides */
  cr_assert_eq(bl__arena_alloc(a, 64 * 4096, &o4), 0, "one extent again");
  cr_expect_eq(o4, 0);
  memset(bl__arena_base(a), 0x5a, 64 * 4096);
  bl__arena_free(a, o4, 64 * 4096);
  /* Many holes: the free list grows past its first 8 entries. */
  size_t o[32];
  for (int i = 0; i < 32; i++) cr_assert_eq(bl__arena_alloc(a, 4096, &o[i]), 0);
  for (int i = 0; i < 32; i += 2) bl__arena_free(a, o[i], 4096);
  for (int i = 1; i < 32; i += 2) bl__arena_free(a, o[i], 4096);
  cr_assert_eq(bl__arena_alloc(a, 64 * 4096, &o4), 0, "all coalesced");
  bl__arena_free(a, o4, 64 * 4096);
  bl__arena_unref(a);
}

Test(pool_shared, arena_gives_back_pages_beyond_the_kept_part) {
  /* Pages past BL__ARENA_KEEP return to the kernel when freed: the
   * extent reads as zeros when handed out again; the kept part does not. */
  bl__arena_t *a = NULL;
  size_t big = BL__ARENA_KEEP + (1u << 20);
  cr_assert_eq(bl__arena_new(&a, big, 1), 0);
  size_t o1, o2;
  cr_assert_eq(bl__arena_alloc(a, big, &o1), 0);
  uint8_t *b = bl__arena_base(a);
  b[0] = 1;
  b[big - 1] = 2;
  bl__arena_free(a, o1, big);
  cr_assert_eq(bl__arena_alloc(a, big, &o2), 0);
  cr_expect_eq(o2, o1);
  cr_expect_eq(b[0], 1, "kept");
  cr_expect_eq(b[big - 1], 0, "given back");
  bl__arena_free(a, o2, big);
  bl__arena_unref(a);
}
