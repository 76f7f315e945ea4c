/* test_shm.c: Value/Array/RawValue/RawArray and the shared mappings under
 * them: typecodes, zeroing, wrap-around, locked counters from several
 * processes, nothing left in /dev/shm, no fd leak, fault points. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/errors.h>
#include <billiard/queue.h>
#include <billiard/sharedctypes.h>
#include <billiard/synchronize.h>

#include "helpers.h"
#include "internal.h"
#include "shm.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

Test(shm, typecodes_sizes_and_unknown) {
  const char *codes = "cbBhHiIlLqQfdu";
  for (const char *c = codes; *c; c++) {
    bl_value_t *v = NULL;
    cr_assert_eq(bl_value_new(&v, *c, NULL), 0, "typecode %c", *c);
    cr_expect_eq(bl_value_typecode(v), *c);
    cr_expect_eq(bl_value_len(v), 1);
    cr_expect_eq((int)bl_value_itemsize(v), bl_typecode_size(*c));
    cr_expect_not_null(bl_value_get_lock(v));
    int64_t x = 1;
    cr_expect_eq(bl_value_get_i64(v, 0, &x), 0);
    cr_expect_eq(x, 0, "zeroed");
    bl_value_free(&v);
    cr_expect_null(v);
  }
  bl_value_t *v = NULL;
  cr_expect_eq(bl_value_new(&v, 'z', NULL), -EINVAL);
  cr_expect_eq(bl_raw_array_new(&v, 'x', 3), -EINVAL);
  cr_expect_eq(bl_array_new(&v, 'i', 0, NULL), -EINVAL);
  cr_expect_eq(bl_typecode_size('?'), -EINVAL);
  cr_expect_null(v);
}

Test(shm, conversions_wrap_like_ctypes) {
  bl_value_t *v = NULL;
  cr_assert_eq(bl_value_new(&v, 'b', NULL), 0);
  int64_t x;
  cr_expect_eq(bl_value_set_i64(v, 0, 200), 0);
  cr_expect_eq(bl_value_get_i64(v, 0, &x), 0);
  cr_expect_eq(x, -56); /* billiard: Value('b', 200).value == -56 */
  bl_value_free(&v);
  cr_assert_eq(bl_value_new(&v, 'H', NULL), 0);
  cr_expect_eq(bl_value_set_i64(v, 0, -1), 0);
  cr_expect_eq(bl_value_get_i64(v, 0, &x), 0);
  cr_expect_eq(x, 65535);
  bl_value_free(&v);
  cr_assert_eq(bl_value_new(&v, 'Q', NULL), 0);
  uint64_t u;
  cr_expect_eq(bl_value_set_u64(v, 0, UINT64_MAX), 0);
  cr_expect_eq(bl_value_get_u64(v, 0, &u), 0);
  cr_expect_eq(u, UINT64_MAX);
  bl_value_free(&v);
  cr_assert_eq(bl_value_new(&v, 'd', NULL), 0);
  double d;
  cr_expect_eq(bl_value_set_f64(v, 0, 2.5), 0);
  cr_expect_eq(bl_value_get_f64(v, 0, &d), 0);
  cr_expect_float_eq(d, 2.5, 1e-12);
  cr_expect_eq(bl_value_get_i64(v, 0, &x), 0);
  cr_expect_eq(x, 2);
  cr_expect_eq(bl_value_set_i64(v, 0, 7), 0);
  cr_expect_eq(bl_value_get_f64(v, 0, &d), 0);
  cr_expect_float_eq(d, 7.0, 1e-12);
  bl_value_free(&v);
  cr_assert_eq(bl_value_new(&v, 'i', NULL), 0);
  cr_expect_eq(bl_value_set_f64(v, 0, 1e30), -ERANGE);
  cr_expect_eq(bl_value_set_f64(v, 0, -3.7), 0);
  cr_expect_eq(bl_value_get_i64(v, 0, &x), 0);
  cr_expect_eq(x, -3);
  bl_value_free(&v);
}

