/* test_handles.c: queues, locks, events and values handed to a child by
 * handle (bl_process_add_handle + *_attach) under every start method: the
 * same child code runs under fork, spawn and forkserver, and maps each
 * object anew from the fds it received. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/connection.h>
#include <billiard/errors.h>
#include <billiard/process.h>
#include <billiard/queue.h>
#include <billiard/sharedctypes.h>
#include <billiard/synchronize.h>
#include <billiard/task.h>

#include "helpers.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

#define NITEMS 50
#define NINCR 2000

/* ---- child targets: 0 = all good, else the failing step ---- */

static int c_queue_put(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_queue_t *q = NULL;
  if (bl_queue_attach(&q, 0) != 0) return 10;
  int rc = 0;
  for (int i = 0; i < NITEMS && rc == 0; i++) {
    char b[32];
    int n = snprintf(b, sizeof b, "item-%d", i);
    if (bl_queue_put(q, b, (size_t)n, 60000) != 0) rc = 11;
  }
  bl_queue_free(&q);
  return rc;
}

/* Handles: 0 = Lock, 1 = RawValue 'i'. Increment under the lock, with a
 * yield inside the critical section to invite lost updates. */
static int c_lock_count(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_lock_t *l = NULL;
  bl_value_t *v = NULL;
  if (bl_lock_attach(&l, 0) != 0) return 10;
  if (bl_value_attach(&v, 1) != 0) {
    bl_lock_free(&l);
    return 11;
  }
  int rc = 0;
  int *x = bl_value_ptr(v);
  for (int i = 0; i < NINCR && rc == 0; i++) {
    if (bl_lock_acquire(l, 60000) != 0) {
      rc = 12;
      break;
    }
    int y = *x;
    if (i % 64 == 0) sched_yield();
    *x = y + 1;
    if (bl_lock_release(l) != 0) rc = 13;
  }
  bl_value_free(&v);
  bl_lock_free(&l);
  return rc;
}

/* Handles: 0 = "go" event, 1 = "done" event. */
static int c_event(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_event_t *go = NULL, *done = NULL;
  if (bl_event_attach(&go, 0) != 0) return 10;
  if (bl_event_attach(&done, 1) != 0) {
    bl_event_free(&go);
    return 11;
  }
  int rc = bl_event_wait(go, 60000) == 1 ? 0 : 12;
  if (rc == 0) bl_event_set(done);
  bl_event_free(&go);
  bl_event_free(&done);
  return rc;
}

/* Handle 0 = Array 'd' with its own lock: element i = i * 1.5. */
static int c_array(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_value_t *a = NULL;
  if (bl_value_attach(&a, 0) != 0) return 10;
  int rc = 0;
  if (bl_value_typecode(a) != 'd' || bl_value_get_lock(a) == NULL) rc = 11;
  for (size_t i = 0; rc == 0 && i < bl_value_len(a); i++)
    if (bl_value_set_f64(a, i, (double)i * 1.5) != 0) rc = 12;
  bl_value_free(&a);
  return rc;
}

/* Handle 0 = JoinableQueue: take NITEMS items, task_done each. */
static int c_joinable(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_queue_t *q = NULL;
  if (bl_queue_attach(&q, 0) != 0) return 10;
  int rc = 0;
  for (int i = 0; i < NITEMS && rc == 0; i++) {
    void *b;
    size_t n;
    if (bl_queue_get(q, &b, &n, 60000) != 0) {
      rc = 11;
      break;
    }
    free(b);
    if (bl_queue_task_done(q) != 0) rc = 12;
  }
  bl_queue_free(&q);
  return rc;
}

/* Handles: 0 = Lock, 1 = Event. Take the lock, say so, die holding it. */
static int c_lock_die(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_lock_t *l = NULL;
  bl_event_t *held = NULL;
  if (bl_lock_attach(&l, 0) != 0) return 10;
  if (bl_event_attach(&held, 1) != 0) return 11;
  if (bl_lock_acquire(l, 60000) != 0) return 12;
  bl_event_set(held);
  raise(SIGKILL);
  return 13;
}

