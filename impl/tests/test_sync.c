/* test_sync.c: Lock, RLock, Semaphore, Event, Condition, Barrier across
 * real processes, including owner death. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/errors.h>
#include <billiard/sharedctypes.h>
#include <billiard/synchronize.h>

#include "helpers.h"
#include "internal.h"

/* Child → parent "I got here" over a pipe. */
static void say(int fd) { (void)!write(fd, "x", 1); }
static int hear(int fd) {
  char c;
  return bl__read_full(fd, &c, 1);
}

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  t_wait_exit(pid);
}

Test(sync, lock_basics) {
  bl_lock_t *l = NULL;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_expect_eq(bl_lock_is_recursive(l), 0);
  cr_expect_eq(bl_lock_release(l), BL_EOVERRELEASE);
  cr_expect_eq(bl_lock_acquire(l, 0), 0);
  cr_expect(bl_lock_is_mine(l));
  /* Not re-entrant: a second acquire by the holder times out. */
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl_lock_acquire(l, 50), BL_ETIMEOUT);
  cr_expect_geq(t_now_ms() - t0, 40);
  cr_expect_eq(bl_lock_release(l), 0);
  cr_expect_eq(bl_lock_release(l), BL_EOVERRELEASE);
  bl_lock_free(&l);
  cr_expect_null(l);
  cr_expect_eq(bl_lock_new(NULL), -EINVAL);
}

Test(sync, lock_released_by_another_process) {
  bl_lock_t *l = NULL;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_lock_acquire(l, -1), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_lock_release(l) == 0 ? 0 : 1); /* billiard allows */
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_lock_acquire(l, 0), 0);
  bl_lock_free(&l);
}

static int counter_worker(bl_lock_t *l, volatile long *ctr, int n) {
  for (int i = 0; i < n; i++) {
    int rc = bl_lock_acquire(l, 10000);
    if (rc != 0) return 2;
    long v = *ctr;
    for (volatile int k = 0; k < 10; k++) {}
    *ctr = v + 1;
    if (bl_lock_release(l) != 0) return 3;
  }
  return 0;
}

Test(sync, lock_excludes_across_processes) {
  bl_lock_t *l = NULL;
  bl_value_t *v = NULL;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_raw_value_new(&v, 'l'), 0);
  volatile long *ctr = bl_value_ptr(v);
  int n = t_under_valgrind() ? 500 : 20000;
  pid_t pids[3];
  for (int i = 0; i < 3; i++) {
    pids[i] = t_fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0) t_exit(counter_worker(l, ctr, n));
  }
  for (int i = 0; i < 3; i++) cr_expect_eq(t_wait_exit(pids[i]), 0);
  cr_expect_eq(*ctr, 3L * n);
  bl_value_free(&v);
  bl_lock_free(&l);
}

static void *release_other_thread(void *arg) {
  return (void *)(intptr_t)bl_lock_release(arg);
}

Test(sync, rlock_semantics) {
  bl_lock_t *r = NULL;
  cr_assert_eq(bl_rlock_new(&r), 0);
  cr_expect(bl_lock_is_recursive(r));
  cr_expect_eq(bl_lock_release(r), BL_ESTATE); /* not owned */
  cr_expect_eq(bl_lock_acquire(r, 0), 0);
  cr_expect_eq(bl_lock_acquire(r, 0), 0);
  cr_expect_eq(bl_lock_acquire(r, -1), 0);
  cr_expect_eq(bl_lock_count(r), 3);
  /* Another thread, then another process, may not release it. */
  pthread_t th;
  void *res;
  cr_assert_eq(pthread_create(&th, NULL, release_other_thread, r), 0);
  pthread_join(th, &res);
  cr_expect_eq((int)(intptr_t)res, BL_ESTATE);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int a = bl_lock_release(r) == BL_ESTATE;
    int b = bl_lock_acquire(r, 0) == BL_ETIMEOUT;
    t_exit(a && b ? 0 : 1);
  }
  cr_expect_eq(t_wait_exit(pid), 0);
  for (int i = 0; i < 3; i++) cr_expect_eq(bl_lock_release(r), 0);
  cr_expect_eq(bl_lock_count(r), 0);
  cr_expect_eq(bl_lock_release(r), BL_ESTATE);
  bl_lock_free(&r);
}