Test(shm, arrays_bounds_and_raw_forms) {
  bl_value_t *a = NULL;
  cr_assert_eq(bl_raw_array_new(&a, 'i', 10), 0);
  cr_expect_null(bl_value_get_lock(a));
  cr_expect_eq(bl_value_len(a), 10);
  int *p = bl_value_ptr(a);
  for (int i = 0; i < 10; i++) cr_expect_eq(p[i], 0);
  for (int i = 0; i < 10; i++) cr_expect_eq(bl_value_set_i64(a, (size_t)i, i * i), 0);
  cr_expect_eq(p[9], 81);
  int64_t x;
  cr_expect_eq(bl_value_get_i64(a, 10, &x), -ERANGE);
  cr_expect_eq(bl_value_set_i64(a, 10, 1), -ERANGE);
  /* Children see and change the same memory. */
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int ok = p[3] == 9;
    p[3] = -1;
    t_exit(ok ? 0 : 1);
  }
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(p[3], -1);
  bl_value_free(&a);

  bl_value_t *v = NULL;
  cr_assert_eq(bl_raw_value_new(&v, 'c'), 0);
  cr_expect_null(bl_value_get_lock(v));
  bl_value_free(&v);
  bl_shared_options_t o;
  bl_shared_options_init(&o);
  o.lock = 0; /* billiard's lock=False */
  cr_assert_eq(bl_array_new(&v, 'd', 4, &o), 0);
  cr_expect_null(bl_value_get_lock(v));
  bl_value_free(&v);
  o.size = 3;
  cr_expect_eq(bl_value_new(&v, 'i', &o), -EINVAL);
}

static int add_under_lock(bl_value_t *v, int n) {
  bl_lock_t *l = bl_value_get_lock(v);
  for (int i = 0; i < n; i++) {
    if (!BL_ACQUIRED(bl_lock_acquire(l, 10000))) return 2;
    int64_t x;
    /* Nested: .value takes the same RLock again. */
    if (bl_value_get_i64(v, 0, &x) || bl_value_set_i64(v, 0, x + 1)) return 3;
    bl_lock_release(l);
  }
  return 0;
}

Test(shm, locked_value_increments_sum_exactly) {
  bl_value_t *v = NULL;
  cr_assert_eq(bl_value_new(&v, 'q', NULL), 0);
  cr_expect(bl_lock_is_recursive(bl_value_get_lock(v)));
  int n = t_under_valgrind() ? 300 : 20000;
  pid_t pids[2];
  for (int i = 0; i < 2; i++) {
    pids[i] = t_fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0) t_exit(add_under_lock(v, n));
  }
  for (int i = 0; i < 2; i++) cr_expect_eq(t_wait_exit(pids[i]), 0);
  int64_t x;
  cr_expect_eq(bl_value_get_i64(v, 0, &x), 0);
  cr_expect_eq(x, 2 * n);
  bl_value_free(&v);
}

Test(shm, value_with_existing_lock) {
  bl_lock_t *l = NULL;
  cr_assert_eq(bl_lock_new(&l), 0);
  bl_shared_options_t o;
  bl_shared_options_init(&o);
  o.use_lock = l;
  bl_value_t *a = NULL, *b = NULL;
  cr_assert_eq(bl_value_new(&a, 'i', &o), 0);
  cr_assert_eq(bl_array_new(&b, 'i', 3, &o), 0);
  cr_expect_eq(bl_value_get_lock(a), l);
  cr_expect_eq(bl_value_get_lock(b), l);
  /* A plain Lock is not re-entrant: .value from another process waits
   * while we hold it. */
  cr_assert_eq(bl_lock_acquire(l, -1), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_value_set_i64(a, 0, 5) == 0 ? 0 : 1);
  int64_t x = 0;
  cr_expect_eq(*(int *)bl_value_ptr(a), 0);
  cr_assert_eq(bl_lock_release(l), 0);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_value_get_i64(a, 0, &x), 0);
  cr_expect_eq(x, 5);
  bl_value_free(&a);
  bl_value_free(&b);
  bl_lock_free(&l);
}