/* Handles: 0 = Queue, 1 = Value with a borrowed lock, 2 = that lock.
 * Checks the child's view of the table and its errors. */
static int c_misuse(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  if (bl_process_handle_count() != 3) return 10;
  if (bl_process_handle_kind(0) != BL_HANDLE_QUEUE) return 11;
  if (bl_process_handle_kind(1) != BL_HANDLE_VALUE) return 12;
  if (bl_process_handle_kind(2) != BL_HANDLE_LOCK) return 13;
  if (bl_process_handle_kind(3) != -ERANGE) return 14;
  bl_lock_t *l = NULL;
  bl_queue_t *q = NULL;
  bl_value_t *v = NULL;
  if (bl_lock_attach(&l, 0) != -EINVAL || l) return 15;      /* a queue */
  if (bl_queue_attach(&q, 1) != -EINVAL || q) return 16;     /* a value */
  if (bl_queue_attach(&q, 3) != -ERANGE || q) return 17;     /* no such */
  if (bl_value_attach(&v, 1) != 0) return 18;
  /* The value's lock is the borrowed one: held through one view, it is
   * held through the other. */
  if (bl_lock_attach(&l, 2) != 0) return 19;
  int rc = 0;
  if (bl_lock_acquire(bl_value_get_lock(v), 0) != 0) rc = 20;
  else if (bl_lock_acquire(l, 0) != BL_ETIMEOUT) rc = 21;
  else if (bl_lock_release(bl_value_get_lock(v)) != 0) rc = 22;
  else if (bl_value_set_i64(v, 0, 77) != 0) rc = 23;
  bl_lock_free(&l);
  bl_value_free(&v);
  return rc;
}

/* Handle 0 = Semaphore(0), 1 = Condition (own RLock), 2 = Barrier(2). */
static int c_others(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_semaphore_t *s = NULL;
  bl_condition_t *c = NULL;
  bl_barrier_t *b = NULL;
  if (bl_semaphore_attach(&s, 0) != 0) return 10;
  if (bl_condition_attach(&c, 1) != 0) return 11;
  if (bl_barrier_attach(&b, 2, NULL, NULL) != 0) return 12;
  int rc = 0;
  if (bl_semaphore_release(s) != 0) rc = 13;
  else if (bl_barrier_wait(b, 60000) < 0) rc = 14;
  else if (!BL_ACQUIRED(bl_condition_acquire(c, 60000))) rc = 15;
  else {
    if (bl_condition_notify_all(c) != 0) rc = 16;
    bl_condition_release(c);
  }
  bl_barrier_free(&b);
  bl_condition_free(&c);
  bl_semaphore_free(&s);
  return rc;
}

/* The barrier action of whichever process arrives last: bump the counter
 * through this process's own view of it. */
static bl_value_t *action_counter;
static int bump_counter(void *arg) {
  (void)arg;
  int64_t x = 0;
  bl_value_get_i64(action_counter, 0, &x);
  return bl_value_set_i64(action_counter, 0, x + 1);
}

/* Handles: 0 = Condition with a borrowed Lock, 1 = that Lock, 2 = Barrier(2),
 * 3 = Value counting barrier actions. */
static int c_borrowed(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_condition_t *c = NULL;
  bl_lock_t *l = NULL;
  bl_barrier_t *b = NULL;
  if (bl_condition_attach(&c, 0) != 0) return 10;
  if (bl_lock_attach(&l, 1) != 0) return 11;
  if (bl_value_attach(&action_counter, 3) != 0) return 12;
  if (bl_barrier_attach(&b, 2, bump_counter, NULL) != 0) return 13;
  int rc = 0;
  if (bl_barrier_wait(b, 60000) < 0) rc = 14;
  else if (bl_condition_acquire(c, 60000) != 0) rc = 15;
  else {
    /* The condition's lock is the Lock at index 1: held through one view,
     * it is held through the other. */
    if (bl_lock_acquire(l, 0) != BL_ETIMEOUT) rc = 16;
    else if (bl_condition_notify_all(c) != 0) rc = 17;
    bl_condition_release(c);
  }
  bl_barrier_free(&b);
  bl_value_free(&action_counter);
  bl_lock_free(&l);
  bl_condition_free(&c);
  return rc;
}

