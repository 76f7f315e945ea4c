/* test_manager.c: SyncManager lifecycle, shared dict/list/Namespace/Value
 * used from several processes, Lock/Queue/Event through the server,
 * authentication, and a dead manager seen by proxies. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/errors.h>
#include <billiard/manager.h>

#include "helpers.h"
#include "internal.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

static bl_manager_t *start_manager(void) {
  bl_manager_t *m = NULL;
  cr_assert_eq(bl_manager_new(&m, NULL), 0);
  cr_assert_eq(bl_manager_start(m), 0);
  return m;
}

/* Get key as a string (for checks); NULL when missing. Caller frees. */
static char *dget(bl_proxy_t *d, const char *key) {
  void *v = NULL;
  size_t n = 0;
  if (bl_dict_get(d, key, &v, &n)) return NULL;
  char *s = malloc(n + 1);
  memcpy(s, v, n);
  s[n] = 0;
  free(v);
  return s;
}

Test(manager, lifecycle_and_idempotent_shutdown) {
  bl_manager_t *m = start_manager();
  cr_expect_gt(bl_manager_pid(m), 0);
  cr_expect_eq(bl_manager_address(m)[0], '@');
  cr_expect_eq(bl_manager_start(m), BL_ESTATE);
  bl_proxy_t *d = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  cr_expect_eq(bl_dict_set(d, "k", "v", 1), 0);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  void *v = NULL;
  size_t n;
  cr_expect_eq(bl_dict_get(d, "k", &v, &n), BL_ENOTRUNNING);
  cr_expect_eq(bl_manager_start(m), BL_ESTATE);
  bl_proxy_t *late = NULL; /* billiard: AssertionError 'server not yet started' */
  cr_expect_eq(bl_manager_dict(m, &late), BL_ESTATE);
  cr_expect_null(late);
  bl_proxy_free(&d);
  cr_expect_null(d);
  bl_manager_free(&m);
  cr_expect_null(m);
  bl_manager_options_t o;
  bl_manager_options_init(&o);
  o.authkey = "k";
  o.authkey_len = 0;
  cr_expect_eq(bl_manager_new(&m, &o), -EINVAL);
}

Test(manager, dict_round_trip_from_two_children) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *d = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  cr_assert_eq(bl_dict_set(d, "from-parent", "P", 1), 0);
  pid_t c[2];
  for (int i = 0; i < 2; i++) {
    c[i] = t_fork();
    cr_assert_geq(c[i], 0);
    if (c[i] == 0) {
      /* Each child opens its own connection with the inherited handle. */
      char key[16], val[16];
      snprintf(key, sizeof key, "child%d", i);
      snprintf(val, sizeof val, "pid%d", (int)getpid());
      int rc = bl_dict_set(d, key, val, strlen(val)) ? 1 : 0;
      char *p = dget(d, "from-parent");
      if (!p || strcmp(p, "P") != 0) rc = 2;
      free(p);
      t_exit(rc);
    }
  }
  for (int i = 0; i < 2; i++) cr_expect_eq(t_wait_exit(c[i]), 0);
  size_t n = 0;
  cr_expect_eq(bl_dict_len(d, &n), 0);
  cr_expect_eq(n, 3);
  for (int i = 0; i < 2; i++) {
    char key[16], want[16];
    snprintf(key, sizeof key, "child%d", i);
    snprintf(want, sizeof want, "pid%d", (int)c[i]);
    char *got = dget(d, key);
    cr_expect(got && strcmp(got, want) == 0, "%s = %s", key, got ? got : "(missing)");
    free(got);
  }
  cr_expect_eq(bl_dict_del(d, "child0"), 0);
  cr_expect_eq(bl_dict_del(d, "child0"), BL_ENOTFOUND);
  void *v = NULL;
  cr_expect_eq(bl_dict_get(d, "child0", &v, &n), BL_ENOTFOUND);
  cr_expect_eq(bl_list_append(d, "x", 1), -EINVAL); /* wrong kind */
  bl_proxy_free(&d);
  bl_manager_free(&m);
}

