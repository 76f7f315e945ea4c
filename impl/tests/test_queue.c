/* test_queue.c: Queue, JoinableQueue, SimpleQueue across real processes:
 * FIFO, Full/Empty, close, big items, concurrent producers, join, SIGKILL of
 * producers and consumers at random points, fault points. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/errors.h>
#include <billiard/queue.h>
#include <billiard/sharedctypes.h>

#include "helpers.h"
#include "internal.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

/* ---- self-checking items: header {producer, seq, len} + derived bytes ---- */

typedef struct item_hdr {
  uint32_t producer, seq, len, sum;
} item_hdr_t;

static uint8_t item_byte(uint32_t producer, uint32_t seq, size_t i) {
  return (uint8_t)(producer * 131u + seq * 31u + (uint32_t)i * 7u + (uint32_t)(i >> 9));
}

static size_t make_item(char *buf, uint32_t producer, uint32_t seq, size_t len) {
  item_hdr_t h = {producer, seq, (uint32_t)len, 0};
  for (size_t i = 0; i < len; i++) {
    uint8_t b = item_byte(producer, seq, i);
    buf[sizeof h + i] = (char)b;
    h.sum = h.sum * 33u + b;
  }
  memcpy(buf, &h, sizeof h);
  return sizeof h + len;
}

/* 1 when buf is a whole, untorn item; fills *out with its header. */
static int check_item(const char *buf, size_t n, item_hdr_t *out) {
  if (n < sizeof *out) return 0;
  memcpy(out, buf, sizeof *out);
  if (n != sizeof *out + out->len) return 0;
  uint32_t sum = 0;
  for (size_t i = 0; i < out->len; i++) {
    uint8_t b = (uint8_t)buf[sizeof *out + i];
    if (b != item_byte(out->producer, out->seq, i)) return 0;
    sum = sum * 33u + b;
  }
  return sum == out->sum;
}

static bl_queue_t *new_queue(size_t maxsize, size_t ring) {
  bl_queue_options_t o;
  bl_queue_options_init(&o);
  o.maxsize = maxsize;
  o.ring_bytes = ring;
  bl_queue_t *q = NULL;
  cr_assert_eq(bl_queue_new(&q, &o), 0);
  return q;
}

Test(queue, options_are_validated) {
  bl_queue_t *q = NULL;
  bl_queue_options_t o;
  bl_queue_options_init(&o);
  o.size = 1;
  cr_expect_eq(bl_queue_new(&q, &o), -EINVAL);
  bl_queue_options_init(&o);
  o.reserved[0] = 1;
  cr_expect_eq(bl_queue_new(&q, &o), -EINVAL);
  bl_queue_options_init(&o);
  o.ring_bytes = 100;
  cr_expect_eq(bl_queue_new(&q, &o), -EINVAL);
  cr_expect_null(q);
  cr_expect_eq(bl_queue_new(&q, NULL), 0);
  cr_expect_eq(bl_queue_task_done(q), BL_ENOTSUPPORTED);
  cr_expect_eq(bl_queue_put(q, NULL, 3, 0), -EINVAL);
  cr_expect_eq(bl_queue_put(q, "x", SIZE_MAX - 4, 0), -EINVAL);
  bl_queue_free(&q);
  cr_expect_null(q);
}

Test(queue, fifo_across_processes) {
  bl_queue_t *q = new_queue(0, 0);
  int n = t_under_valgrind() ? 200 : 5000;
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < n; i++)
      if (bl_queue_put(q, &i, sizeof i, 10000) != 0) t_exit(1);
    t_exit(0);
  }
  for (int i = 0; i < n; i++) {
    void *buf = NULL;
    size_t len = 0;
    int rc = bl_queue_get(q, &buf, &len, 10000);
    cr_assert_eq(rc, 0, "item %d: %s", i, bl_strerror(rc));
    cr_assert_eq(len, sizeof i);
    cr_assert_eq(*(int *)buf, i);
    free(buf);
  }
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_queue_empty(q), 1);
  bl_queue_free(&q);
}