/* Handle 0 = one end of a duplex Pipe: answer "ping" with "pong"; handle
 * 1 = the write end of a one-way Pipe: say "bye". */
static int c_conn(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  bl_conn_t *c = NULL, *w = NULL;
  if (bl_conn_attach(&c, 0) != 0) return 10;
  if (bl_conn_attach(&w, 1) != 0) return 11;
  int rc = 0;
  void *buf = NULL;
  size_t n = 0;
  if (!bl_conn_readable(c) || !bl_conn_writable(c)) rc = 12;
  else if (bl_conn_readable(w) || !bl_conn_writable(w)) rc = 13;
  else if (bl_conn_recv_bytes(c, &buf, &n, 0) != 0) rc = 14;
  else if (n != 4 || memcmp(buf, "ping", 4) != 0) rc = 15;
  else if (bl_conn_send_bytes(c, "pong", 4, 0, BL_CONN_REST) != 0) rc = 16;
  else if (bl_conn_send_bytes(w, "bye", 3, 0, BL_CONN_REST) != 0) rc = 17;
  free(buf);
  bl_conn_free(&c);
  bl_conn_free(&w);
  return rc;
}

/* Registered in a constructor: visible in re-executed images too. */
__attribute__((constructor)) static void reg(void) {
  bl_register_target("h/queue_put", c_queue_put);
  bl_register_target("h/lock_count", c_lock_count);
  bl_register_target("h/event", c_event);
  bl_register_target("h/array", c_array);
  bl_register_target("h/joinable", c_joinable);
  bl_register_target("h/lock_die", c_lock_die);
  bl_register_target("h/misuse", c_misuse);
  bl_register_target("h/others", c_others);
  bl_register_target("h/borrowed", c_borrowed);
  bl_register_target("h/conn", c_conn);
}

/* ---- parent side ---- */

static void skip_if_unsupported(const char *method) {
  /* valgrind 3.19 refuses clone(CLONE_PARENT), which the forkserver needs
   * (test_context.c); spawn runs under it (the death pipe crosses exec). */
  if (strcmp(method, "forkserver") == 0 && t_under_valgrind())
    cr_skip_test("forkserver needs clone(CLONE_PARENT) (not in valgrind 3.19)");
}

static bl_process_t *make(const char *method, const char *target) {
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = method;
  bl_process_t *p = NULL;
  cr_assert_eq(bl_process_new(&p, target, NULL, 0, &o), 0);
  return p;
}

static int finish(bl_process_t **p) {
  int code = -1;
  cr_assert_eq(bl_process_join(*p, 60000), 0);
  cr_assert_eq(bl_process_exitcode(*p, &code), 0);
  bl_process_free(p);
  return code;
}

static void queue_case(const char *method) {
  skip_if_unsupported(method);
  bl_queue_t *q;
  cr_assert_eq(bl_queue_new(&q, NULL), 0);
  bl_process_t *p = make(method, "h/queue_put");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, q), 0);
  cr_assert_eq(bl_process_start(p), 0);
  for (int i = 0; i < NITEMS; i++) {
    void *b;
    size_t n;
    char want[32];
    int wn = snprintf(want, sizeof want, "item-%d", i);
    cr_assert_eq(bl_queue_get(q, &b, &n, 60000), 0, "item %d", i);
    cr_expect(n == (size_t)wn && memcmp(b, want, n) == 0, "item %d", i);
    free(b);
  }
  cr_expect_eq(finish(&p), 0);
  bl_queue_free(&q);
}