Test(manager, list_namespace_value_from_children) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *l = NULL, *ns = NULL, *val = NULL;
  cr_assert_eq(bl_manager_list(m, &l), 0);
  cr_assert_eq(bl_manager_namespace(m, &ns), 0);
  cr_assert_eq(bl_manager_value(m, &val, "init", 4), 0);
  pid_t c[2];
  for (int i = 0; i < 2; i++) {
    c[i] = t_fork();
    cr_assert_geq(c[i], 0);
    if (c[i] == 0) {
      char b = (char)('a' + i);
      int rc = bl_list_append(l, &b, 1) ? 1 : 0;
      if (i == 0 && bl_namespace_set(ns, "x", "42", 2)) rc = 2;
      if (i == 1 && bl_mvalue_set(val, "changed", 7)) rc = 3;
      t_exit(rc);
    }
  }
  for (int i = 0; i < 2; i++) cr_expect_eq(t_wait_exit(c[i]), 0);
  size_t n = 0;
  cr_expect_eq(bl_list_len(l, &n), 0);
  cr_expect_eq(n, 2);
  void *v = NULL;
  cr_assert_eq(bl_list_get(l, -1, &v, &n), 0);
  cr_expect_eq(n, 1);
  free(v);
  cr_expect_eq(bl_list_get(l, 2, &v, &n), -ERANGE);
  cr_expect_eq(bl_list_get(l, -3, &v, &n), -ERANGE);
  cr_expect_eq(bl_list_set(l, 0, "zz", 2), 0);
  cr_assert_eq(bl_list_get(l, 0, &v, &n), 0);
  cr_expect(n == 2 && memcmp(v, "zz", 2) == 0);
  free(v);
  cr_assert_eq(bl_namespace_get(ns, "x", &v, &n), 0);
  cr_expect(n == 2 && memcmp(v, "42", 2) == 0);
  free(v);
  cr_expect_eq(bl_namespace_get(ns, "y", &v, &n), BL_ENOTFOUND);
  cr_assert_eq(bl_mvalue_get(val, &v, &n), 0);
  cr_expect(n == 7 && memcmp(v, "changed", 7) == 0);
  free(v);
  bl_proxy_free(&l);
  bl_proxy_free(&ns);
  bl_proxy_free(&val);
  bl_manager_free(&m);
}

Test(manager, lock_through_manager) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *lk = NULL;
  cr_assert_eq(bl_manager_lock(m, &lk), 0);
  cr_assert_eq(bl_mlock_acquire(lk, -1), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    int rc = 0;
    if (bl_mlock_acquire(lk, 0) != BL_ETIMEOUT) rc = 1;
    if (bl_mlock_acquire(lk, 50) != BL_ETIMEOUT) rc = 2;
    char ok = 1;
    (void)bl__write_full(p[1], &ok, 1); /* parent may release now */
    if (rc == 0 && bl_mlock_acquire(lk, 60000) != 0) rc = 3;
    if (rc == 0 && bl_mlock_release(lk) != 0) rc = 4;
    t_exit(rc);
  }
  char ok;
  cr_assert_eq(bl__read_full(p[0], &ok, 1), 0);
  cr_expect_eq(bl_mlock_release(lk), 0);
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_mlock_release(lk), BL_EOVERRELEASE);
  close(p[0]);
  close(p[1]);
  bl_proxy_free(&lk);
  bl_manager_free(&m);
}

Test(manager, queue_and_event_through_manager) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *q = NULL, *ev = NULL;
  cr_assert_eq(bl_manager_queue(m, &q), 0);
  cr_assert_eq(bl_manager_event(m, &ev), 0);
  void *v = NULL;
  size_t n = 0;
  cr_expect_eq(bl_mqueue_get(q, &v, &n, 20), BL_EEMPTY);
  cr_expect_eq(bl_mevent_is_set(ev), 0);
  cr_expect_eq(bl_mevent_wait(ev, 20), 0);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
      if (bl_mqueue_put(q, &i, sizeof i)) rc = 1;
    if (rc == 0 && bl_mevent_set(ev)) rc = 2;
    t_exit(rc);
  }
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(bl_mqueue_get(q, &v, &n, 60000), 0);
    int got = -1;
    cr_assert_eq(n, sizeof got);
    memcpy(&got, v, sizeof got);
    free(v);
    cr_expect_eq(got, i);
  }
  cr_expect_eq(bl_mevent_wait(ev, 60000), 1);
  cr_expect_eq(bl_mevent_is_set(ev), 1);
  cr_expect_eq(bl_mevent_clear(ev), 0);
  cr_expect_eq(bl_mevent_is_set(ev), 0);
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_mqueue_size(q, &n), 0);
  cr_expect_eq(n, 0);
  bl_proxy_free(&q);
  bl_proxy_free(&ev);
  bl_manager_free(&m);
}