Test(queue, full_and_empty_with_timeouts) {
  bl_queue_t *q = new_queue(2, 0);
  void *buf;
  size_t len;
  cr_expect_eq(bl_queue_get_nowait(q, &buf, &len), BL_EEMPTY);
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl_queue_get(q, &buf, &len, 50), BL_EEMPTY);
  cr_expect_geq(t_now_ms() - t0, 40);
  cr_expect_eq(bl_queue_empty(q), 1);
  cr_expect_eq(bl_queue_full(q), 0);
  cr_expect_eq(bl_queue_put_nowait(q, "a", 1), 0);
  cr_expect_eq(bl_queue_put(q, "bb", 2, -1), 0);
  cr_expect_eq(bl_queue_qsize(q), 2);
  cr_expect_eq(bl_queue_full(q), 1);
  cr_expect_eq(bl_queue_put_nowait(q, "c", 1), BL_EFULL);
  t0 = t_now_ms();
  cr_expect_eq(bl_queue_put(q, "c", 1, 50), BL_EFULL);
  cr_expect_geq(t_now_ms() - t0, 40);
  /* A get in another process makes room for a blocked put. */
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    void *b;
    size_t l;
    int rc = bl_queue_get(q, &b, &l, 10000);
    int ok = rc == 0 && l == 1 && memcmp(b, "a", 1) == 0;
    if (rc == 0) free(b);
    t_exit(ok ? 0 : 1);
  }
  cr_expect_eq(bl_queue_put(q, "c", 1, 10000), 0);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_assert_eq(bl_queue_get(q, &buf, &len, 0), 0);
  cr_expect_eq(len, 2);
  free(buf);
  cr_assert_eq(bl_queue_get(q, &buf, &len, 0), 0);
  cr_expect_eq(len, 1);
  free(buf);
  /* Zero-length items are items. */
  cr_expect_eq(bl_queue_put(q, NULL, 0, 0), 0);
  cr_assert_eq(bl_queue_get(q, &buf, &len, 0), 0);
  cr_expect_eq(len, 0);
  cr_expect_not_null(buf);
  free(buf);
  cr_expect_eq(bl_queue_qsize(q), 0);
  bl_queue_free(&q);
}

Test(queue, ring_full_blocks_put_without_maxsize) {
  bl_queue_t *q = new_queue(0, 4096);
  char blk[512] = {0};
  int n = 0;
  while (bl_queue_put_nowait(q, blk, sizeof blk) == 0) n++;
  cr_expect_gt(n, 3);
  cr_expect_eq(bl_queue_put(q, blk, sizeof blk, 20), BL_EFULL);
  void *b;
  size_t l;
  cr_assert_eq(bl_queue_get(q, &b, &l, 0), 0);
  free(b);
  cr_expect_eq(bl_queue_put_nowait(q, blk, sizeof blk), 0);
  bl_queue_free(&q);
}

Test(queue, close_is_local_to_the_process) {
  bl_queue_t *q = new_queue(0, 0);
  cr_expect_eq(bl_queue_join_thread(q), BL_ESTATE);
  cr_expect_eq(bl_queue_put(q, "x", 1, 0), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    /* The parent closes its handle before we get here; ours stays open. */
    void *b;
    size_t l;
    int rc = bl_queue_get(q, &b, &l, 10000);
    if (rc == 0) free(b);
    t_exit(rc == 0 && bl_queue_put(q, "y", 1, 0) == 0 ? 0 : 1);
  }
  cr_expect_eq(bl_queue_close(q), 0);
  cr_expect_eq(bl_queue_put(q, "z", 1, 0), BL_ESTATE);
  void *b;
  size_t l;
  cr_expect_eq(bl_queue_get(q, &b, &l, 0), BL_ECLOSED);
  cr_expect_eq(bl_queue_join_thread(q), 0);
  bl_queue_cancel_join_thread(q);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_queue_qsize(q), 1); /* the child's "y" is there */
  bl_queue_free(&q);
}