/* Other processes on the machine (faketime, POSIX semaphores) may add and
 * remove /dev/shm entries while we run, so count only entries that this
 * process maps: ours would have to be mapped to be used. */
static int dev_shm_entries(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "/dev/shm/")) n++;
  fclose(f);
  return n;
}

/* Entries in /dev/shm that could be ours by name. */
static int dev_shm_named_ours(void) {
  DIR *d = opendir("/dev/shm");
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, "billiard") || strncmp(e->d_name, "bl_", 3) == 0) n++;
  closedir(d);
  return n;
}

static int memfd_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "/memfd:billiard")) n++;
  fclose(f);
  return n;
}

Test(shm, nothing_in_dev_shm_and_no_fd_leak_even_after_a_crash) {
  int shm_before = dev_shm_entries(), fds_before = t_count_fds();
  bl_value_t *v = NULL, *a = NULL;
  bl_lock_t *l = NULL;
  bl_semaphore_t *s = NULL;
  bl_event_t *e = NULL;
  bl_condition_t *c = NULL;
  bl_barrier_t *b = NULL;
  bl_queue_t *q = NULL;
  cr_assert_eq(bl_value_new(&v, 'i', NULL), 0);
  cr_assert_eq(bl_raw_array_new(&a, 'd', 1000), 0);
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_semaphore_new(&s, 1), 0);
  cr_assert_eq(bl_event_new(&e), 0);
  cr_assert_eq(bl_condition_new(&c, NULL), 0);
  cr_assert_eq(bl_barrier_new(&b, 2, NULL, NULL), 0);
  cr_assert_eq(bl_queue_new(&q, NULL), 0);
  cr_expect_eq(dev_shm_entries(), shm_before);
  cr_expect_geq(memfd_mappings(), 8); /* the objects are memfd mappings */
  /* A child that dies holding things leaves nothing behind either. */
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    bl_lock_acquire(l, -1);
    bl_semaphore_acquire(s, -1);
    bl_queue_put(q, "x", 1, 0);
    raise(SIGKILL);
  }
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  cr_expect_eq(dev_shm_entries(), shm_before);
  cr_expect_eq(dev_shm_named_ours(), 0);
  bl_value_free(&v);
  bl_value_free(&a);
  bl_lock_free(&l);
  bl_semaphore_free(&s);
  bl_event_free(&e);
  bl_condition_free(&c);
  bl_barrier_free(&b);
  bl_queue_free(&q);
  cr_expect_eq(dev_shm_entries(), shm_before);
  cr_expect_eq(memfd_mappings(), 0);
  cr_expect_eq(t_count_fds(), fds_before);
}

Test(shm, liveness_of_self_zombie_and_recycled_ids) {
  cr_expect_eq(bl__who_alive(bl__self_thread()), 1);
  cr_expect_eq(bl__who_alive(bl__self_process()), 1);
  cr_expect_eq(bl__self_tid(), BL__WHO_ID(bl__self_thread()));
  /* Same id, another start time: a recycled id is not the owner. */
  uint64_t fake = bl__self_process() + (1ull << 32);
  cr_expect_eq(bl__who_alive(fake), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    uint64_t me = bl__self_process();
    (void)!write(p[1], &me, sizeof me);
    pause();
    t_exit(0);
  }
  uint64_t who = 0;
  cr_assert_eq(bl__read_full(p[0], &who, sizeof who), 0);
  cr_expect_eq(BL__WHO_ID(who), pid, "the child's cached id was reset by fork");
  cr_expect_eq(bl__who_alive(who), 1);
  kill(pid, SIGKILL);
  /* Zombie until reaped: must count as dead. Poll: no event says "zombie". */
  int dead = 0;
  for (int i = 0; i < 1000 && !dead; i++) {
    dead = !bl__who_alive(who);
    if (!dead) usleep(2000);
  }
  cr_expect(dead);
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  cr_expect_eq(bl__who_alive(who), 0);
  close(p[0]);
  close(p[1]);
}