Test(manager, authkey_checked_on_connect) {
  bl_manager_options_t o;
  bl_manager_options_init(&o);
  o.authkey = "secret";
  o.authkey_len = 6;
  bl_manager_t *m = NULL, *other = NULL;
  cr_assert_eq(bl_manager_new(&m, &o), 0);
  cr_assert_eq(bl_manager_start(m), 0);
  bl_proxy_t *d = NULL, *d2 = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  cr_assert_eq(bl_dict_set(d, "k", "v", 1), 0);

  cr_expect_eq(bl_manager_connect(&other, bl_manager_address(m), "wrong", 5), BL_EAUTH);
  cr_expect_null(other);
  cr_assert_eq(bl_manager_connect(&other, bl_manager_address(m), "secret", 6), 0);
  cr_assert_eq(bl_proxy_attach(other, bl_proxy_id(d), &d2), 0);
  char *s = dget(d2, "k");
  cr_expect(s && strcmp(s, "v") == 0);
  free(s);
  bl_proxy_t *none = NULL;
  cr_expect_eq(bl_proxy_attach(other, 9999, &none), BL_ENOTFOUND);
  cr_expect_null(none);
  cr_expect_eq(bl_manager_shutdown(other), BL_ESTATE); /* not the owner */
  bl_proxy_free(&d2);
  bl_manager_free(&other);
  bl_proxy_free(&d);
  bl_manager_free(&m);
}

Test(manager, killed_manager_is_an_error_not_a_hang) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *d = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  cr_assert_eq(bl_dict_set(d, "k", "v", 1), 0);
  pid_t srv = bl_manager_pid(m);
  int pfd = bl__pidfd_open(srv);
  cr_assert_geq(pfd, 0);
  cr_assert_eq(kill(srv, SIGKILL), 0);
  cr_assert_eq(bl__poll_fd(pfd, POLLIN, 30000), 1);
  close(pfd);
  /* The open connection breaks: EOFError; reconnecting is refused. */
  cr_expect_eq(bl_dict_set(d, "k", "w", 1), BL_EEOF);
  /* Refused once the socket is gone; BL_EEOF if the connect still raced
   * the dying server's last moments (its death pipe can close first). */
  int rc = bl_dict_set(d, "k", "w", 1);
  cr_expect(rc == -ECONNREFUSED || rc == BL_EEOF, "got %d", rc);
  cr_expect_eq(bl_manager_shutdown(m), 0); /* reaps the dead server */
  bl_proxy_free(&d);
  bl_manager_free(&m);
}

Test(manager, blocked_call_returns_when_manager_dies) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *q = NULL;
  cr_assert_eq(bl_manager_queue(m, &q), 0);
  pid_t srv = bl_manager_pid(m);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    char b;
    int rc = bl__read_full(p[0], &b, 1) == 0 && kill(srv, SIGKILL) == 0 ? 0 : 1;
    t_exit(rc);
  }
  char b = 1;
  cr_assert_eq(bl__write_full(p[1], &b, 1), 0);
  void *v = NULL;
  size_t n = 0;
  /* Waits forever on a live manager: only the server's death ends it. */
  cr_expect_eq(bl_mqueue_get(q, &v, &n, -1), BL_EEOF);
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  close(p[0]);
  close(p[1]);
  bl_proxy_free(&q);
  bl_manager_free(&m);
}

Test(manager, listen_fault_point) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  fiu_init(0);
  cr_assert_eq(fiu_enable("manager/start/listen", 1, (void *)(intptr_t)EADDRINUSE,
                          FIU_ONETIME), 0);
  bl_manager_t *m = NULL;
  cr_assert_eq(bl_manager_new(&m, NULL), 0);
  cr_expect_eq(bl_manager_start(m), -EADDRINUSE);
  cr_expect_null(bl_manager_address(m));
  cr_expect_eq(bl_manager_start(m), 0); /* nothing was left half-started */
  bl_manager_free(&m);
#endif
}

Test(manager, joinable_queue_task_done_and_join) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *q = NULL;
  cr_assert_eq(bl_manager_joinable_queue(m, &q), 0);
  cr_expect_eq(bl_mqueue_join(q, 0), 0); /* nothing unfinished */
  cr_expect_eq(bl_mqueue_task_done(q), BL_EOVERRELEASE);
  cr_assert_eq(bl_mqueue_put(q, "a", 1), 0);
  cr_assert_eq(bl_mqueue_put(q, "b", 1), 0);
  cr_expect_eq(bl_mqueue_join(q, 20), BL_ETIMEOUT);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
      void *v = NULL;
      size_t n = 0;
      if (bl_mqueue_get(q, &v, &n, 60000) != 0) rc = 1;
      free(v);
      if (rc == 0 && bl_mqueue_task_done(q) != 0) rc = 2;
    }
    t_exit(rc);
  }
  cr_expect_eq(bl_mqueue_join(q, 60000), 0); /* returns once both are done */
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_mqueue_task_done(q), BL_EOVERRELEASE);
  cr_expect_eq(bl_mqueue_task_done(NULL), -EINVAL);
  bl_proxy_free(&q);
  bl_manager_free(&m);
}