static void lock_case(const char *method) {
  skip_if_unsupported(method);
  bl_lock_t *l;
  bl_value_t *v;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_raw_value_new(&v, 'i'), 0);
  bl_process_t *p = make(method, "h/lock_count");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_LOCK, l), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, v), 1);
  cr_assert_eq(bl_process_start(p), 0);
  int *x = bl_value_ptr(v);
  for (int i = 0; i < NINCR; i++) {
    cr_assert_eq(bl_lock_acquire(l, 60000), 0);
    int y = *x;
    if (i % 64 == 0) sched_yield();
    *x = y + 1;
    cr_assert_eq(bl_lock_release(l), 0);
  }
  cr_expect_eq(finish(&p), 0);
  cr_expect_eq(*x, 2 * NINCR, "lost updates: %d of %d", *x, 2 * NINCR);
  bl_value_free(&v);
  bl_lock_free(&l);
}

static void event_case(const char *method) {
  skip_if_unsupported(method);
  bl_event_t *go, *done;
  cr_assert_eq(bl_event_new(&go), 0);
  cr_assert_eq(bl_event_new(&done), 0);
  bl_process_t *p = make(method, "h/event");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_EVENT, go), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_EVENT, done), 1);
  cr_assert_eq(bl_process_start(p), 0);
  cr_expect_eq(bl_event_is_set(done), 0, "set before go");
  bl_event_set(go);
  cr_expect_eq(bl_event_wait(done, 60000), 1);
  cr_expect_eq(finish(&p), 0);
  bl_event_free(&go);
  bl_event_free(&done);
}

static void array_case(const char *method) {
  skip_if_unsupported(method);
  bl_value_t *a;
  cr_assert_eq(bl_array_new(&a, 'd', 10, NULL), 0);
  bl_process_t *p = make(method, "h/array");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, a), 0);
  cr_assert_eq(bl_process_start(p), 0);
  cr_expect_eq(finish(&p), 0);
  for (size_t i = 0; i < 10; i++) {
    double d = -1;
    cr_assert_eq(bl_value_get_f64(a, i, &d), 0);
    cr_expect_eq(d, (double)i * 1.5, "element %zu", i);
  }
  bl_value_free(&a);
}

static void joinable_case(const char *method) {
  skip_if_unsupported(method);
  bl_queue_t *q;
  cr_assert_eq(bl_joinable_queue_new(&q, NULL), 0);
  bl_process_t *p = make(method, "h/joinable");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, q), 0);
  cr_assert_eq(bl_process_start(p), 0);
  for (int i = 0; i < NITEMS; i++) cr_assert_eq(bl_queue_put(q, "x", 1, 60000), 0);
  cr_expect_eq(bl_queue_join(q, 60000), 0);
  cr_expect_eq(finish(&p), 0);
  cr_expect_eq(bl_queue_task_done(q), BL_EOVERRELEASE);
  bl_queue_free(&q);
}

static void owner_death_case(const char *method) {
  skip_if_unsupported(method);
  bl_lock_t *l;
  bl_event_t *held;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_event_new(&held), 0);
  bl_process_t *p = make(method, "h/lock_die");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_LOCK, l), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_EVENT, held), 1);
  cr_assert_eq(bl_process_start(p), 0);
  cr_assert_eq(bl_event_wait(held, 60000), 1);
  cr_expect_eq(finish(&p), -SIGKILL);
  cr_expect_eq(bl_lock_acquire(l, 60000), BL_EOWNERDEAD);
  cr_expect_eq(bl_lock_release(l), 0);
  cr_expect_eq(bl_lock_acquire(l, 0), 0, "usable again after recovery");
  bl_lock_release(l);
  bl_event_free(&held);
  bl_lock_free(&l);
}

static void others_case(const char *method) {
  skip_if_unsupported(method);
  bl_semaphore_t *s;
  bl_condition_t *c;
  bl_barrier_t *b;
  cr_assert_eq(bl_semaphore_new(&s, 0), 0);
  cr_assert_eq(bl_condition_new(&c, NULL), 0);
  cr_assert_eq(bl_barrier_new(&b, 2, NULL, NULL), 0);
  bl_process_t *p = make(method, "h/others");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_SEMAPHORE, s), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_CONDITION, c), 1);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_BARRIER, b), 2);
  /* Hold the condition's lock before the child can notify: the notify
   * then comes only after our wait released it. */
  cr_assert_eq(bl_condition_acquire(c, 0), 0);
  cr_assert_eq(bl_process_start(p), 0);
  cr_expect_eq(bl_semaphore_acquire(s, 60000), 0, "released by the child");
  cr_expect_geq(bl_barrier_wait(b, 60000), 0);
  cr_expect_eq(bl_condition_wait(c, 60000), 1, "notified by the child");
  bl_condition_release(c);
  cr_expect_eq(finish(&p), 0);
  bl_barrier_free(&b);
  bl_condition_free(&c);
  bl_semaphore_free(&s);
}