typedef struct th_arg {
  int go[2], done[2];
  uint64_t who;
} th_arg_t;

static void *thread_body(void *arg) {
  th_arg_t *a = arg;
  a->who = bl__self_thread();
  (void)!write(a->done[1], "x", 1);
  char c;
  (void)!read(a->go[0], &c, 1);
  return NULL;
}

Test(shm, liveness_of_a_thread) {
  /* Queue tokens and Lock owners are threads: /proc/<tid> must work for a
   * thread that is not its process's leader. */
  th_arg_t a;
  cr_assert_eq(bl__pipe(a.go), 0);
  cr_assert_eq(bl__pipe(a.done), 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, thread_body, &a), 0);
  char c;
  cr_assert_eq(bl__read_full(a.done[0], &c, 1), 0);
  cr_expect_neq(BL__WHO_ID(a.who), getpid());
  cr_expect_eq(bl__who_alive(a.who), 1);
  (void)!write(a.go[1], "x", 1);
  pthread_join(th, NULL);
  cr_expect_eq(bl__who_alive(a.who), 0);
  close(a.go[0]); close(a.go[1]); close(a.done[0]); close(a.done[1]);
}

#ifdef FIU_ENABLE
#define FI_SETUP() fiu_init(0)
#else
#define FI_SETUP() cr_skip_test("fault injection not compiled in")
#endif

Test(shm, fault_points_at_creation_fail_every_object_cleanly) {
  FI_SETUP();
#ifdef FIU_ENABLE
  const char *pts[] = {"shm/create/memfd", "shm/size/ftruncate", "shm/map/mmap"};
  int errs[] = {ENFILE, ENOMEM, EAGAIN};
  int before = t_count_fds();
  for (int i = 0; i < 3; i++) {
    bl_value_t *v = NULL;
    bl_lock_t *l = NULL;
    bl_semaphore_t *s = NULL;
    bl_event_t *e = NULL;
    bl_condition_t *c = NULL;
    bl_barrier_t *b = NULL;
    fiu_enable(pts[i], 1, (void *)(intptr_t)errs[i], 0);
    cr_expect_eq(bl_value_new(&v, 'i', NULL), -errs[i], "%s", pts[i]);
    cr_expect_eq(bl_raw_array_new(&v, 'i', 4), -errs[i]);
    cr_expect_eq(bl_lock_new(&l), -errs[i]);
    cr_expect_eq(bl_rlock_new(&l), -errs[i]);
    cr_expect_eq(bl_semaphore_new(&s, 1), -errs[i]);
    cr_expect_eq(bl_event_new(&e), -errs[i]);
    cr_expect_eq(bl_condition_new(&c, NULL), -errs[i]);
    cr_expect_eq(bl_barrier_new(&b, 2, NULL, NULL), -errs[i]);
    fiu_disable(pts[i]);
    cr_expect(!v && !l && !s && !e && !c && !b);
  }
  cr_expect_eq(t_count_fds(), before);
  bl_value_t *v = NULL;
  cr_expect_eq(bl_value_new(&v, 'i', NULL), 0);
  bl_value_free(&v);
#endif
}

Test(shm, fault_in_condition_creation_unwinds) {
  FI_SETUP();
#ifdef FIU_ENABLE
  /* The condition's RLock lives in the condition's own mapping: one
   * mapping to fail, nothing (wrapper, memfd) left behind. */
  int before = t_count_fds();
  fiu_enable("shm/map/mmap", 1, (void *)(intptr_t)ENOMEM, FIU_ONETIME);
  bl_condition_t *c = NULL;
  cr_expect_eq(bl_condition_new(&c, NULL), -ENOMEM);
  cr_expect_null(c);
  cr_expect_eq(t_count_fds(), before);
  fiu_disable("shm/map/mmap");
#endif
}