Test(manager, rlock_reentrant_and_owned_by_the_connection) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *r = NULL;
  cr_assert_eq(bl_manager_rlock(m, &r), 0);
  cr_expect_eq(bl_mrelease(r), BL_EOVERRELEASE); /* unheld */
  cr_assert_eq(bl_macquire(r, -1), 0);
  cr_assert_eq(bl_macquire(r, 0), 0); /* re-entrant */
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    /* Another process, another connection: neither owner nor re-entrant. */
    int rc = bl_macquire(r, 0) != BL_ETIMEOUT ? 1 : bl_mrelease(r) != BL_EOVERRELEASE ? 2 : 0;
    t_exit(rc);
  }
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_mrelease(r), 0);
  cr_expect_eq(bl_mrelease(r), 0);
  cr_expect_eq(bl_mrelease(r), BL_EOVERRELEASE);
  c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) t_exit(bl_macquire(r, 60000) == 0 ? 0 : 1); /* dies holding it */
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_macquire(r, 20), BL_ETIMEOUT); /* as billiard: stays held */
  cr_expect_eq(bl_mlock_acquire(r, 0), -EINVAL); /* Lock-only call */
  bl_proxy_free(&r);
  bl_manager_free(&m);
}

Test(manager, semaphores) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *s = NULL, *b = NULL, *z = NULL;
  cr_assert_eq(bl_manager_semaphore(m, &s, 2), 0);
  cr_assert_eq(bl_manager_bounded_semaphore(m, &b, 1), 0);
  cr_assert_eq(bl_manager_semaphore(m, &z, 0), 0);
  bl_proxy_t *bad = NULL;
  cr_expect_eq(bl_manager_semaphore(m, &bad, -1), -EINVAL);
  cr_expect_eq(bl_macquire(s, 0), 0);
  cr_expect_eq(bl_macquire(s, 0), 0);
  cr_expect_eq(bl_macquire(s, 20), BL_ETIMEOUT);
  for (int i = 0; i < 3; i++) cr_expect_eq(bl_mrelease(s), 0); /* unbounded */
  cr_expect_eq(bl_mrelease(b), BL_EOVERRELEASE);
  cr_expect_eq(bl_macquire(b, 0), 0);
  cr_expect_eq(bl_macquire(b, 0), BL_ETIMEOUT);
  cr_expect_eq(bl_mrelease(b), 0);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) t_exit(bl_mrelease(z) == 0 ? 0 : 1); /* any process may release */
  cr_expect_eq(bl_macquire(z, 60000), 0);
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl_macquire(z, 0), BL_ETIMEOUT);
  bl_proxy_free(&s);
  bl_proxy_free(&b);
  bl_proxy_free(&z);
  bl_manager_free(&m);
}

Test(manager, condition_wait_notify) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *cv = NULL;
  cr_assert_eq(bl_manager_condition(m, &cv), 0);
  cr_expect_eq(bl_mcond_wait(cv, 0), BL_ESTATE); /* lock not held */
  cr_expect_eq(bl_mcond_notify(cv, 1), BL_ESTATE);
  cr_assert_eq(bl_macquire(cv, -1), 0);
  cr_assert_eq(bl_macquire(cv, -1), 0); /* its lock is an RLock */
  cr_expect_eq(bl_mcond_wait(cv, 20), 0); /* timed out, lock back */
  cr_expect_eq(bl_mcond_notify(cv, 1), 0); /* nobody waits: fine */
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    /* Gets the lock only once the parent waits (wait releases it). */
    int rc = bl_macquire(cv, 60000) != 0 ? 1 : bl_mcond_notify(cv, -1) != 0 ? 2
             : bl_mrelease(cv) != 0      ? 3 : 0;
    t_exit(rc);
  }
  cr_expect_eq(bl_mcond_wait(cv, 60000), 1);
  cr_expect_eq(t_wait_exit(c), 0);
  /* Both levels of the lock came back with the wait. */
  cr_expect_eq(bl_mrelease(cv), 0);
  cr_expect_eq(bl_mrelease(cv), 0);
  cr_expect_eq(bl_mrelease(cv), BL_EOVERRELEASE);
  bl_proxy_free(&cv);
  bl_manager_free(&m);
}