/* Borrowed locks travel as the next handle; a barrier's action is each
 * process's own and runs once per cycle, in the last to arrive. */
static void borrowed_case(const char *method) {
  skip_if_unsupported(method);
  bl_lock_t *l;
  bl_condition_t *c;
  bl_barrier_t *b;
  cr_assert_eq(bl_lock_new(&l), 0);
  cr_assert_eq(bl_condition_new(&c, l), 0);
  cr_assert_eq(bl_raw_value_new(&action_counter, 'i'), 0);
  cr_assert_eq(bl_barrier_new(&b, 2, bump_counter, NULL), 0);
  bl_process_t *p = make(method, "h/borrowed");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_CONDITION, c), 0);
  cr_assert_eq(bl_process_handle_count(), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_BARRIER, b), 2, "the lock took 1");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, action_counter), 3);
  cr_assert_eq(bl_condition_acquire(c, 0), 0);
  cr_assert_eq(bl_process_start(p), 0);
  cr_expect_geq(bl_barrier_wait(b, 60000), 0);
  cr_expect_eq(bl_condition_wait(c, 60000), 1, "notified by the child");
  bl_condition_release(c);
  cr_expect_eq(finish(&p), 0);
  int64_t n = 0;
  cr_expect_eq(bl_value_get_i64(action_counter, 0, &n), 0);
  cr_expect_eq(n, 1, "the action ran once, in one of the two");
  bl_barrier_free(&b);
  bl_value_free(&action_counter);
  bl_condition_free(&c);
  bl_lock_free(&l);
}

static void conn_case(const char *method) {
  skip_if_unsupported(method);
  bl_conn_t *a, *b, *r, *w;
  cr_assert_eq(bl_pipe(&a, &b, 1), 0);
  cr_assert_eq(bl_pipe(&r, &w, 0), 0);
  bl_process_t *p = make(method, "h/conn");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_CONNECTION, b), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_CONNECTION, w), 1);
  cr_assert_eq(bl_process_start(p), 0);
  /* Our copies of the child's ends go, so a dead child reads as EOF. */
  bl_conn_free(&b);
  bl_conn_free(&w);
  cr_assert_eq(bl_conn_send_bytes(a, "ping", 4, 0, BL_CONN_REST), 0);
  void *buf;
  size_t n;
  cr_assert_eq(bl_conn_recv_bytes(a, &buf, &n, 0), 0);
  cr_expect(n == 4 && memcmp(buf, "pong", 4) == 0);
  free(buf);
  cr_assert_eq(bl_conn_recv_bytes(r, &buf, &n, 0), 0);
  cr_expect(n == 3 && memcmp(buf, "bye", 3) == 0);
  free(buf);
  cr_expect_eq(finish(&p), 0);
  cr_expect_eq(bl_conn_recv_bytes(r, &buf, &n, 0), BL_EEOF, "no writer left");
  bl_conn_free(&a);
  bl_conn_free(&r);
}