static void big_items(size_t ring) {
  bl_queue_t *q = new_queue(0, ring);
  size_t big = (16u << 20) + 12345;
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    char *buf = malloc(big + sizeof(item_hdr_t));
    if (!buf) t_exit(2);
    for (uint32_t i = 0; i < 2; i++) {
      size_t n = make_item(buf, 1, i, i == 0 ? big : 100);
      if (bl_queue_put(q, buf, n, 30000) != 0) t_exit(1);
    }
    free(buf);
    t_exit(0);
  }
  for (uint32_t i = 0; i < 2; i++) {
    void *buf = NULL;
    size_t len = 0;
    cr_assert_eq(bl_queue_get(q, &buf, &len, 30000), 0);
    item_hdr_t h;
    cr_expect(check_item(buf, len, &h), "item %u torn", i);
    cr_expect_eq(h.seq, i);
    cr_expect_eq(h.len, i == 0 ? big : 100);
    free(buf);
  }
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_queue_qsize(q), 0);
  bl_queue_free(&q);
}

Test(queue, item_of_16_mib_streams_through_ring, .timeout = 60) { big_items(0); }
Test(queue, item_of_16_mib_fits_big_ring, .timeout = 60) { big_items(64u << 20); }

/* ---- many producers (processes x threads), checksummed ---- */

typedef struct prod_arg {
  bl_queue_t *q;
  uint32_t id;
  int n;
} prod_arg_t;

static size_t item_len(uint32_t id, uint32_t seq) {
  uint32_t r = id * 2654435761u ^ seq * 40503u;
  switch (r % 4) {
  case 0: return 0;
  case 1: return r % 100;
  case 2: return r % 3000;
  default: return r % 40000; /* > ring/4: streamed in chunks */
  }
}

static void *producer(void *arg) {
  prod_arg_t *a = arg;
  char *buf = malloc(sizeof(item_hdr_t) + 40000);
  if (!buf) return (void *)1;
  for (int s = 0; s < a->n; s++) {
    size_t n = make_item(buf, a->id, (uint32_t)s, item_len(a->id, (uint32_t)s));
    if (bl_queue_put(a->q, buf, n, 30000) != 0) {
      free(buf);
      return (void *)1;
    }
  }
  free(buf);
  return NULL;
}

Test(queue, concurrent_producers_never_interleave, .timeout = 60) {
  bl_queue_t *q = new_queue(0, 16384);
  enum { PROCS = 3, THREADS = 2 };
  int n = t_under_valgrind() ? 15 : 300;
  pid_t pids[PROCS];
  for (int p = 0; p < PROCS; p++) {
    pids[p] = t_fork();
    cr_assert_geq(pids[p], 0);
    if (pids[p] == 0) {
      pthread_t th[THREADS];
      prod_arg_t args[THREADS];
      for (int t = 0; t < THREADS; t++) {
        args[t] = (prod_arg_t){q, (uint32_t)(p * THREADS + t), n};
        if (pthread_create(&th[t], NULL, producer, &args[t])) t_exit(3);
      }
      int bad = 0;
      for (int t = 0; t < THREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        bad |= r != NULL;
      }
      t_exit(bad);
    }
  }
  /* Two consumers: this process and a child; each reports what it saw. */
  int fds[2];
  cr_assert_eq(bl__pipe(fds), 0);
  int total = PROCS * THREADS * n;
  bl_value_t *cv = NULL;
  cr_assert_eq(bl_raw_value_new(&cv, 'l'), 0);
  long *consumed = bl_value_ptr(cv);
  pid_t cons = t_fork();
  cr_assert_geq(cons, 0);
  int next[PROCS * THREADS] = {0};
  int mine = 0, bad = 0;
  uint64_t give_up = t_now_ms() + 50000;
  while (__atomic_load_n(consumed, __ATOMIC_SEQ_CST) < total &&
         t_now_ms() < give_up) {
    void *buf;
    size_t len;
    int rc = bl_queue_get(q, &buf, &len, 200);
    if (rc == BL_EEMPTY) continue;
    if (rc != 0) { bad++; break; }
    __atomic_add_fetch(consumed, 1, __ATOMIC_SEQ_CST);
    item_hdr_t h;
    if (!check_item(buf, len, &h) || h.producer >= PROCS * THREADS)
      bad++;
    else if ((int)h.seq < next[h.producer])
      bad++; /* FIFO per producer, even split across two getters */
    else
      next[h.producer] = (int)h.seq + 1;
    mine++;
    free(buf);
  }
  if (cons == 0) {
    int rep[2] = {mine, bad};
    (void)!write(fds[1], rep, sizeof rep);
    t_exit(0);
  }
  int rep[2] = {0, 0};
  cr_assert_eq(bl__read_full(fds[0], rep, sizeof rep), 0);
  cr_expect_eq(t_wait_exit(cons), 0);
  for (int p = 0; p < PROCS; p++) cr_expect_eq(t_wait_exit(pids[p]), 0);
  cr_expect_eq(bad + rep[1], 0, "torn or reordered items");
  cr_expect_eq(mine + rep[0], total);
  cr_expect_eq(bl_queue_qsize(q), 0);
  bl_value_free(&cv);
  close(fds[0]);
  close(fds[1]);
  bl_queue_free(&q);
}