Test(manager, barrier_trips_breaks_and_resets) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *br = NULL, *quick = NULL;
  cr_assert_eq(bl_manager_barrier(m, &br, 3, -1), 0);
  pid_t c[2];
  for (int i = 0; i < 2; i++) {
    c[i] = t_fork();
    cr_assert_geq(c[i], 0);
    if (c[i] == 0) {
      int idx = bl_mbarrier_wait(br, 60000);
      t_exit(idx >= 0 && idx < 3 ? 10 + idx : 1);
    }
  }
  int idx = bl_mbarrier_wait(br, 60000);
  cr_expect(idx >= 0 && idx < 3, "index %d", idx);
  int sum = idx;
  for (int i = 0; i < 2; i++) sum += t_wait_exit(c[i]) - 10;
  cr_expect_eq(sum, 0 + 1 + 2); /* each arrival index once */
  int parties = 0, waiting = -1, broken = -1;
  cr_expect_eq(bl_mbarrier_info(br, &parties, &waiting, &broken), 0);
  cr_expect(parties == 3 && waiting == 0 && broken == 0);
  cr_expect_eq(bl_mbarrier_wait(br, 20), BL_EBROKENBARRIER); /* alone: times out */
  cr_expect_eq(bl_mbarrier_info(br, NULL, NULL, &broken), 0);
  cr_expect_eq(broken, 1);
  cr_expect_eq(bl_mbarrier_wait(br, 0), BL_EBROKENBARRIER);
  cr_expect_eq(bl_mbarrier_reset(br), 0);
  cr_expect_eq(bl_mbarrier_info(br, NULL, NULL, &broken), 0);
  cr_expect_eq(broken, 0);
  cr_expect_eq(bl_mbarrier_abort(br), 0);
  cr_expect_eq(bl_mbarrier_wait(br, -1), BL_EBROKENBARRIER);
  cr_assert_eq(bl_manager_barrier(m, &quick, 2, 20), 0);
  cr_expect_eq(bl_mbarrier_wait(quick, BL_MANAGER_BARRIER_DEFAULT), BL_EBROKENBARRIER);
  bl_proxy_t *bad = NULL;
  cr_expect_eq(bl_manager_barrier(m, &bad, 0, -1), -EINVAL);
  bl_proxy_free(&br);
  bl_proxy_free(&quick);
  bl_manager_free(&m);
}

Test(manager, array_fixed_length) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *a = NULL;
  cr_assert_eq(bl_manager_array(m, &a, 3, "0", 1), 0);
  size_t n = 0;
  cr_expect_eq(bl_marray_len(a, &n), 0);
  cr_expect_eq(n, 3);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) t_exit(bl_marray_set(a, -1, "zz", 2) == 0 ? 0 : 1);
  cr_expect_eq(t_wait_exit(c), 0);
  void *v = NULL;
  cr_assert_eq(bl_marray_get(a, 2, &v, &n), 0);
  cr_expect(n == 2 && memcmp(v, "zz", 2) == 0);
  free(v);
  cr_assert_eq(bl_marray_get(a, 0, &v, &n), 0);
  cr_expect(n == 1 && memcmp(v, "0", 1) == 0);
  free(v);
  cr_expect_eq(bl_marray_get(a, 3, &v, &n), -ERANGE);
  cr_expect_eq(bl_marray_set(a, -4, "x", 1), -ERANGE);
  cr_expect_eq(bl_list_append(a, "x", 1), -EINVAL); /* no append */
  bl_proxy_t *big = NULL;
  cr_expect_eq(bl_manager_array(m, &big, (1u << 20) + 1, "0", 1), -EINVAL);
  bl_proxy_free(&a);
  bl_manager_free(&m);
}

/* A registered type: a 64-bit counter. */
static int counter_create(const void *arg, size_t len, void **state) {
  if (len != sizeof(int64_t)) return -EINVAL;
  int64_t *c = malloc(sizeof *c);
  if (!c) return -ENOMEM;
  memcpy(c, arg, sizeof *c);
  *state = c;
  return 0;
}
static int counter_reply(int64_t v, void **out, size_t *outlen) {
  if (!(*out = malloc(sizeof v))) return -ENOMEM;
  memcpy(*out, &v, sizeof v);
  *outlen = sizeof v;
  return 0;
}
static int counter_incr(void *state, const void *in, size_t inlen, void **out, size_t *outlen) {
  int64_t d = 1;
  if (inlen == sizeof d) memcpy(&d, in, sizeof d);
  return counter_reply(*(int64_t *)state += d, out, outlen);
}
static int counter_get(void *state, const void *in, size_t inlen, void **out, size_t *outlen) {
  (void)in, (void)inlen;
  return counter_reply(*(int64_t *)state, out, outlen);
}
static int counter_fail(void *state, const void *in, size_t inlen, void **out, size_t *outlen) {
  (void)state, (void)in, (void)inlen, (void)outlen;
  *out = malloc(4); /* an error drops any reply */
  return -EDOM;
}
static int counter_sign(void *state, const void *in, size_t inlen, void **out, size_t *outlen) {
  (void)in, (void)inlen, (void)out, (void)outlen;
  return *(int64_t *)state > 0;
}
static const bl_manager_method_t counter_methods[] = {
    {"incr", counter_incr}, {"get", counter_get}, {"fail", counter_fail},
    {"positive", counter_sign}};