/* A child takes the lock and is SIGKILLed (left a zombie, not reaped):
 * the next acquirer gets the lock with BL_EOWNERDEAD. */
static void owner_death(int recursive) {
  bl_lock_t *l = NULL;
  cr_assert_eq(recursive ? bl_rlock_new(&l) : bl_lock_new(&l), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    bl_lock_acquire(l, -1);
    if (recursive) bl_lock_acquire(l, -1);
    say(p[1]);
    pause();
    t_exit(0);
  }
  cr_assert_eq(hear(p[0]), 0);
  kill(pid, SIGKILL);
  /* Still a zombie here: liveness must see through that. */
  cr_expect_eq(bl_lock_acquire(l, 5000), BL_EOWNERDEAD);
  cr_expect(bl_lock_is_mine(l));
  cr_expect_eq(bl_lock_count(l), 1);
  cr_expect_eq(bl_lock_release(l), 0);
  cr_expect_eq(bl_lock_acquire(l, 0), 0);
  cr_expect_eq(bl_lock_release(l), 0);
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  close(p[0]);
  close(p[1]);
  bl_lock_free(&l);
}

Test(sync, lock_owner_death_gives_ownerdead) { owner_death(0); }
Test(sync, rlock_owner_death_gives_ownerdead) { owner_death(1); }

Test(sync, lock_owner_death_non_blocking_and_waiting) {
  bl_lock_t *l = NULL;
  cr_assert_eq(bl_lock_new(&l), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t holder = t_fork();
  cr_assert_geq(holder, 0);
  if (holder == 0) {
    bl_lock_acquire(l, -1);
    say(p[1]);
    pause();
    t_exit(0);
  }
  cr_assert_eq(hear(p[0]), 0);
  /* A waiter already blocked when the holder dies is let in. */
  pid_t waiter = t_fork();
  cr_assert_geq(waiter, 0);
  if (waiter == 0) {
    say(p[1]);
    int rc = bl_lock_acquire(l, 10000);
    t_exit(rc == BL_EOWNERDEAD ? 0 : 1);
  }
  cr_assert_eq(hear(p[0]), 0);
  kill_and_reap(holder);
  cr_expect_eq(t_wait_exit(waiter), 0);
  /* The waiter died holding it in turn: a non-blocking try recovers it. */
  cr_expect_eq(bl_lock_acquire(l, 0), BL_EOWNERDEAD);
  cr_expect_eq(bl_lock_release(l), 0);
  close(p[0]);
  close(p[1]);
  bl_lock_free(&l);
}

/* Seeded repeat: two processes hammer a lock-protected counter; one of them
 * is SIGKILLed at a random moment (often inside the critical section). The
 * survivor must always finish. */
Test(sync, random_kill_of_lock_holder_never_wedges, .timeout = 60) {
  srand(1234);
  int iters = t_under_valgrind() ? 4 : 20;
  for (int it = 0; it < iters; it++) {
    bl_lock_t *l = NULL;
    bl_value_t *v = NULL;
    cr_assert_eq(bl_lock_new(&l), 0);
    cr_assert_eq(bl_raw_value_new(&v, 'l'), 0);
    volatile long *ctr = bl_value_ptr(v);
    pid_t victim = t_fork();
    cr_assert_geq(victim, 0);
    if (victim == 0) {
      for (;;) {
        int rc = bl_lock_acquire(l, -1);
        if (!BL_ACQUIRED(rc)) t_exit(2);
        (*ctr)++;
        bl_lock_release(l);
      }
    }
    int n = t_under_valgrind() ? 200 : 3000;
    pid_t survivor = t_fork();
    cr_assert_geq(survivor, 0);
    if (survivor == 0) {
      for (int i = 0; i < n; i++) {
        int rc = bl_lock_acquire(l, 20000);
        if (!BL_ACQUIRED(rc)) t_exit(2);
        bl_lock_release(l);
      }
      t_exit(0);
    }
    usleep((useconds_t)(rand() % 3000));
    kill_and_reap(victim);
    cr_expect_eq(t_wait_exit(survivor), 0, "iteration %d", it);
    int rc = bl_lock_acquire(l, 5000);
    cr_expect(BL_ACQUIRED(rc), "iteration %d: rc %d", it, rc);
    bl_value_free(&v);
    bl_lock_free(&l);
  }
}

Test(sync, semaphore_counts_and_timeouts) {
  bl_semaphore_t *s = NULL;
  cr_expect_eq(bl_semaphore_new(&s, -1), -EINVAL);
  cr_assert_eq(bl_semaphore_new(&s, 2), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 0), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 0), 0);
  cr_expect_eq(bl_semaphore_value(s), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 0), BL_ETIMEOUT);
  cr_expect_eq(bl_semaphore_acquire(s, 30), BL_ETIMEOUT);
  /* A plain Semaphore may be released above its start value. */
  for (int i = 0; i < 3; i++) cr_expect_eq(bl_semaphore_release(s), 0);
  cr_expect_eq(bl_semaphore_value(s), 3);
  /* Released from another process wakes a waiter here. */
  cr_assert_eq(bl_semaphore_acquire(s, 0), 0);
  cr_assert_eq(bl_semaphore_acquire(s, 0), 0);
  cr_assert_eq(bl_semaphore_acquire(s, 0), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    usleep(20000); /* let the parent block first; correctness does not depend on it */
    t_exit(bl_semaphore_release(s) == 0 ? 0 : 1);
  }
  cr_expect_eq(bl_semaphore_acquire(s, 10000), 0);
  cr_expect_eq(t_wait_exit(pid), 0);
  bl_semaphore_free(&s);
  cr_expect_null(s);
}