Test(queue, joinable_join_waits_for_task_done_across_processes) {
  bl_queue_t *q = NULL;
  cr_assert_eq(bl_joinable_queue_new(&q, NULL), 0);
  cr_expect_eq(bl_queue_task_done(q), BL_EOVERRELEASE);
  cr_expect_eq(bl_queue_join(q, 0), 0);
  for (int i = 0; i < 5; i++) cr_assert_eq(bl_queue_put(q, &i, sizeof i, 0), 0);
  cr_expect_eq(bl_queue_join(q, 30), BL_ETIMEOUT);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 5; i++) {
      void *b;
      size_t l;
      if (bl_queue_get(q, &b, &l, 10000) != 0) t_exit(1);
      free(b);
      usleep(2000);
      if (bl_queue_task_done(q) != 0) t_exit(2);
    }
    t_exit(bl_queue_task_done(q) == BL_EOVERRELEASE ? 0 : 3);
  }
  cr_expect_eq(bl_queue_join(q, 10000), 0);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_queue_task_done(q), BL_EOVERRELEASE);
  bl_queue_free(&q);
}

Test(queue, simple_queue) {
  bl_simple_queue_t *q = NULL;
  cr_assert_eq(bl_simple_queue_new(&q), 0);
  cr_expect_eq(bl_simple_queue_empty(q), 1);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_simple_queue_put(q, "hello", 5) == 0 ? 0 : 1);
  void *b;
  size_t l;
  cr_assert_eq(bl_simple_queue_get(q, &b, &l), 0);
  cr_expect_eq(l, 5);
  cr_expect_eq(memcmp(b, "hello", 5), 0);
  free(b);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_simple_queue_close(q), 0);
  cr_expect_eq(bl_simple_queue_put(q, "x", 1), BL_ESTATE);
  bl_simple_queue_free(&q);
}

/* ---- SIGKILL at random points ---- */

static _Noreturn void run_producer(bl_queue_t *q, uint32_t id) {
  char *buf = malloc(sizeof(item_hdr_t) + 40000);
  for (uint32_t s = 0;; s++) {
    size_t n = make_item(buf, id, s, item_len(id, s));
    int rc = bl_queue_put(q, buf, n, 20000);
    if (rc != 0) t_exit(10);
  }
}

/* Consume until an item from producer `stop_id` arrives; exit 0 if every
 * item was whole. */
static _Noreturn void run_consumer(bl_queue_t *q, uint32_t stop_id) {
  for (;;) {
    void *buf;
    size_t len;
    int rc = bl_queue_get(q, &buf, &len, 20000);
    if (rc != 0) t_exit(10);
    item_hdr_t h;
    int ok = check_item(buf, len, &h);
    free(buf);
    if (!ok) t_exit(11);
    if (h.producer == stop_id) t_exit(0);
  }
}