static int64_t counter_value(bl_proxy_t *px, const char *method, int64_t arg) {
  void *out = NULL;
  size_t n = 0;
  int rc = bl_proxy_call(px, method, &arg, sizeof arg, &out, &n);
  int64_t v = -999;
  if (rc == 0 && n == sizeof v) memcpy(&v, out, sizeof v);
  free(out);
  return v;
}

Test(manager, registered_type) {
  bl_manager_type_t t;
  bl_manager_type_init(&t);
  t.create = counter_create;
  t.methods = counter_methods;
  t.nmethods = BL__ARRAY_SIZE(counter_methods);
  cr_assert_eq(bl_manager_register("Counter", &t), 0);
  cr_expect_eq(bl_manager_register("", &t), -EINVAL);
  bl_manager_type_t bad = t;
  bad.create = NULL;
  cr_expect_eq(bl_manager_register("Bad", &bad), -EINVAL);
  bad = t;
  bad.reserved[0] = 1;
  cr_expect_eq(bl_manager_register("Bad", &bad), -EINVAL);

  bl_manager_t *m = start_manager();
  cr_assert_eq(bl_manager_register("Late", &t), 0); /* after start: unknown there */
  bl_proxy_t *px = NULL, *none = NULL;
  int64_t start = 5;
  cr_assert_eq(bl_manager_create(m, "Counter", &start, sizeof start, &px), 0);
  cr_expect_eq(bl_manager_create(m, "Late", &start, sizeof start, &none), BL_ENOTFOUND);
  cr_expect_eq(bl_manager_create(m, "Nope", NULL, 0, &none), BL_ENOTFOUND);
  cr_expect_eq(bl_manager_create(m, "Counter", "x", 1, &none), -EINVAL); /* its create */
  cr_expect_null(none);
  pid_t c[2];
  for (int i = 0; i < 2; i++) {
    c[i] = t_fork();
    cr_assert_geq(c[i], 0);
    if (c[i] == 0) {
      int rc = 0;
      for (int k = 0; k < 10 && rc == 0; k++)
        if (counter_value(px, "incr", 1) < 6) rc = 1;
      t_exit(rc);
    }
  }
  for (int i = 0; i < 2; i++) cr_expect_eq(t_wait_exit(c[i]), 0);
  cr_expect_eq(counter_value(px, "get", 0), 25);
  cr_expect_eq(counter_value(px, "incr", -30), -5);
  cr_expect_eq(bl_proxy_call(px, "positive", NULL, 0, NULL, NULL), 0);
  cr_expect_eq(bl_proxy_call(px, "fail", NULL, 0, NULL, NULL), -EDOM);
  cr_expect_eq(bl_proxy_call(px, "nope", NULL, 0, NULL, NULL), BL_ENOTFOUND);
  void *out = NULL;
  cr_expect_eq(bl_proxy_call(px, "get", NULL, 0, &out, NULL), -EINVAL);
  /* A proxy of another kind is not callable; a Counter is not a dict. */
  bl_proxy_t *d = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  cr_expect_eq(bl_proxy_call(d, "get", NULL, 0, NULL, NULL), -EINVAL);
  cr_expect_eq(bl_dict_set(px, "k", "v", 1), -EINVAL);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  cr_expect_eq(bl_proxy_call(px, "get", NULL, 0, NULL, NULL), BL_ENOTRUNNING);
  cr_expect_eq(bl_macquire(d, 0), -EINVAL);
  bl_proxy_free(&d);
  bl_proxy_free(&px);
  bl_manager_free(&m);
}

Test(manager, new_types_after_shutdown_fail_clearly) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *r = NULL, *cv = NULL, *br = NULL;
  cr_assert_eq(bl_manager_rlock(m, &r), 0);
  cr_assert_eq(bl_manager_condition(m, &cv), 0);
  cr_assert_eq(bl_manager_barrier(m, &br, 2, -1), 0);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  cr_expect_eq(bl_macquire(r, -1), BL_ENOTRUNNING);
  cr_expect_eq(bl_mcond_wait(cv, -1), BL_ENOTRUNNING);
  cr_expect_eq(bl_mbarrier_wait(br, -1), BL_ENOTRUNNING);
  bl_proxy_t *late = NULL;
  cr_expect_eq(bl_manager_semaphore(m, &late, 1), BL_ESTATE);
  bl_proxy_free(&r);
  bl_proxy_free(&cv);
  bl_proxy_free(&br);
  bl_manager_free(&m);
}