#define EACH_METHOD(name, fn)                              \
  Test(handles, name##_fork) { fn("fork"); }               \
  Test(handles, name##_spawn) { fn("spawn"); }             \
  Test(handles, name##_forkserver) { fn("forkserver"); }

EACH_METHOD(queue, queue_case)
EACH_METHOD(lock_mutual_exclusion, lock_case)
EACH_METHOD(event_wakes_parent, event_case)
EACH_METHOD(array_written_by_child, array_case)
EACH_METHOD(joinable_task_done_join, joinable_case)
EACH_METHOD(lock_owner_death, owner_death_case)
EACH_METHOD(semaphore_condition_barrier, others_case)
EACH_METHOD(connection, conn_case)
Test(handles, borrowed_lock_and_barrier_action_spawn) { borrowed_case("spawn"); }

/* ---- misuse ---- */

Test(handles, misuse_parent_side) {
  bl_queue_t *q;
  bl_value_t *v;
  bl_lock_t *l;
  cr_assert_eq(bl_queue_new(&q, NULL), 0);
  cr_assert_eq(bl_lock_new(&l), 0);
  bl_shared_options_t so;
  bl_shared_options_init(&so);
  so.use_lock = l;
  cr_assert_eq(bl_value_new(&v, 'i', &so), 0);
  /* Not a started child: no handles. */
  cr_expect_eq(bl_process_handle_count(), 0);
  bl_queue_t *none = NULL;
  cr_expect_eq(bl_queue_attach(&none, 0), -ERANGE);
  cr_expect_null(none);

  bl_process_t *p = make("fork", "h/misuse");
  cr_expect_eq(bl_process_add_handle(NULL, BL_HANDLE_QUEUE, q), -EINVAL);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, NULL), -EINVAL);
  cr_expect_eq(bl_process_add_handle(p, (bl_handle_kind_t)99, q), -EINVAL);
  /* Wrong kind for the object, and locks with no mapping of their own. */
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, q), -EINVAL);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, v), -EINVAL);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_EVENT, l), -EINVAL);
  bl_value_t *own;
  cr_assert_eq(bl_value_new(&own, 'i', NULL), 0);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_LOCK, bl_value_get_lock(own)),
               -EINVAL);
  bl_value_free(&own);
  /* A closed queue. */
  bl_queue_t *closed;
  cr_assert_eq(bl_queue_new(&closed, NULL), 0);
  bl_queue_close(closed);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, closed), BL_ECLOSED);
  bl_queue_free(&closed);
  bl_conn_t *c1, *c2;
  cr_assert_eq(bl_pipe(&c1, &c2, 1), 0);
  bl_conn_close(c1);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_CONNECTION, c1), BL_ECLOSED);
  bl_conn_free(&c1);
  bl_conn_free(&c2);

  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, q), 0);
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, v), 1, "lock follows at 2");
  /* The process holds its own reference: freeing ours is fine. */
  bl_value_free(&v);
  cr_assert_eq(bl_process_start(p), 0);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, q), BL_ESTATE);
  cr_expect_eq(finish(&p), 0);
  bl_queue_free(&q);
  bl_lock_free(&l);
}

Test(handles, too_many) {
  bl_event_t *e;
  cr_assert_eq(bl_event_new(&e), 0);
  bl_process_t *p = make("fork", "h/event");
  int before = t_count_fds();
  for (int i = 0; i < 32; i++) cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_EVENT, e), i);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_EVENT, e), -E2BIG);
  cr_expect_eq(t_count_fds(), before + 32);
  bl_process_free(&p); /* never started: its fds go with it */
  cr_expect_eq(t_count_fds(), before);
  bl_event_free(&e);
}

Test(handles, no_fd_left_after_start) {
  bl_queue_t *q;
  cr_assert_eq(bl_queue_new(&q, NULL), 0);
  int before = t_count_fds();
  bl_process_t *p = make("fork", "h/queue_put");
  cr_assert_eq(bl_process_add_handle(p, BL_HANDLE_QUEUE, q), 0);
  cr_assert_eq(bl_process_start(p), 0);
  for (int i = 0; i < NITEMS; i++) {
    void *b;
    size_t n;
    cr_assert_eq(bl_queue_get(q, &b, &n, 60000), 0);
    free(b);
  }
  cr_expect_eq(finish(&p), 0);
  cr_expect_eq(t_count_fds(), before);
  bl_queue_free(&q);
}

#ifdef FIU_ENABLE
static int second_dup(const char *name, int *failnum, void **failinfo,
                      unsigned int *flags) {
  (void)name; (void)failnum; (void)failinfo; (void)flags;
  static int n;
  return ++n == 2;
}
#endif