Test(queue, sigkill_of_producer_or_consumer_never_wedges, .timeout = 120) {
  srand(42);
  int iters = t_under_valgrind() ? 3 : 20;
  char *buf = malloc(sizeof(item_hdr_t) + 40000);
  cr_assert_not_null(buf);
  for (int it = 0; it < iters; it++) {
    bl_queue_t *q = new_queue(it % 3 == 0 ? 4 : 0, 16384);
    pid_t prod = t_fork();
    cr_assert_geq(prod, 0);
    if (prod == 0) run_producer(q, 1);
    pid_t prod2 = t_fork();
    cr_assert_geq(prod2, 0);
    if (prod2 == 0) run_producer(q, 2);
    pid_t cons = t_fork();
    cr_assert_geq(cons, 0);
    if (cons == 0) run_consumer(q, 99);
    usleep((useconds_t)(rand() % 20000));
    int kill_consumer = rand() % 2;
    if (kill_consumer) {
      kill(cons, SIGKILL);
      cr_expect_eq(t_wait_exit(cons), -SIGKILL);
      /* Survivors: this process takes over and still gets whole items. */
      for (int k = 0; k < 20; k++) {
        void *b;
        size_t l;
        int rc = bl_queue_get(q, &b, &l, 10000);
        cr_assert_eq(rc, 0, "iteration %d: get after consumer death: %s", it,
                     bl_strerror(rc));
        item_hdr_t h;
        cr_expect(check_item(b, l, &h), "iteration %d: torn item", it);
        free(b);
      }
      kill(prod, SIGKILL);
      kill(prod2, SIGKILL);
    } else {
      kill(prod, SIGKILL);
      cr_expect_eq(t_wait_exit(prod), -SIGKILL);
      kill(prod2, SIGKILL);
      cr_expect_eq(t_wait_exit(prod2), -SIGKILL);
      /* The consumer must get past whatever was in flight. */
      size_t n = make_item(buf, 99, 0, (size_t)(rand() % 30000));
      cr_assert_eq(bl_queue_put(q, buf, n, 10000), 0, "iteration %d", it);
      cr_expect_eq(t_wait_exit(cons), 0, "iteration %d: consumer", it);
    }
    if (kill_consumer) {
      t_wait_exit(prod);
      t_wait_exit(prod2);
    }
    bl_queue_free(&q);
  }
  free(buf);
}

Test(queue, no_fd_leak) {
  int before = t_count_fds();
  for (int i = 0; i < 20; i++) {
    bl_queue_t *q = NULL;
    cr_assert_eq(bl_joinable_queue_new(&q, NULL), 0);
    bl_queue_free(&q);
  }
  cr_expect_eq(t_count_fds(), before);
}

/* ---- fault points ---- */

#ifdef FIU_ENABLE
#define FI_SETUP() fiu_init(0)
#else
#define FI_SETUP() cr_skip_test("fault injection not compiled in")
#endif

Test(queue, fault_put_write_fails_cleanly) {
  FI_SETUP();
#ifdef FIU_ENABLE
  bl_queue_t *q = new_queue(0, 8192);
  fiu_enable("queue/put/write", 1, (void *)(intptr_t)EIO, FIU_ONETIME);
  cr_expect_eq(bl_queue_put(q, "a", 1, 0), -EIO);
  cr_expect_eq(bl_queue_qsize(q), 0);
  fiu_disable("queue/put/write"); /* re-enabling a spent name leaks in libfiu */
  /* A streamed item failing mid-way is aborted, never half-delivered. */
  static char big[20000];
  memset(big, 7, sizeof big);
  cr_expect_eq(bl_queue_put(q, "b", 1, 0), 0);
  fiu_enable("queue/put/write", 1, (void *)(intptr_t)ENOSPC, FIU_ONETIME);
  cr_expect_eq(bl_queue_put(q, big, sizeof big, 1000), -ENOSPC);
  fiu_disable("queue/put/write");
  cr_expect_eq(bl_queue_put(q, "c", 1, 0), 0);
  void *b;
  size_t l;
  cr_assert_eq(bl_queue_get(q, &b, &l, 0), 0);
  cr_expect_eq(*(char *)b, 'b');
  free(b);
  cr_assert_eq(bl_queue_get(q, &b, &l, 0), 0);
  cr_expect_eq(*(char *)b, 'c');
  free(b);
  cr_expect_eq(bl_queue_get(q, &b, &l, 0), BL_EEMPTY);
  bl_queue_free(&q);
#endif
}