static void *blocked_get(void *arg) {
  void *v = NULL;
  size_t n = 0;
  int rc = bl_mqueue_get(arg, &v, &n, -1);
  free(v);
  return (void *)(intptr_t)rc;
}

/* A fork while another thread of the parent is inside a call on the same
 * handle (it holds the handle's mutex): the child's calls must not inherit
 * that lock. */
Test(manager, fork_while_another_thread_is_in_a_call) {
  bl_manager_t *m = start_manager(), *other = NULL;
  bl_proxy_t *q = NULL, *d = NULL, *q2 = NULL, *d2 = NULL;
  cr_assert_eq(bl_manager_queue(m, &q), 0);
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  /* The parent checks and wakes through a second handle: m stays busy. */
  size_t klen;
  const void *key = bl_manager_authkey(m, &klen);
  cr_assert_eq(bl_manager_connect(&other, bl_manager_address(m), key, klen), 0);
  cr_assert_eq(bl_proxy_attach(other, bl_proxy_id(q), &q2), 0);
  cr_assert_eq(bl_proxy_attach(other, bl_proxy_id(d), &d2), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, blocked_get, q), 0);
  /* Not a synchronisation: the outcome must be the same whether or not
   * the thread is inside its call yet; the pause makes it likely it is. */
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    alarm(60); /* a hang fails as SIGALRM, not as a stuck test */
    int rc = bl_dict_set(d, "child", "1", 1) == 0 ? 0 : 1;
    t_exit(rc);
  }
  cr_expect_eq(t_wait_exit(c), 0);
  char *s = dget(d2, "child");
  cr_expect(s && strcmp(s, "1") == 0);
  free(s);
  cr_assert_eq(bl_mqueue_put(q2, "x", 1), 0);
  void *ret = NULL;
  pthread_join(t, &ret);
  cr_expect_eq((intptr_t)ret, 0);
  bl_proxy_free(&q2);
  bl_proxy_free(&d2);
  bl_manager_free(&other);
  bl_proxy_free(&q);
  bl_proxy_free(&d);
  bl_manager_free(&m);
}

Test(manager, register_table_is_bounded_and_replaces) {
  bl_manager_type_t t;
  bl_manager_type_init(&t);
  t.create = counter_create;
  t.methods = counter_methods;
  t.nmethods = BL__ARRAY_SIZE(counter_methods);
  char name[BL_MANAGER_TYPEID_MAX + 2];
  for (int i = 0; i < BL_MANAGER_TYPES_MAX; i++) {
    snprintf(name, sizeof name, "T%d", i);
    cr_assert_eq(bl_manager_register(name, &t), 0);
  }
  cr_expect_eq(bl_manager_register("one-too-many", &t), -ENOSPC);
  cr_expect_eq(bl_manager_register("T0", &t), 0); /* replacing needs no slot */
  memset(name, 'x', sizeof name - 1);
  name[sizeof name - 1] = 0; /* BL_MANAGER_TYPEID_MAX + 1 bytes */
  cr_expect_eq(bl_manager_register(name, &t), -EINVAL);
  bl_manager_method_t nameless[] = {{NULL, counter_get}};
  bl_manager_type_t bad = t;
  bad.methods = nameless;
  bad.nmethods = 1;
  cr_expect_eq(bl_manager_register("T1", &bad), -EINVAL);
  bad.methods = NULL;
  cr_expect_eq(bl_manager_register("T1", &bad), -EINVAL);
  bad = t;
  bad.size = 0;
  cr_expect_eq(bl_manager_register("T1", &bad), -EINVAL);
  bl_manager_type_init(NULL); /* tolerated */
  bl_proxy_t *px = NULL;
  cr_expect_eq(bl_manager_create(NULL, "T0", NULL, 0, &px), -EINVAL);
  cr_expect_eq(bl_manager_create(NULL, "", NULL, 0, &px), -EINVAL);
}