Test(sync, bounded_semaphore_over_release) {
  bl_semaphore_t *s = NULL;
  cr_assert_eq(bl_bounded_semaphore_new(&s, 1), 0);
  cr_expect_eq(bl_semaphore_release(s), BL_EOVERRELEASE);
  cr_expect_eq(bl_semaphore_acquire(s, 0), 0);
  cr_expect_eq(bl_semaphore_release(s), 0);
  cr_expect_eq(bl_semaphore_release(s), BL_EOVERRELEASE);
  cr_expect_eq(bl_semaphore_value(s), 1);
  bl_semaphore_free(&s);
}

Test(sync, semaphore_units_of_dead_holder_come_back) {
  bl_semaphore_t *s = NULL;
  cr_assert_eq(bl_bounded_semaphore_new(&s, 2), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    bl_semaphore_acquire(s, -1);
    bl_semaphore_acquire(s, -1);
    say(p[1]);
    pause();
    t_exit(0);
  }
  cr_assert_eq(hear(p[0]), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 0), BL_ETIMEOUT);
  kill(pid, SIGKILL); /* a zombie until reaped below */
  cr_expect_eq(bl_semaphore_acquire(s, 5000), BL_EOWNERDEAD);
  cr_expect_eq(bl_semaphore_acquire(s, 0), BL_EOWNERDEAD);
  cr_expect_eq(bl_semaphore_acquire(s, 0), BL_ETIMEOUT);
  cr_expect_eq(bl_semaphore_release(s), 0);
  cr_expect_eq(bl_semaphore_release(s), 0);
  cr_expect_eq(bl_semaphore_release(s), BL_EOVERRELEASE);
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  close(p[0]);
  close(p[1]);
  bl_semaphore_free(&s);
}

Test(sync, semaphore_handoff_is_not_a_leak) {
  /* Taken in one process, given back by another, then the taker exits
   * normally: nothing may be "recovered". */
  bl_semaphore_t *s = NULL;
  cr_assert_eq(bl_semaphore_new(&s, 1), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_semaphore_acquire(s, 1000) == 0 ? 0 : 1);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_semaphore_release(s), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 0), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 0), BL_ETIMEOUT);
  bl_semaphore_free(&s);
}