Test(queue, fault_crash_inside_put_and_get_rolls_back) {
  FI_SETUP();
#ifdef FIU_ENABLE
  bl_queue_t *q = new_queue(0, 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    fiu_enable("queue/put/crash", 1, NULL, FIU_ONETIME);
    bl_queue_put(q, "lost", 4, -1);
    t_exit(1);
  }
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  void *b;
  size_t l;
  /* The put died before its commit: no trace, and the mutex recovered. */
  cr_expect_eq(bl_queue_get(q, &b, &l, 0), BL_EEMPTY);
  cr_assert_eq(bl_queue_put(q, "kept", 4, 0), 0);
  pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    fiu_enable("queue/get/crash", 1, NULL, FIU_ONETIME);
    void *bb;
    size_t ll;
    bl_queue_get(q, &bb, &ll, -1);
    t_exit(1);
  }
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  /* The get died before its commit: the item is still queued. */
  cr_assert_eq(bl_queue_get(q, &b, &l, 0), 0);
  cr_expect_eq(l, 4);
  cr_expect_eq(memcmp(b, "kept", 4), 0);
  free(b);
  cr_expect_eq(bl_queue_qsize(q), 0);
  bl_queue_free(&q);
#endif
}

Test(queue, fault_shm_creation) {
  FI_SETUP();
#ifdef FIU_ENABLE
  const char *pts[] = {"shm/create/memfd", "shm/size/ftruncate", "shm/map/mmap"};
  int errs[] = {EMFILE, ENOSPC, ENOMEM};
  int before = t_count_fds();
  for (int i = 0; i < 3; i++) {
    bl_queue_t *q = NULL;
    fiu_enable(pts[i], 1, (void *)(intptr_t)errs[i], FIU_ONETIME);
    cr_expect_eq(bl_queue_new(&q, NULL), -errs[i], "%s", pts[i]);
    cr_expect_null(q);
  }
  cr_expect_eq(t_count_fds(), before);
#endif
}

/* A producer killed in the middle of a streamed item: the item is aborted,
 * its committed chunks are skipped, later items arrive whole. */
Test(queue, producer_killed_mid_stream_aborts_only_its_item, .timeout = 60) {
  bl_queue_t *q = new_queue(0, 8192);
  size_t big = 1u << 20;
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    char *buf = calloc(1, big);
    bl_queue_put(q, buf, big, -1); /* blocks once the ring is full */
    t_exit(1);
  }
  /* Wait until it is streaming (the ring holds a chunk), then kill it. */
  while (bl_queue_qsize(q) == 0) usleep(1000); /* no event for "mid-put" */
  kill(pid, SIGKILL);
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  cr_expect_eq(bl_queue_put(q, "after", 5, 10000), 0);
  void *b;
  size_t l;
  cr_assert_eq(bl_queue_get(q, &b, &l, 10000), 0);
  cr_expect_eq(l, 5);
  cr_expect_eq(memcmp(b, "after", 5), 0);
  free(b);
  cr_expect_eq(bl_queue_get(q, &b, &l, 0), BL_EEMPTY);
  cr_expect_eq(bl_queue_qsize(q), 0);
  bl_queue_free(&q);
}

/* A consumer killed while receiving a streamed item: that item is lost, the
 * producer is not stuck, and the next getter gets the next item whole. */
Test(queue, consumer_killed_mid_stream_loses_only_its_item, .timeout = 60) {
  bl_queue_t *q = new_queue(0, 8192);
  size_t big = 4u << 20;
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t prod = t_fork();
  cr_assert_geq(prod, 0);
  if (prod == 0) {
    char *buf = malloc(sizeof(item_hdr_t) + big);
    size_t n = make_item(buf, 1, 0, big);
    if (bl_queue_put(q, buf, n, 30000) != 0) t_exit(1);
    n = make_item(buf, 1, 1, 10);
    t_exit(bl_queue_put(q, buf, n, 30000) == 0 ? 0 : 2);
  }
  pid_t cons = t_fork();
  cr_assert_geq(cons, 0);
  if (cons == 0) {
    /* Tell the parent once the stream is flowing, then keep reading. */
    (void)!write(p[1], "x", 1);
    void *b;
    size_t l;
    bl_queue_get(q, &b, &l, -1);
    t_exit(3);
  }
  char c;
  cr_assert_eq(bl__read_full(p[0], &c, 1), 0);
  usleep(2000); /* let it get into the item; either way the outcome holds */
  kill(cons, SIGKILL);
  int st = t_wait_exit(cons);
  void *b;
  size_t l;
  item_hdr_t h;
  cr_assert_eq(bl_queue_get(q, &b, &l, 20000), 0);
  cr_expect(check_item(b, l, &h));
  if (st == -SIGKILL)
    cr_expect(h.seq == 1 || h.seq == 0, "seq %u", h.seq); /* 0 if killed before it began */
  else
    cr_expect_eq(h.seq, 1); /* the child got item 0 whole, then died in exit */
  free(b);
  cr_expect_eq(t_wait_exit(prod), 0);
  close(p[0]);
  close(p[1]);
  bl_queue_free(&q);
}