Test(handles, fault_in_second_dup_unwinds) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  fiu_init(0);
  bl_lock_t *l;
  bl_value_t *v;
  cr_assert_eq(bl_lock_new(&l), 0);
  bl_shared_options_t so;
  bl_shared_options_init(&so);
  so.use_lock = l;
  cr_assert_eq(bl_value_new(&v, 'i', &so), 0);
  bl_process_t *p = make("fork", "h/misuse");
  int before = t_count_fds();
  /* The value's fd is duplicated, its lock's is not: both go. */
  fiu_enable_external("process/handle/dup", 1, (void *)(intptr_t)EMFILE, 0,
                      second_dup);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, v), -EMFILE);
  fiu_disable("process/handle/dup");
  cr_expect_eq(t_count_fds(), before);
  cr_expect_eq(bl_process_add_handle(p, BL_HANDLE_VALUE, v), 0, "nothing consumed");
  bl_process_free(&p);
  bl_value_free(&v);
  bl_lock_free(&l);
#endif
}

/* ---- what a child does with handles that are not what they claim ---- */

#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "shm.h"

Test(handles, foreign_and_corrupt_handles_are_refused) {
  int pp[2];
  cr_assert_eq(pipe(pp), 0);
  bl__shm_tag_t tag;
  cr_expect_eq(bl__shm_peek(pp[0], &tag), -EINVAL, "a pipe");
  /* A memfd of the right size without a trailer. */
  int mfd = memfd_create("not-billiard", MFD_CLOEXEC);
  cr_assert_geq(mfd, 0);
  cr_assert_eq(ftruncate(mfd, sysconf(_SC_PAGESIZE)), 0);
  cr_expect_eq(bl__shm_peek(mfd, &tag), -EINVAL, "no magic");

  /* A queue and an array, handed over honestly. */
  bl_queue_t *q;
  bl_value_t *a;
  cr_assert_eq(bl_queue_new(&q, NULL), 0);
  cr_assert_eq(bl_array_new(&a, 'i', 4, NULL), 0);
  int fds[2];
  cr_assert_eq(bl__queue_export(q, fds), 1);
  int qfd = fds[0];
  cr_assert_eq(bl__value_export(a, fds), 1);
  int afd = fds[0];
  int table[4] = {pp[0], mfd, qfd, afd};
  bl__handles_set(table, 4);
  cr_expect_eq(bl_process_handle_count(), 4);
  cr_expect_eq(bl_process_handle_kind(0), BL_HANDLE_CONNECTION, "a pipe end");
  cr_expect_eq(bl_process_handle_kind(1), -EINVAL);
  cr_expect_eq(bl_process_handle_kind(2), BL_HANDLE_QUEUE);
  bl_queue_t *q2 = NULL;
  bl_lock_t *l2 = NULL;
  cr_expect_eq(bl_queue_attach(&q2, 0), -EINVAL);
  cr_expect_eq(bl_lock_attach(&l2, 1), -EINVAL);
  cr_expect_eq(bl_lock_attach(&l2, 2), -EINVAL, "a queue is no lock");

  /* A value attaches; once its shared element count (the header's first
   * word) claims more than its mapping holds, it is refused. */
  bl_value_t *a2 = NULL;
  cr_assert_eq(bl_value_attach(&a2, 3), 0);
  cr_expect_eq(bl_value_len(a2), 4);
  bl_value_free(&a2);
  int fd_before = t_count_fds();
  void *base = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
                    MAP_SHARED, afd, 0);
  cr_assert_neq(base, MAP_FAILED);
  *(uint64_t *)base = 1u << 30; /* n: far beyond the mapping */
  cr_expect_eq(bl_value_attach(&a2, 3), -EINVAL);
  cr_expect_null(a2);
  *(uint64_t *)base = 4;
  cr_expect_eq(t_count_fds(), fd_before, "a refused attach keeps no fd");
  munmap(base, (size_t)sysconf(_SC_PAGESIZE));

  bl__handles_set(NULL, 0);
  bl_value_free(&a);
  bl_queue_free(&q);
  close(mfd);
  close(pp[0]);
  close(pp[1]);
}