Test(sync, event_across_processes) {
  bl_event_t *e = NULL;
  cr_assert_eq(bl_event_new(&e), 0);
  cr_expect_eq(bl_event_is_set(e), 0);
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl_event_wait(e, 50), 0);
  cr_expect_geq(t_now_ms() - t0, 40);
  cr_expect_eq(bl_event_wait(e, 0), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_event_wait(e, 10000) == 1 ? 0 : 1);
  bl_event_set(e);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_event_is_set(e), 1);
  cr_expect_eq(bl_event_wait(e, -1), 1);
  bl_event_clear(e);
  cr_expect_eq(bl_event_is_set(e), 0);
  cr_expect_eq(bl_event_wait(e, 0), 0);
  bl_event_free(&e);
}

static int flag_is_set(void *arg) { return (int)*(volatile long *)arg; }

Test(sync, condition_rules_and_timeouts) {
  bl_condition_t *c = NULL;
  cr_assert_eq(bl_condition_new(&c, NULL), 0);
  cr_expect(bl_lock_is_recursive(bl_condition_lock(c)));
  cr_expect_eq(bl_condition_wait(c, 10), BL_ESTATE);
  cr_expect_eq(bl_condition_notify(c, 1), BL_ESTATE);
  cr_expect_eq(bl_condition_notify_all(c), BL_ESTATE);
  cr_assert_eq(bl_condition_acquire(c, -1), 0);
  cr_assert_eq(bl_condition_acquire(c, -1), 0); /* RLock: depth 2 */
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl_condition_wait(c, 50), 0);
  cr_expect_geq(t_now_ms() - t0, 40);
  cr_expect_eq(bl_lock_count(bl_condition_lock(c)), 2); /* depth restored */
  long zero = 0;
  cr_expect_eq(bl_condition_wait_for(c, flag_is_set, &zero, 20), 0);
  cr_expect_eq(bl_condition_notify(c, 1), 0);
  cr_expect_eq(bl_condition_release(c), 0);
  cr_expect_eq(bl_condition_release(c), 0);
  cr_expect_eq(bl_condition_release(c), BL_ESTATE);
  bl_condition_free(&c);

  /* With a plain Lock supplied by the caller. */
  bl_lock_t *l = NULL;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_condition_new(&c, l), 0);
  cr_expect_eq(bl_condition_lock(c), l);
  cr_assert_eq(bl_condition_acquire(c, -1), 0);
  cr_expect_eq(bl_condition_wait(c, 10), 0);
  cr_expect(bl_lock_is_mine(l));
  cr_expect_eq(bl_condition_release(c), 0);
  bl_condition_free(&c);
  bl_lock_free(&l);
}

Test(sync, condition_wait_for_across_processes) {
  bl_condition_t *c = NULL;
  bl_value_t *v = NULL;
  cr_assert_eq(bl_condition_new(&c, NULL), 0);
  cr_assert_eq(bl_raw_value_new(&v, 'l'), 0);
  volatile long *flag = bl_value_ptr(v);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t pids[2];
  for (int i = 0; i < 2; i++) {
    pids[i] = t_fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0) {
      if (!BL_ACQUIRED(bl_condition_acquire(c, -1))) t_exit(2);
      say(p[1]);
      int r = bl_condition_wait_for(c, flag_is_set, (void *)flag, 10000);
      bl_condition_release(c);
      t_exit(r == 1 ? 0 : 1);
    }
  }
  cr_assert_eq(hear(p[0]), 0);
  cr_assert_eq(hear(p[0]), 0);
  cr_assert_eq(bl_condition_acquire(c, -1), 0);
  /* A notify before the flag: the waiters re-check and sleep again. */
  cr_expect_eq(bl_condition_notify_all(c), 0);
  *flag = 1;
  cr_expect_eq(bl_condition_notify_all(c), 0);
  cr_expect_eq(bl_condition_release(c), 0);
  for (int i = 0; i < 2; i++) cr_expect_eq(t_wait_exit(pids[i]), 0);
  close(p[0]);
  close(p[1]);
  bl_value_free(&v);
  bl_condition_free(&c);
}