Test(queue, put_timing_out_mid_stream_aborts_and_frees_the_ring) {
  bl_queue_t *q = new_queue(0, 8192);
  size_t big = 1u << 20;
  char *buf = calloc(1, big);
  cr_assert_not_null(buf);
  /* Nobody reads: the ring fills, the put gives up and cuts its chunks off. */
  cr_expect_eq(bl_queue_put(q, buf, big, 50), BL_EFULL);
  cr_expect_eq(bl_queue_qsize(q), 0);
  free(buf);
  char blk[1500] = {1};
  cr_expect_eq(bl_queue_put_nowait(q, blk, sizeof blk), 0);
  void *b;
  size_t l;
  cr_assert_eq(bl_queue_get(q, &b, &l, 0), 0);
  cr_expect_eq(l, sizeof blk);
  free(b);
  cr_expect_eq(bl_queue_get(q, &b, &l, 0), BL_EEMPTY);
  bl_queue_free(&q);
}

Test(queue, fault_producer_dies_mid_stream_while_reader_assembles) {
  FI_SETUP();
#ifdef FIU_ENABLE
  bl_queue_t *q = new_queue(0, 8192);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    fiu_enable("queue/put/mid-stream", 1, NULL, FIU_ONETIME);
    char *buf = calloc(1, 1u << 20);
    bl_queue_put(q, buf, 1u << 20, -1);
    t_exit(1);
  }
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  /* The ring holds the first chunk; we start assembling, then learn the
   * writer is dead: the item is dropped and the queue is empty. */
  void *b;
  size_t l;
  cr_expect_eq(bl_queue_get(q, &b, &l, 300), BL_EEMPTY);
  cr_expect_eq(bl_queue_qsize(q), 0);
  cr_assert_eq(bl_queue_put(q, "ok", 2, 0), 0);
  cr_assert_eq(bl_queue_get(q, &b, &l, 0), 0);
  cr_expect_eq(l, 2);
  free(b);
  bl_queue_free(&q);
#endif
}

Test(queue, fault_consumer_dies_mid_stream_producer_stops) {
  FI_SETUP();
#ifdef FIU_ENABLE
  bl_queue_t *q = new_queue(0, 8192);
  pid_t cons = t_fork();
  cr_assert_geq(cons, 0);
  if (cons == 0) {
    fiu_enable("queue/get/mid-stream", 1, NULL, FIU_ONETIME);
    void *b;
    size_t l;
    bl_queue_get(q, &b, &l, -1);
    t_exit(1);
  }
  pid_t prod = t_fork();
  cr_assert_geq(prod, 0);
  if (prod == 0) {
    size_t big = 4u << 20;
    char *buf = malloc(sizeof(item_hdr_t) + big);
    size_t n = make_item(buf, 1, 0, big);
    /* The taker dies after one chunk: the put still succeeds (the item was
     * taken) instead of waiting for a reader that will never come. */
    if (bl_queue_put(q, buf, n, 30000) != 0) t_exit(1);
    n = make_item(buf, 1, 1, 10);
    t_exit(bl_queue_put(q, buf, n, 30000) == 0 ? 0 : 2);
  }
  cr_expect_eq(t_wait_exit(cons), -SIGKILL);
  cr_expect_eq(t_wait_exit(prod), 0);
  void *b;
  size_t l;
  item_hdr_t h;
  cr_assert_eq(bl_queue_get(q, &b, &l, 10000), 0);
  cr_expect(check_item(b, l, &h));
  cr_expect_eq(h.seq, 1);
  free(b);
  cr_expect_eq(bl_queue_qsize(q), 0);
  bl_queue_free(&q);
#endif
}