Test(manager, bounded_queue_put_waits_for_room) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *q = NULL, *bad = NULL;
  cr_expect_eq(bl_manager_queue_bounded(m, &bad, -1), -EINVAL);
  cr_assert_eq(bl_manager_queue_bounded(m, &q, 2), 0);
  cr_assert_eq(bl_mqueue_put(q, "a", 1), 0);
  cr_assert_eq(bl_mqueue_put_wait(q, "b", 1, 0), 0);
  cr_expect_eq(bl_mqueue_put_wait(q, "c", 1, 0), BL_EFULL);
  cr_expect_eq(bl_mqueue_put_wait(q, "c", 1, 20), BL_EFULL);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    void *v = NULL;
    size_t n = 0;
    int rc = bl_mqueue_get(q, &v, &n, 60000) == 0 && n == 1 && *(char *)v == 'a' ? 0 : 1;
    free(v);
    t_exit(rc);
  }
  cr_expect_eq(bl_mqueue_put_wait(q, "c", 1, 60000), 0); /* the child made room */
  cr_expect_eq(t_wait_exit(c), 0);
  size_t n = 0;
  cr_expect_eq(bl_mqueue_size(q, &n), 0);
  cr_expect_eq(n, 2);
  bl_proxy_free(&q);
  bl_manager_free(&m);
}

Test(manager, dict_keys_in_insertion_order) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *d = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  char **keys = (char **)1;
  size_t n = 9;
  cr_assert_eq(bl_dict_keys(d, &keys, &n), 0);
  cr_expect(n == 0 && keys && keys[0] == NULL);
  free(keys);
  cr_assert_eq(bl_dict_set(d, "b", "1", 1), 0);
  cr_assert_eq(bl_dict_set(d, "a", "2", 1), 0);
  cr_assert_eq(bl_dict_set(d, "c", "", 0), 0);
  cr_assert_eq(bl_dict_set(d, "b", "3", 1), 0); /* keeps its place */
  cr_assert_eq(bl_dict_del(d, "c"), 0);
  cr_assert_eq(bl_dict_keys(d, &keys, &n), 0);
  cr_assert_eq(n, 2);
  cr_expect_str_eq(keys[0], "b");
  cr_expect_str_eq(keys[1], "a");
  cr_expect_null(keys[2]);
  free(keys);
  cr_expect_eq(bl_dict_keys(d, NULL, &n), -EINVAL);
  bl_proxy_free(&d);
  bl_manager_free(&m);
}

/* A client killed while blocked takes nothing: not the next queue item,
 * not a Condition's notification and lock. */
Test(manager, dead_waiter_takes_nothing) {
  bl_manager_t *m = start_manager();
  bl_proxy_t *q = NULL, *cv = NULL;
  cr_assert_eq(bl_manager_queue(m, &q), 0);
  cr_assert_eq(bl_manager_condition(m, &cv), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t c[2];
  for (int i = 0; i < 2; i++) {
    c[i] = t_fork();
    cr_assert_geq(c[i], 0);
    if (c[i] == 0) {
      char b = 1;
      void *v = NULL;
      size_t n = 0;
      if (i == 0) {
        (void)bl__write_full(p[1], &b, 1);
        (void)bl_mqueue_get(q, &v, &n, -1); /* killed while blocked here */
      } else if (bl_macquire(cv, -1) == 0) {
        (void)bl__write_full(p[1], &b, 1);
        (void)bl_mcond_wait(cv, -1); /* releases the lock; killed here */
      }
      t_exit(3);
    }
    char b;
    cr_assert_eq(bl__read_full(p[0], &b, 1), 0);
  }
  /* Not a synchronisation: if a child is not blocked yet when killed,
   * it never asked for anything either; the pause makes it likely. */
  struct timespec ts = {0, 200 * 1000000L};
  nanosleep(&ts, NULL);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(kill(c[i], SIGKILL), 0);
    cr_expect_eq(t_wait_exit(c[i]), -SIGKILL);
  }
  cr_assert_eq(bl_mqueue_put(q, "x", 1), 0);
  void *v = NULL;
  size_t n = 0;
  cr_expect_eq(bl_mqueue_get(q, &v, &n, 60000), 0); /* not taken by the dead */
  free(v);
  /* The lock is free (the dead waiter released it) and stays free after
   * a notify, which the dead waiter must not turn into holding it. */
  cr_assert_eq(bl_macquire(cv, 60000), 0);
  cr_expect_eq(bl_mcond_notify(cv, 1), 0);
  cr_expect_eq(bl_mrelease(cv), 0);
  nanosleep(&ts, NULL);
  cr_expect_eq(bl_macquire(cv, 60000), 0);
  cr_expect_eq(bl_mrelease(cv), 0);
  close(p[0]);
  close(p[1]);
  bl_proxy_free(&q);
  bl_proxy_free(&cv);
  bl_manager_free(&m);
}