Test(sync, condition_notify_one_wakes_a_waiter) {
  bl_condition_t *c = NULL;
  cr_assert_eq(bl_condition_new(&c, NULL), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    bl_condition_acquire(c, -1);
    say(p[1]);
    int r = bl_condition_wait(c, 10000);
    bl_condition_release(c);
    t_exit(r == 1 ? 0 : 1);
  }
  cr_assert_eq(hear(p[0]), 0);
  /* Once we hold the lock the child is inside wait (it released it). */
  cr_assert_eq(bl_condition_acquire(c, -1), 0);
  cr_expect_eq(bl_condition_notify(c, 1), 0);
  cr_expect_eq(bl_condition_release(c), 0);
  cr_expect_eq(t_wait_exit(pid), 0);
  close(p[0]);
  close(p[1]);
  bl_condition_free(&c);
}

static int count_action(void *arg) {
  __atomic_add_fetch((long *)arg, 1, __ATOMIC_SEQ_CST);
  return 0;
}
static int failing_action(void *arg) {
  (void)arg;
  return -1;
}

Test(sync, barrier_releases_parties_and_runs_action_once) {
  bl_value_t *v = NULL;
  cr_assert_eq(bl_raw_array_new(&v, 'l', 4), 0);
  long *a = bl_value_ptr(v);
  bl_barrier_t *b = NULL;
  cr_expect_eq(bl_barrier_new(&b, 0, NULL, NULL), -EINVAL);
  cr_assert_eq(bl_barrier_new(&b, 3, count_action, &a[3]), 0);
  cr_expect_eq(bl_barrier_parties(b), 3);
  pid_t pids[2];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 2; i++) {
      pids[i] = t_fork();
      cr_assert_geq(pids[i], 0);
      if (pids[i] == 0) {
        int idx = bl_barrier_wait(b, 10000);
        if (idx < 0) t_exit(1);
        __atomic_add_fetch(&a[idx], 1, __ATOMIC_SEQ_CST);
        t_exit(0);
      }
    }
    int idx = bl_barrier_wait(b, 10000);
    cr_assert_geq(idx, 0);
    __atomic_add_fetch(&a[idx], 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 2; i++) cr_expect_eq(t_wait_exit(pids[i]), 0);
  }
  /* Every index handed out once per round; the action ran once per round. */
  for (int i = 0; i < 3; i++) cr_expect_eq(a[i], 2, "index %d", i);
  cr_expect_eq(a[3], 2);
  cr_expect_eq(bl_barrier_broken(b), 0);
  bl_barrier_free(&b);
  bl_value_free(&v);
}

Test(sync, barrier_timeout_abort_reset_and_failed_action) {
  bl_barrier_t *b = NULL;
  cr_assert_eq(bl_barrier_new(&b, 2, NULL, NULL), 0);
  /* Timeout breaks it for everybody. */
  cr_expect_eq(bl_barrier_wait(b, 30), BL_EBROKENBARRIER);
  cr_expect_eq(bl_barrier_broken(b), 1);
  cr_expect_eq(bl_barrier_wait(b, 1000), BL_EBROKENBARRIER);
  bl_barrier_reset(b);
  cr_expect_eq(bl_barrier_broken(b), 0);
  cr_expect_eq(bl_barrier_n_waiting(b), 0);
  /* A waiter in another process is broken out by abort(). */
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_barrier_wait(b, 10000) == BL_EBROKENBARRIER ? 0 : 1);
  while (bl_barrier_n_waiting(b) == 0) usleep(1000); /* no event for "is waiting" */
  bl_barrier_abort(b);
  cr_expect_eq(t_wait_exit(pid), 0);
  /* ...and by reset(). */
  bl_barrier_reset(b);
  pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_barrier_wait(b, 10000) == BL_EBROKENBARRIER ? 0 : 1);
  while (bl_barrier_n_waiting(b) == 0) usleep(1000);
  bl_barrier_reset(b);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_barrier_broken(b), 0);
  bl_barrier_free(&b);

  /* A failing action breaks the barrier. */
  cr_assert_eq(bl_barrier_new(&b, 2, failing_action, NULL), 0);
  pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(bl_barrier_wait(b, 10000) == BL_EBROKENBARRIER ? 0 : 1);
  cr_expect_eq(bl_barrier_wait(b, 10000), BL_EBROKENBARRIER);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(bl_barrier_broken(b), 1);
  bl_barrier_free(&b);
}

Test(sync, barrier_party_death_breaks_it) {
  bl_barrier_t *b = NULL;
  cr_assert_eq(bl_barrier_new(&b, 3, NULL, NULL), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    bl_barrier_wait(b, -1);
    t_exit(0);
  }
  while (bl_barrier_n_waiting(b) == 0) usleep(1000);
  kill(pid, SIGKILL);
  /* Without a timeout this would wait forever for the third party. */
  cr_expect_eq(bl_barrier_wait(b, -1), BL_EBROKENBARRIER);
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  bl_barrier_free(&b);
}

/* Seeded repeat: two processes use a BoundedSemaphore(2) as a resource
 * limiter; one is SIGKILLed at a random moment, maybe holding units. The
 * survivor must finish, and the count must come back to its bound. */
Test(sync, random_kill_of_semaphore_holder_recovers_units, .timeout = 60) {
  srand(777);
  int iters = t_under_valgrind() ? 3 : 20;
  for (int it = 0; it < iters; it++) {
    bl_semaphore_t *s = NULL;
    cr_assert_eq(bl_bounded_semaphore_new(&s, 2), 0);
    pid_t victim = t_fork();
    cr_assert_geq(victim, 0);
    if (victim == 0) {
      for (;;) {
        if (!BL_ACQUIRED(bl_semaphore_acquire(s, -1))) t_exit(2);
        if (!BL_ACQUIRED(bl_semaphore_acquire(s, -1))) t_exit(2);
        bl_semaphore_release(s);
        bl_semaphore_release(s);
      }
    }
    pid_t survivor = t_fork();
    cr_assert_geq(survivor, 0);
    if (survivor == 0) {
      int n = t_under_valgrind() ? 100 : 2000;
      for (int i = 0; i < n; i++) {
        if (!BL_ACQUIRED(bl_semaphore_acquire(s, 20000))) t_exit(2);
        if (bl_semaphore_release(s) != 0) t_exit(3);
      }
      t_exit(0);
    }
    usleep((useconds_t)(rand() % 3000));
    kill_and_reap(victim);
    cr_expect_eq(t_wait_exit(survivor), 0, "iteration %d", it);
    /* Both units are available again (after recovery if the victim held
     * any), and no more than that. */
    for (int k = 0; k < 2; k++) {
      int rc = bl_semaphore_acquire(s, 5000);
      cr_expect(BL_ACQUIRED(rc), "iteration %d unit %d: %d", it, k, rc);
    }
    cr_expect_eq(bl_semaphore_acquire(s, 0), BL_ETIMEOUT, "iteration %d", it);
    bl_semaphore_free(&s);
  }
}

Test(sync, condition_waiter_learns_lock_owner_died) {
  bl_condition_t *c = NULL;
  cr_assert_eq(bl_condition_new(&c, NULL), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t waiter = t_fork();
  cr_assert_geq(waiter, 0);
  if (waiter == 0) {
    bl_condition_acquire(c, -1);
    say(p[1]);
    int r = bl_condition_wait(c, 20000);
    t_exit(r == BL_EOWNERDEAD && bl_lock_is_mine(bl_condition_lock(c)) ? 0 : 1);
  }
  cr_assert_eq(hear(p[0]), 0);
  pid_t notifier = t_fork();
  cr_assert_geq(notifier, 0);
  if (notifier == 0) {
    bl_condition_acquire(c, -1); /* the waiter released it inside wait */
    bl_condition_notify_all(c);
    say(p[1]);
    pause(); /* dies holding the lock */
    t_exit(0);
  }
  cr_assert_eq(hear(p[0]), 0);
  kill_and_reap(notifier);
  cr_expect_eq(t_wait_exit(waiter), 0);
  close(p[0]);
  close(p[1]);
  bl_condition_free(&c);
}
