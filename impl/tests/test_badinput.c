/* test_badinput.c: malformed input for every public entry point (issue 8).
 * Each header has one table of {case, call, expected code}: NULL objects and
 * out pointers, bad names, bad sizes, skipped _init / non-zero reserved,
 * closed objects, double close/free, calls after terminate/shutdown. Every
 * case must return its documented error (never crash, hang or succeed).
 * Void functions are called for "no crash" and expect 0. */
#include <billiard/billiard.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

typedef struct {
  const char *name;
  int (*call)(void);
  int expect;
} bad_case_t;

/* X(case, expression, expected) -> a static function and a table row. */
#define BAD_CAT_(a, b) a##_##b
#define BAD_CAT(a, b) BAD_CAT_(a, b)
#define BAD_DEF(n, e, x) \
  static int BAD_CAT(BAD_PFX, n)(void) { return (int)(e); }
#define BAD_ROW(n, e, x) {#n, BAD_CAT(BAD_PFX, n), x},

static int run_table(const char *group, const bad_case_t *t, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    int got = t[i].call();
    if (got != t[i].expect) {
      cr_log_error("%s/%s: got %d (%s), want %d (%s)", group, t[i].name, got,
                   bl_err_name(got), t[i].expect, bl_err_name(t[i].expect));
      bad++;
    }
  }
  return bad;
}
#define RUN(group, tbl)                                                        \
  cr_expect_eq(run_table(group, tbl, sizeof tbl / sizeof tbl[0]), 0,          \
               "%s: cases failed (see log)", group)

static int noop_target(const void *a, size_t l) {
  (void)a, (void)l;
  return 0;
}
static int echo_task(bl_task_ctx_t *ctx, const void *a, size_t l) {
  return bl_task_return(ctx, a, l);
}
static int sleep_task(bl_task_ctx_t *ctx, const void *a, size_t l) {
  (void)a, (void)l;
  return bl_task_sleep(ctx, 20000);
}
static void setup(void) {
  cr_assert_eq(bl_register_task("bad_sleep", sleep_task), 0);
  cr_assert_eq(bl_register_target("bad_noop", noop_target), 0);
  cr_assert_eq(bl_register_task("bad_echo", echo_task), 0);
}
TestSuite(badinput, .init = setup, .timeout = 60);

static char buf[64];
static void *vp;
static size_t sz;
static int iv;
static bl_target_fn tfn;
static bl_task_fn kfn;

/* ---------------------------------------------------------------- task.h */
#define TASK_CASES(X)                                                          \
  X(reg_target_null_name, bl_register_target(NULL, noop_target), -EINVAL)      \
  X(reg_target_empty_name, bl_register_target("", noop_target), -EINVAL)       \
  X(reg_target_null_fn, bl_register_target("bad_x", NULL), -EINVAL)           \
  X(reg_target_taken, bl_register_target("bad_noop",                          \
                                         (bl_target_fn)(void (*)(void))echo_task), -EEXIST) \
  X(reg_task_null_name, bl_register_task(NULL, echo_task), -EINVAL)            \
  X(reg_task_null_fn, bl_register_task("bad_y", NULL), -EINVAL)               \
  X(lookup_target_null, bl_lookup_target(NULL, NULL), -EINVAL)                 \
  X(lookup_target_null_out, bl_lookup_target("bad_noop", NULL), -EINVAL)      \
  X(lookup_target_unknown, bl_lookup_target("no_such", &tfn), BL_ENOTFOUND) \
  X(lookup_task_null, bl_lookup_task(NULL, NULL), -EINVAL)                     \
  X(lookup_task_unknown, bl_lookup_task("no_such", &kfn), BL_ENOTFOUND)
#undef BAD_PFX
#define BAD_PFX task
TASK_CASES(BAD_DEF)
static const bad_case_t task_cases[] = {TASK_CASES(BAD_ROW)};
Test(badinput, task) { RUN("task", task_cases); }

/* -------------------------------------------------------------- errors.h */
#define ERR_CASES(X)                                                           \
  X(strerror_unknown, bl_strerror(-99999) != NULL ? 0 : 1, 0)                  \
  X(strerror_positive, bl_strerror(12345) != NULL ? 0 : 1, 0)                  \
  X(err_name_unknown, bl_err_name(-99999) != NULL ? 0 : 1, 0)                  \
  X(err_exception_unknown, bl_err_exception(-99999) != NULL ? 0 : 1, 0)        \
  X(err_is_billiard_garbage, bl_err_is_billiard(123456), 0)                    \
  X(info_set_null, bl_error_info_set(NULL, BL_ETASK, "T", "m", NULL), -EINVAL) \
  X(info_clear_null, (bl_error_info_clear(NULL), 0), 0)                        \
  X(info_type_null, bl_error_info_type(NULL) == NULL ? 0 : 1, 0)
#undef BAD_PFX
#define BAD_PFX err
ERR_CASES(BAD_DEF)
static const bad_case_t err_cases[] = {ERR_CASES(BAD_ROW)};
Test(badinput, errors) { RUN("errors", err_cases); }

/* --------------------------------------------------------------- clock.h */
#define CLOCK_CASES(X)                                                         \
  X(clock_now_null, bl_clock_now(NULL) > 0 ? 0 : 1, 0)                         \
  X(offset_init_null, (bl_offset_clock_init(NULL), 0), 0)                      \
  X(offset_jump_null, (bl_offset_clock_jump(NULL, 5), 0), 0)                   \
  X(version, bl_version() != NULL ? 0 : 1, 0)                                  \
  X(monotonic_ns, bl_monotonic_ns() > 0 ? 0 : 1, 0)
#undef BAD_PFX
#define BAD_PFX clock
CLOCK_CASES(BAD_DEF)
static const bad_case_t clock_cases[] = {CLOCK_CASES(BAD_ROW)};
Test(badinput, clock) { RUN("clock", clock_cases); }

/* ---------------------------------------------------------- connection.h */
static bl_conn_t *ca, *cb, *cro, *rd, *wr; /* rd/wr: a simplex pipe */
#define CONN_CASES(X)                                                          \
  X(pipe_null_a, bl_pipe(NULL, &cb, 1), -EINVAL)                               \
  X(pipe_null_b, bl_pipe(&ca, NULL, 1), -EINVAL)                               \
  X(attach_null, bl_conn_attach(NULL, 0), -EINVAL)                            \
  X(attach_no_handle, bl_conn_attach(&cro, 0), -ERANGE)                        \
  X(from_fd_null, bl_conn_from_fd(NULL, -1, 1, 1), -EINVAL)                    \
  X(from_fd_negative, bl_conn_from_fd(&cro, -1, 1, 1), -EINVAL)                 \
  X(from_fd_no_mode, bl_conn_from_fd(&cro, dup(0), 0, 0), -EINVAL)             \
  X(send_null_conn, bl_conn_send_bytes(NULL, buf, 1, 0, 1), -EINVAL)           \
  X(send_null_buf, bl_conn_send_bytes(ca, NULL, 4, 0, 4), -EINVAL)             \
  X(send_offset_past_len, bl_conn_send_bytes(ca, buf, 4, 5, 0), -EINVAL)       \
  X(send_size_past_len, bl_conn_send_bytes(ca, buf, 4, 2, 3), -EINVAL)         \
  X(send_size_overflow, bl_conn_send_bytes(ca, buf, 4, 2, SIZE_MAX - 1), -EINVAL)  \
  X(recv_null_conn, bl_conn_recv_bytes(NULL, &vp, &sz, 0), -EINVAL)            \
  X(recv_null_out, bl_conn_recv_bytes(ca, NULL, &sz, 0), -EINVAL)              \
  X(recv_into_null, bl_conn_recv_bytes_into(NULL, buf, 4, 0, &sz), -EINVAL)    \
  X(recv_into_null_buf, bl_conn_recv_bytes_into(ca, NULL, 4, 0, &sz), -EINVAL) \
  X(recv_into_offset_past_cap, bl_conn_recv_bytes_into(ca, buf, 4, 9, &sz), -EINVAL) \
  X(take_pending_null, bl_conn_take_pending(NULL, &vp, &sz), -EINVAL)          \
  X(take_pending_none, bl_conn_take_pending(ca, &vp, &sz), -ENOMSG)          \
  X(poll_null, bl_conn_poll(NULL, 0), -EINVAL)                                 \
  X(fileno_null, bl_conn_fileno(NULL), -EINVAL)                                \
  X(readable_null, bl_conn_readable(NULL), 0)                                  \
  X(writable_null, bl_conn_writable(NULL), 0)                                  \
  X(closed_null, bl_conn_closed(NULL), 1)                                      \
  X(close_null, bl_conn_close(NULL), -EINVAL)                                  \
  X(free_null, (bl_conn_free(NULL), 0), 0)                                     \
  /* cb is closed below */                                                     \
  X(closed_send, bl_conn_send_bytes(cb, buf, 1, 0, 1), BL_ECLOSED)             \
  X(closed_recv, bl_conn_recv_bytes(cb, &vp, &sz, 0), BL_ECLOSED)              \
  X(closed_recv_into, bl_conn_recv_bytes_into(cb, buf, 4, 0, &sz), BL_ECLOSED) \
  X(closed_poll, bl_conn_poll(cb, 0), BL_ECLOSED)                              \
  X(closed_fileno, bl_conn_fileno(cb), BL_ECLOSED)                             \
  X(closed_double_close, bl_conn_close(cb), 0)                                 \
  X(send_on_read_only, bl_conn_send_bytes(rd, buf, 1, 0, 1), -EBADF)           \
  X(recv_on_write_only, bl_conn_recv_bytes(wr, &vp, &sz, 0), -EBADF)           \
  X(recv_into_on_write_only, bl_conn_recv_bytes_into(wr, buf, 4, 0, &sz), -EBADF)
#undef BAD_PFX
#define BAD_PFX conn
CONN_CASES(BAD_DEF)
static const bad_case_t conn_cases[] = {CONN_CASES(BAD_ROW)};
Test(badinput, connection) {
  int n0 = t_count_fds();
  bl_conn_t *a, *b;
  cr_assert_eq(bl_pipe(&a, &b, 1), 0);
  ca = a;
  cb = b;
  cr_assert_eq(bl_conn_close(cb), 0);
  cr_assert_eq(bl_pipe(&rd, &wr, 0), 0);
  RUN("connection", conn_cases);
  bl_conn_free(&rd);
  bl_conn_free(&wr);
  cr_expect_null(cro, "a failed from_fd left a connection");
  bl_conn_free(&a);
  bl_conn_free(&b);
  bl_conn_free(&a); /* pointer NULLed: no-op */
  cr_expect_null(a);
  cr_expect_eq(t_count_fds(), n0, "fds leaked");
}

/* ------------------------------------------------------------- context.h */
static const bl_context_t *ctxp;
#define CTX_CASES(X)                                                           \
  X(get_context_null_out, bl_get_context("fork", NULL), -EINVAL)               \
  X(get_context_unknown, bl_get_context("bogus", &ctxp), -EINVAL)              \
  X(get_context_empty, bl_get_context("", &ctxp), -EINVAL)                     \
  X(start_method_null_ctx, bl_context_start_method(NULL) == NULL ? 0 : 1, 0)   \
  X(process_options_null, (bl_context_process_options(NULL, NULL), 0), 0)      \
  X(pool_options_null, (bl_context_pool_options(NULL, NULL), 0), 0)            \
  X(set_start_method_unknown, bl_set_start_method("bogus", 1), -EINVAL)        \
  X(set_start_method_null_unforced, bl_set_start_method(NULL, 0), -EINVAL)     \
  X(all_methods, bl_get_all_start_methods()[0] != NULL ? 0 : 1, 0)             \
  X(set_executable_empty, bl_set_executable(""), -EINVAL)                      \
  /* preload names are resolved when the server starts (documented) */      \
  X(preload_unknown_deferred, bl_set_forkserver_preload((const char *const[]){"no_such", NULL}), 0)
#undef BAD_PFX
#define BAD_PFX ctx
CTX_CASES(BAD_DEF)
static const bad_case_t ctx_cases[] = {CTX_CASES(BAD_ROW)};
Test(badinput, context) {
  RUN("context", ctx_cases);
  cr_expect_null(bl_get_start_method(1), "a failed call changed the method");
  cr_expect_eq(bl_set_forkserver_preload(NULL), 0);
}

/* --------------------------------------------------------------- queue.h */
static bl_queue_t *qclosed, *qplain;
static bl_queue_options_t qo_noinit = {0};
static bl_queue_options_t qo_reserved;
static bl_queue_t *qout;
#define QUEUE_CASES(X)                                                         \
  X(options_init_null, (bl_queue_options_init(NULL), 0), 0)                    \
  X(attach_null, bl_queue_attach(NULL, 0), -EINVAL)                           \
  X(attach_no_handle, bl_queue_attach(&qout, 0), -ERANGE)                      \
  X(new_null, bl_queue_new(NULL, NULL), -EINVAL)                               \
  X(new_skipped_init, bl_queue_new(&qout, &qo_noinit), -EINVAL)               \
  X(new_reserved, bl_queue_new(&qout, &qo_reserved), -EINVAL)                 \
  X(joinable_new_null, bl_joinable_queue_new(NULL, NULL), -EINVAL)             \
  X(joinable_new_skipped_init, bl_joinable_queue_new(&qout, &qo_noinit), -EINVAL) \
  X(put_null_q, bl_queue_put(NULL, buf, 1, 0), -EINVAL)                        \
  X(put_null_buf, bl_queue_put(qplain, NULL, 4, 0), -EINVAL)                   \
  X(put_huge, bl_queue_put(qplain, buf, SIZE_MAX, 0), -EINVAL)                 \
  X(put_nowait_null, bl_queue_put_nowait(NULL, buf, 1), -EINVAL)               \
  X(get_null_q, bl_queue_get(NULL, &vp, &sz, 0), -EINVAL)                      \
  X(get_null_out, bl_queue_get(qplain, NULL, &sz, 0), -EINVAL)                 \
  X(get_null_len, bl_queue_get(qplain, &vp, NULL, 0), -EINVAL)                 \
  X(get_empty_timeout0, bl_queue_get(qplain, &vp, &sz, 0), BL_EEMPTY)          \
  X(get_nowait_null, bl_queue_get_nowait(NULL, &vp, &sz), -EINVAL)             \
  X(qsize_null, bl_queue_qsize(NULL), -EINVAL)                                 \
  X(empty_null, bl_queue_empty(NULL), -EINVAL)                                 \
  X(full_null, bl_queue_full(NULL), -EINVAL)                                   \
  X(close_null, bl_queue_close(NULL), -EINVAL)                                 \
  X(join_thread_null, bl_queue_join_thread(NULL), -EINVAL)                     \
  X(join_thread_before_close, bl_queue_join_thread(qplain), BL_ESTATE)         \
  X(cancel_join_null, (bl_queue_cancel_join_thread(NULL), 0), 0)               \
  X(task_done_null, bl_queue_task_done(NULL), -EINVAL)                         \
  X(task_done_not_joinable, bl_queue_task_done(qplain), BL_ENOTSUPPORTED)               \
  X(join_null, bl_queue_join(NULL, 0), -EINVAL)                                \
  X(join_not_joinable, bl_queue_join(qplain, 0), BL_ENOTSUPPORTED)                      \
  X(free_null, (bl_queue_free(NULL), 0), 0)                                    \
  X(closed_put, bl_queue_put(qclosed, buf, 1, 0), BL_ESTATE)                   \
  X(closed_put_nowait, bl_queue_put_nowait(qclosed, buf, 1), BL_ESTATE)        \
  X(closed_get, bl_queue_get(qclosed, &vp, &sz, 0), BL_ECLOSED)                \
  X(closed_get_nowait, bl_queue_get_nowait(qclosed, &vp, &sz), BL_ECLOSED)     \
  X(closed_double_close, bl_queue_close(qclosed), 0)                           \
  X(closed_task_done, bl_queue_task_done(qclosed), BL_EOVERRELEASE)                 \
  X(closed_join_thread, bl_queue_join_thread(qclosed), 0)                      \
  X(simple_new_null, bl_simple_queue_new(NULL), -EINVAL)                       \
  X(simple_put_null, bl_simple_queue_put(NULL, buf, 1), -EINVAL)               \
  X(simple_get_null, bl_simple_queue_get(NULL, &vp, &sz), -EINVAL)             \
  X(simple_get_closed, bl_simple_queue_get(qclosed, &vp, &sz), BL_ECLOSED)     \
  X(simple_put_closed, bl_simple_queue_put(qclosed, buf, 1), BL_ESTATE)        \
  X(simple_empty_null, bl_simple_queue_empty(NULL), -EINVAL)                   \
  X(simple_close_null, bl_simple_queue_close(NULL), -EINVAL)                   \
  X(simple_free_null, (bl_simple_queue_free(NULL), 0), 0)
#undef BAD_PFX
#define BAD_PFX queue
QUEUE_CASES(BAD_DEF)
static const bad_case_t queue_cases[] = {QUEUE_CASES(BAD_ROW)};
Test(badinput, queue) {
  bl_queue_options_init(&qo_reserved);
  qo_reserved.reserved[3] = 1;
  cr_assert_eq(bl_queue_new(&qplain, NULL), 0);
  cr_assert_eq(bl_joinable_queue_new(&qclosed, NULL), 0);
  cr_assert_eq(bl_queue_close(qclosed), 0);
  RUN("queue", queue_cases);
  cr_expect_null(qout);
  bl_queue_free(&qplain);
  bl_queue_free(&qplain);
  bl_queue_free(&qclosed);
  cr_expect_null(qclosed);
}

/* --------------------------------------------------------- synchronize.h */
static bl_lock_t *lk, *rlk;
static bl_semaphore_t *sem, *bsem;
static bl_event_t *ev;
static bl_condition_t *cond;
static bl_barrier_t *bar;
static void *outp;
static int pred_false(void *a) { (void)a; return 0; }
#define SYNC_CASES(X)                                                          \
  X(lock_new_null, bl_lock_new(NULL), -EINVAL)                                 \
  X(lock_attach_null, bl_lock_attach(NULL, 0), -EINVAL)                        \
  X(lock_attach_no_handle, bl_lock_attach((bl_lock_t **)&outp, 0), -ERANGE)    \
  X(sem_attach_null, bl_semaphore_attach(NULL, 0), -EINVAL)                    \
  X(event_attach_no_handle, bl_event_attach((bl_event_t **)&outp, 3), -ERANGE) \
  X(cond_attach_null, bl_condition_attach(NULL, 0), -EINVAL)                   \
  X(barrier_attach_no_handle, bl_barrier_attach((bl_barrier_t **)&outp, 0, NULL, NULL), -ERANGE) \
  X(rlock_new_null, bl_rlock_new(NULL), -EINVAL)                               \
  X(lock_acquire_null, bl_lock_acquire(NULL, 0), -EINVAL)                      \
  X(lock_release_null, bl_lock_release(NULL), -EINVAL)                         \
  X(lock_release_unheld, bl_lock_release(lk), BL_EOVERRELEASE)                 \
  X(rlock_release_unheld, bl_lock_release(rlk), BL_ESTATE)                     \
  X(lock_is_mine_null, bl_lock_is_mine(NULL), 0)                               \
  X(lock_count_null, bl_lock_count(NULL), 0)                             \
  X(lock_is_recursive_null, bl_lock_is_recursive(NULL), 0)               \
  X(lock_free_null, (bl_lock_free(NULL), 0), 0)                                \
  X(sem_new_null, bl_semaphore_new(NULL, 1), -EINVAL)                          \
  X(sem_new_negative, bl_semaphore_new((bl_semaphore_t **)&outp, -1), -EINVAL) \
  X(bsem_new_negative, bl_bounded_semaphore_new((bl_semaphore_t **)&outp, -1), -EINVAL) \
  X(sem_acquire_null, bl_semaphore_acquire(NULL, 0), -EINVAL)                  \
  X(sem_acquire_zero_timeout0, bl_semaphore_acquire(sem, 0), BL_ETIMEOUT)      \
  X(sem_release_null, bl_semaphore_release(NULL), -EINVAL)                     \
  X(bsem_over_release, bl_semaphore_release(bsem), BL_EOVERRELEASE)            \
  X(sem_value_null, bl_semaphore_value(NULL), -EINVAL)                         \
  X(sem_free_null, (bl_semaphore_free(NULL), 0), 0)                            \
  X(event_new_null, bl_event_new(NULL), -EINVAL)                               \
  X(event_set_null, (bl_event_set(NULL), 0), 0)                                \
  X(event_clear_null, (bl_event_clear(NULL), 0), 0)                            \
  X(event_is_set_null, bl_event_is_set(NULL), 0)                         \
  X(event_wait_null, bl_event_wait(NULL, 0), -EINVAL)                          \
  X(event_wait_unset_timeout0, bl_event_wait(ev, 0), 0)                        \
  X(event_free_null, (bl_event_free(NULL), 0), 0)                              \
  X(cond_new_null, bl_condition_new(NULL, NULL), -EINVAL)                      \
  X(cond_lock_null, bl_condition_lock(NULL) == NULL ? 0 : 1, 0)                \
  X(cond_acquire_null, bl_condition_acquire(NULL, 0), -EINVAL)                 \
  X(cond_release_null, bl_condition_release(NULL), -EINVAL)                    \
  X(cond_release_unheld, bl_condition_release(cond), BL_ESTATE)                \
  X(cond_wait_null, bl_condition_wait(NULL, 0), -EINVAL)                       \
  X(cond_wait_unheld, bl_condition_wait(cond, 0), BL_ESTATE)                   \
  X(cond_wait_for_null, bl_condition_wait_for(NULL, pred_false, NULL, 0), -EINVAL) \
  X(cond_wait_for_null_pred, bl_condition_wait_for(cond, NULL, NULL, 0), -EINVAL) \
  X(cond_wait_for_unheld, bl_condition_wait_for(cond, pred_false, NULL, 0), BL_ESTATE) \
  X(cond_notify_null, bl_condition_notify(NULL, 1), -EINVAL)                   \
  X(cond_notify_unheld, bl_condition_notify(cond, 1), BL_ESTATE)               \
  X(cond_notify_all_null, bl_condition_notify_all(NULL), -EINVAL)              \
  X(cond_notify_all_unheld, bl_condition_notify_all(cond), BL_ESTATE)          \
  X(cond_free_null, (bl_condition_free(NULL), 0), 0)                           \
  X(barrier_new_null, bl_barrier_new(NULL, 2, NULL, NULL), -EINVAL)            \
  X(barrier_new_zero, bl_barrier_new((bl_barrier_t **)&outp, 0, NULL, NULL), -EINVAL) \
  X(barrier_new_negative, bl_barrier_new((bl_barrier_t **)&outp, -3, NULL, NULL), -EINVAL) \
  X(barrier_wait_null, bl_barrier_wait(NULL, 0), -EINVAL)                      \
  X(barrier_abort_null, (bl_barrier_abort(NULL), 0), 0)                        \
  X(barrier_reset_null, (bl_barrier_reset(NULL), 0), 0)                        \
  X(barrier_parties_null, bl_barrier_parties(NULL), 0)                   \
  X(barrier_n_waiting_null, bl_barrier_n_waiting(NULL), -EINVAL)               \
  X(barrier_broken_null, bl_barrier_broken(NULL), -EINVAL)                     \
  X(barrier_wait_aborted, bl_barrier_wait(bar, 0), BL_EBROKENBARRIER)          \
  X(barrier_free_null, (bl_barrier_free(NULL), 0), 0)                          \
  X(lock_self_deadlock_timeout0, (bl_lock_acquire(lk, 0), bl_lock_acquire(lk, 0)), BL_ETIMEOUT) \
  X(lock_release_held, bl_lock_release(lk), 0)                                 \
  X(lock_release_twice, bl_lock_release(lk), BL_EOVERRELEASE)                  \
  X(rlock_over_release, (bl_lock_acquire(rlk, 0), bl_lock_release(rlk), bl_lock_release(rlk)), BL_ESTATE) \
  /* billiard: notify(n<=0) wakes nobody */                                  \
  X(cond_notify_negative_noop, (bl_condition_acquire(cond, 0), iv = bl_condition_notify(cond, -1), bl_condition_release(cond), iv), 0) \
  X(barrier_new_huge, bl_barrier_new((bl_barrier_t **)&outp, INT_MAX, NULL, NULL), 0) \
  X(barrier_new_huge_free, (bl_barrier_free((bl_barrier_t **)&outp), 0), 0)
#undef BAD_PFX
#define BAD_PFX sync
SYNC_CASES(BAD_DEF)
static const bad_case_t sync_cases[] = {SYNC_CASES(BAD_ROW)};
Test(badinput, synchronize) {
  cr_assert_eq(bl_lock_new(&lk), 0);
  cr_assert_eq(bl_rlock_new(&rlk), 0);
  cr_assert_eq(bl_semaphore_new(&sem, 0), 0);
  cr_assert_eq(bl_bounded_semaphore_new(&bsem, 1), 0);
  cr_assert_eq(bl_event_new(&ev), 0);
  cr_assert_eq(bl_condition_new(&cond, NULL), 0);
  cr_assert_eq(bl_barrier_new(&bar, 2, NULL, NULL), 0);
  bl_barrier_abort(bar);
  RUN("synchronize", sync_cases);
  cr_expect_null(outp);
  bl_lock_free(&lk);
  bl_lock_free(&lk);
  bl_lock_free(&rlk);
  bl_semaphore_free(&sem);
  bl_semaphore_free(&sem);
  bl_semaphore_free(&bsem);
  bl_event_free(&ev);
  bl_event_free(&ev);
  bl_condition_free(&cond);
  bl_condition_free(&cond);
  bl_barrier_free(&bar);
  bl_barrier_free(&bar);
  cr_expect(!lk && !sem && !ev && !cond && !bar);
}

/* -------------------------------------------------------- sharedctypes.h */
static bl_value_t *val, *vout;
static bl_shared_options_t so_noinit = {0}, so_reserved;
static int64_t i64;
static uint64_t u64;
static double f64;
#define SHARED_CASES(X)                                                        \
  X(options_init_null, (bl_shared_options_init(NULL), 0), 0)                   \
  X(value_attach_null, bl_value_attach(NULL, 0), -EINVAL)                     \
  X(value_attach_no_handle, bl_value_attach(&vout, 0), -ERANGE)               \
  X(value_new_null, bl_value_new(NULL, 'i', NULL), -EINVAL)                    \
  X(value_new_bad_typecode, bl_value_new(&vout, 'Z', NULL), -EINVAL)           \
  X(value_new_nul_typecode, bl_value_new(&vout, '\0', NULL), -EINVAL)          \
  X(value_new_skipped_init, bl_value_new(&vout, 'i', &so_noinit), -EINVAL)     \
  X(array_new_null, bl_array_new(NULL, 'i', 3, NULL), -EINVAL)                 \
  X(array_new_zero, bl_array_new(&vout, 'i', 0, NULL), -EINVAL)                \
  X(array_new_huge, bl_array_new(&vout, 'd', SIZE_MAX / 2, NULL), -EINVAL)     \
  X(array_new_bad_typecode, bl_array_new(&vout, '?', 3, NULL), -EINVAL)        \
  X(raw_value_new_null, bl_raw_value_new(NULL, 'i'), -EINVAL)                  \
  X(raw_value_bad_typecode, bl_raw_value_new(&vout, 'Z'), -EINVAL)             \
  X(raw_array_new_null, bl_raw_array_new(NULL, 'i', 2), -EINVAL)               \
  X(raw_array_zero, bl_raw_array_new(&vout, 'i', 0), -EINVAL)                  \
  X(raw_array_huge, bl_raw_array_new(&vout, 'q', SIZE_MAX), -EINVAL)           \
  X(free_null, (bl_value_free(NULL), 0), 0)                                    \
  X(get_lock_null, bl_value_get_lock(NULL) == NULL ? 0 : 1, 0)                 \
  X(typecode_null, bl_value_typecode(NULL), 0)                                 \
  X(len_null, (int)bl_value_len(NULL), 0)                                      \
  X(itemsize_null, (int)bl_value_itemsize(NULL), 0)                            \
  X(ptr_null, bl_value_ptr(NULL) == NULL ? 0 : 1, 0)                           \
  X(get_i64_null, bl_value_get_i64(NULL, 0, &i64), -EINVAL)                    \
  X(get_i64_null_out, bl_value_get_i64(val, 0, NULL), -EINVAL)                 \
  X(get_i64_range, bl_value_get_i64(val, 3, &i64), -ERANGE)                    \
  X(set_i64_null, bl_value_set_i64(NULL, 0, 1), -EINVAL)                       \
  X(set_i64_range, bl_value_set_i64(val, SIZE_MAX, 1), -ERANGE)                \
  X(get_u64_null, bl_value_get_u64(NULL, 0, &u64), -EINVAL)                    \
  X(get_u64_range, bl_value_get_u64(val, 3, &u64), -ERANGE)                    \
  X(set_u64_null, bl_value_set_u64(NULL, 0, 1), -EINVAL)                       \
  X(set_u64_range, bl_value_set_u64(val, 3, 1), -ERANGE)                       \
  X(get_f64_null, bl_value_get_f64(NULL, 0, &f64), -EINVAL)                    \
  X(get_f64_range, bl_value_get_f64(val, 3, &f64), -ERANGE)                    \
  X(set_f64_null, bl_value_set_f64(NULL, 0, 1.0), -EINVAL)                     \
  X(set_f64_range, bl_value_set_f64(val, 3, 1.0), -ERANGE)                     \
  X(typecode_size_unknown, bl_typecode_size('Z'), -EINVAL)                     \
  X(value_new_reserved, bl_value_new(&vout, 'i', &so_reserved), -EINVAL)
#undef BAD_PFX
#define BAD_PFX shared
SHARED_CASES(BAD_DEF)
static const bad_case_t shared_cases[] = {SHARED_CASES(BAD_ROW)};
Test(badinput, sharedctypes) {
  bl_shared_options_init(&so_reserved);
  so_reserved.reserved[1] = 1;
  cr_assert_eq(bl_array_new(&val, 'i', 3, NULL), 0);
  RUN("sharedctypes", shared_cases);
  cr_expect_null(vout);
  bl_value_free(&val);
  bl_value_free(&val);
  cr_expect_null(val);
}

/* ---------------------------------------------------------------- util.h */
static bl_process_info_t pinfo[4];
static const char *volatile null_fmt;
#define UTIL_CASES(X)                                                          \
  X(log_to_fd_not_open, bl_log_to_fd(9999, 10), -EBADF)                        \
  X(log_set_level_negative, bl_log_set_level(-5), -EINVAL)                     \
  X(log_to_stderr_negative, bl_log_to_stderr(-5), -EINVAL)                     \
  X(log_level_name_odd, bl_log_level_name(-7) != NULL ? 0 : 1, 0)              \
  X(log_null_fmt, bl_log(50, null_fmt, 0), -EINVAL)                            \
  X(current_process_null, bl_current_process(NULL), -EINVAL)                   \
  X(parent_process_null, bl_parent_process(NULL), -EINVAL)                     \
  X(active_children_null_n, bl_active_children(pinfo, 4, NULL), -EINVAL)       \
  X(active_children_null_out, bl_active_children(NULL, 4, &sz), -EINVAL)       \
  X(soft_timeout_install, bl_install_soft_timeout_handler(), 0)                \
  X(soft_timeout_install_twice, bl_install_soft_timeout_handler(), 0)          \
  X(soft_timeout_pending, bl_soft_timeout_pending(1), 0)                       \
  X(freeze_support, (bl_freeze_support(), 0), 0)                               \
  X(allow_connection_pickling, (bl_allow_connection_pickling(), 0), 0)         \
  X(cpu_count, bl_cpu_count() > 0 ? 0 : 1, 0)
#undef BAD_PFX
#define BAD_PFX util
UTIL_CASES(BAD_DEF)
static const bad_case_t util_cases[] = {UTIL_CASES(BAD_ROW)};
Test(badinput, util) {
  int lvl = bl_log_get_level();
  RUN("util", util_cases);
  cr_expect_eq(bl_log_get_level(), lvl, "a failed call changed the level");
  cr_expect_geq(bl_log_effective_level(), 0);
}

/* ------------------------------------------------------------- process.h */
static bl_process_t *pnew, *pstarted, *pout;
static bl_process_options_t po_noinit = {0}, po_reserved, po_method, po_grace;
static char long_name[BL_TASK_NAME_MAX + 2];
#define PROC_CASES(X)                                                          \
  X(options_init_null, (bl_process_options_init(NULL), 0), 0)                  \
  X(add_handle_null, bl_process_add_handle(NULL, BL_HANDLE_LOCK, lk), -EINVAL) \
  X(add_handle_null_obj, bl_process_add_handle(pnew, BL_HANDLE_LOCK, NULL), -EINVAL) \
  X(add_handle_bad_kind, bl_process_add_handle(pnew, (bl_handle_kind_t)0, lk), -EINVAL) \
  X(add_handle_wrong_kind, bl_process_add_handle(pnew, BL_HANDLE_EVENT, lk), -EINVAL) \
  X(add_handle_started, bl_process_add_handle(pstarted, BL_HANDLE_LOCK, lk), BL_ESTATE) \
  X(handle_kind_none, bl_process_handle_kind(0), -ERANGE)                      \
  X(handle_count_none, bl_process_handle_count(), 0)                           \
  X(new_null, bl_process_new(NULL, "bad_noop", NULL, 0, NULL), -EINVAL)        \
  X(new_null_target, bl_process_new(&pout, NULL, NULL, 0, NULL), -EINVAL)      \
  X(new_empty_target, bl_process_new(&pout, "", NULL, 0, NULL), -EINVAL)  \
  X(new_huge_arg, bl_process_new(&pout, "bad_noop", buf, SIZE_MAX, NULL), -EMSGSIZE) \
  X(new_long_target, bl_process_new(&pout, long_name, NULL, 0, NULL), -ENAMETOOLONG) \
  X(new_negative_grace, bl_process_new(&pout, "bad_noop", NULL, 0, &po_grace), -EINVAL) \
  X(new_null_arg_len, bl_process_new(&pout, "bad_noop", NULL, 5, NULL), -EINVAL) \
  X(new_skipped_init, bl_process_new(&pout, "bad_noop", NULL, 0, &po_noinit), -EINVAL) \
  X(new_reserved, bl_process_new(&pout, "bad_noop", NULL, 0, &po_reserved), -EINVAL) \
  X(new_bad_method, bl_process_new(&pout, "bad_noop", NULL, 0, &po_method), -EINVAL) \
  X(start_null, bl_process_start(NULL), -EINVAL)                               \
  X(join_null, bl_process_join(NULL, 0), -EINVAL)                              \
  X(is_alive_null, bl_process_is_alive(NULL), -EINVAL)                         \
  X(exitcode_null, bl_process_exitcode(NULL, &iv), -EINVAL)                    \
  X(exitcode_null_out, bl_process_exitcode(pstarted, NULL), -EINVAL)           \
  X(pid_null, bl_process_pid(NULL), 0)                                         \
  X(name_null, bl_process_name(NULL) == NULL ? 0 : 1, 0)                       \
  X(daemon_null, bl_process_daemon(NULL), 0)                             \
  X(sentinel_null, bl_process_sentinel(NULL), -1)                         \
  X(terminate_null, bl_process_terminate(NULL), -EINVAL)                       \
  X(kill_null, bl_process_kill(NULL), -EINVAL)                                 \
  X(close_null, bl_process_close(NULL), -EINVAL)                               \
  X(free_null, (bl_process_free(NULL), 0), 0)                                  \
  /* pnew: created, never started */                                           \
  X(unstarted_join, bl_process_join(pnew, 0), BL_ESTATE)                       \
  X(unstarted_is_alive, bl_process_is_alive(pnew), 0)                          \
  X(unstarted_exitcode, bl_process_exitcode(pnew, &iv), BL_ESTATE)             \
  X(unstarted_pid, bl_process_pid(pnew), 0)                                    \
  X(unstarted_sentinel, bl_process_sentinel(pnew), -1)                         \
  X(unstarted_terminate, bl_process_terminate(pnew), BL_ESTATE)                \
  X(unstarted_kill, bl_process_kill(pnew), BL_ESTATE)                          \
  /* pstarted: started, joined and closed */                                   \
  X(closed_start, bl_process_start(pstarted), BL_ESTATE)                       \
  X(closed_join, bl_process_join(pstarted, 0), BL_ESTATE)                      \
  X(closed_is_alive, bl_process_is_alive(pstarted), 0)                 \
  X(closed_exitcode, bl_process_exitcode(pstarted, &iv), BL_ESTATE)            \
  X(closed_sentinel, bl_process_sentinel(pstarted), -1)                 \
  X(closed_terminate, bl_process_terminate(pstarted), BL_ESTATE)               \
  X(closed_kill, bl_process_kill(pstarted), BL_ESTATE)                         \
  X(closed_double_close, bl_process_close(pstarted), 0)
#undef BAD_PFX
#define BAD_PFX proc
PROC_CASES(BAD_DEF)
static const bad_case_t proc_cases[] = {PROC_CASES(BAD_ROW)};
Test(badinput, process) {
  bl_process_options_init(&po_reserved);
  po_reserved.reserved[7] = 1;
  bl_process_options_init(&po_method);
  po_method.start_method = "vfork";
  bl_process_options_init(&po_grace);
  po_grace.term_grace_ms = -1;
  memset(long_name, 'n', sizeof long_name - 1);
  cr_assert_eq(bl_process_new(&pnew, "bad_noop", NULL, 0, NULL), 0);
  cr_assert_eq(bl_process_new(&pstarted, "bad_noop", NULL, 0, NULL), 0);
  cr_assert_eq(bl_process_start(pstarted), 0);
  cr_assert_eq(bl_process_join(pstarted, 60000), 0);
  cr_assert_eq(bl_process_close(pstarted), 0);
  cr_assert_eq(bl_lock_new(&lk), 0); /* for the add_handle cases */
  RUN("process", proc_cases);
  bl_lock_free(&lk);
  cr_expect_null(pout);
  /* an unknown target is found missing by the child, at start */
  cr_assert_eq(bl_process_new(&pout, "no_such", NULL, 0, NULL), 0);
  cr_expect_eq(bl_process_start(pout), BL_ENOTFOUND);
  cr_expect_eq(bl_process_pid(pout), 0);
  bl_process_free(&pout);
  cr_expect_str_neq(bl_process_name(pstarted), "", "getter after close");
  bl_process_free(&pnew);
  bl_process_free(&pstarted);
  bl_process_free(&pstarted);
  cr_expect_null(pstarted);
  cr_expect_eq(bl_process_teardown(), 0);
}

/* ------------------------------------------------------ pool.h, result.h */
static bl_pool_t *pool, *pout_pool;
static bl_pool_options_t plo_noinit = {0}, plo_reserved, plo_many;
static bl_apply_options_t ao_noinit = {0}, ao_reserved;
static bl_result_t *res, *rout;
static bl_imap_t *itout;
static const void *cvp;
static const void *args1[1] = {"x"};
static const size_t lens1[1] = {1};
static pid_t pids[4];
#define POOL_CASES(X)                                                          \
  X(options_init_null, (bl_pool_options_init(NULL), 0), 0)                     \
  X(apply_options_init_null, (bl_apply_options_init(NULL), 0), 0)              \
  X(new_null, bl_pool_new(NULL, NULL), -EINVAL)                                \
  X(new_skipped_init, bl_pool_new(&pout_pool, &plo_noinit), -EINVAL)           \
  X(new_reserved, bl_pool_new(&pout_pool, &plo_reserved), -EINVAL)             \
  X(free_null, (bl_pool_free(NULL), 0), 0)                                     \
  X(apply_async_null_pool, bl_pool_apply_async(NULL, "bad_echo", "x", 1, NULL, &rout), -EINVAL) \
  X(apply_async_null_task, bl_pool_apply_async(pool, NULL, "x", 1, NULL, &rout), -EINVAL) \
  X(apply_async_null_arg_len, bl_pool_apply_async(pool, "bad_echo", NULL, 4, NULL, &rout), -EINVAL) \
  X(apply_async_huge, bl_pool_apply_async(pool, "bad_echo", buf, SIZE_MAX, NULL, &rout), -EMSGSIZE) \
  X(apply_async_unknown, bl_pool_apply_async(pool, "no_such", "x", 1, NULL, &rout), BL_ENOTFOUND) \
  X(apply_async_ao_noinit, bl_pool_apply_async(pool, "bad_echo", "x", 1, &ao_noinit, &rout), -EINVAL) \
  X(apply_async_ao_reserved, bl_pool_apply_async(pool, "bad_echo", "x", 1, &ao_reserved, &rout), -EINVAL) \
  X(apply_null_pool, bl_pool_apply(NULL, "bad_echo", "x", 1, NULL, &vp, &sz, NULL), -EINVAL) \
  X(apply_unknown, bl_pool_apply(pool, "no_such", "x", 1, NULL, &vp, &sz, NULL), BL_ENOTFOUND) \
  X(map_async_null_pool, bl_pool_map_async(NULL, "bad_echo", args1, lens1, 1, NULL, &rout), -EINVAL) \
  X(map_async_null_args, bl_pool_map_async(pool, "bad_echo", NULL, lens1, 1, NULL, &rout), -EINVAL) \
  X(map_async_null_lens, bl_pool_map_async(pool, "bad_echo", args1, NULL, 1, NULL, &rout), -EINVAL) \
  X(map_async_unknown, bl_pool_map_async(pool, "no_such", args1, lens1, 1, NULL, &rout), BL_ENOTFOUND) \
  X(map_null_pool, bl_pool_map(NULL, "bad_echo", args1, lens1, 1, NULL, &rout, NULL), -EINVAL) \
  X(starmap_async_null_pool, bl_pool_starmap_async(NULL, "bad_echo", args1, lens1, 1, NULL, &rout), -EINVAL) \
  X(starmap_null_pool, bl_pool_starmap(NULL, "bad_echo", args1, lens1, 1, NULL, &rout, NULL), -EINVAL) \
  X(imap_null_pool, bl_pool_imap(NULL, "bad_echo", args1, lens1, 1, NULL, &itout), -EINVAL) \
  X(imap_null_out, bl_pool_imap(pool, "bad_echo", args1, lens1, 1, NULL, NULL), -EINVAL) \
  X(imap_unordered_null_pool, bl_pool_imap_unordered(NULL, "bad_echo", args1, lens1, 1, NULL, &itout), -EINVAL) \
  X(imap_next_null, bl_imap_next(NULL, 0, &cvp, &sz, NULL), -EINVAL)           \
  X(imap_result_null, bl_imap_result(NULL) == NULL ? 0 : 1, 0)                 \
  X(imap_free_null, (bl_imap_free(NULL), 0), 0)                                \
  X(default_chunksize_zero_workers, (int)bl_pool_default_chunksize(10, 0) > 0 ? 0 : 1, 0) \
  X(close_null, bl_pool_close(NULL), -EINVAL)                                  \
  X(terminate_null, bl_pool_terminate(NULL), -EINVAL)                          \
  X(join_null, bl_pool_join(NULL, 0), -EINVAL)                                 \
  X(join_running, bl_pool_join(pool, 0), BL_ESTATE)                            \
  X(state_null, bl_pool_state(NULL), -EINVAL)                                  \
  X(error_null, bl_pool_error(NULL, NULL), -EINVAL)                            \
  X(terminate_job_null, bl_pool_terminate_job(NULL, res, 0), -EINVAL)          \
  X(terminate_job_null_result, bl_pool_terminate_job(pool, NULL, 0), -EINVAL)  \
  X(terminate_job_bad_signal, bl_pool_terminate_job(pool, res, 9999), -EINVAL) \
  X(terminate_job_pid_null, bl_pool_terminate_job_pid(NULL, 1, 0, 0), -EINVAL) \
  X(terminate_job_pid_not_worker, bl_pool_terminate_job_pid(pool, 1, 0, 0), -ESRCH) \
  X(grow_null, bl_pool_grow(NULL, 1), -EINVAL)                                 \
  X(grow_huge, bl_pool_grow(pool, UINT_MAX), -EINVAL)                          \
  X(grow_past_cap, bl_pool_grow(pool, 4096), -EINVAL)                          \
  X(size_unchanged, (int)bl_pool_size(pool), 1)                                \
  X(shrink_more_than_idle, bl_pool_shrink(pool, UINT_MAX), -EBUSY)             \
  X(new_too_many_processes, bl_pool_new(&pout_pool, &plo_many), -EINVAL)       \
  X(worker_name_cap0, bl_pool_worker_name(pool, pids[0], buf, 0), -EINVAL)     \
  X(shrink_null, bl_pool_shrink(NULL, 1), -EINVAL)                             \
  X(restart_null, bl_pool_restart(NULL), -EINVAL)                              \
  X(restart_not_allowed, bl_pool_restart(pool), BL_ESTATE)                     \
  X(maintain_null, bl_pool_maintain_pool(NULL), -EINVAL)                       \
  X(size_null, (int)bl_pool_size(NULL), 0)                                     \
  X(pids_null, bl_pool_pids(NULL, pids, 4), -EINVAL)                           \
  X(pids_null_buf, bl_pool_pids(pool, NULL, 4), -EINVAL)                       \
  X(worker_name_null, bl_pool_worker_name(NULL, 1, buf, sizeof buf), -EINVAL)  \
  X(worker_name_null_buf, bl_pool_worker_name(pool, 1, NULL, 8), -EINVAL)      \
  X(worker_name_not_worker, bl_pool_worker_name(pool, 1, buf, sizeof buf), -ESRCH) \
  X(fd_null, bl_pool_fd(NULL), -EINVAL)                                        \
  X(fd_with_thread, bl_pool_fd(pool), -EINVAL)                                 \
  X(step_null, bl_pool_step(NULL, 0), -EINVAL)                                 \
  X(step_with_thread, bl_pool_step(pool, 0), -EINVAL)                          \
  X(wakeup_null, bl_pool_wakeup(NULL), -EINVAL)                                \
  X(task_return_null, bl_task_return(NULL, "x", 1), -EINVAL)                   \
  X(task_fail_null, bl_task_fail(NULL, "T", "m", NULL), -EINVAL)               \
  X(task_soft_limit_null, bl_task_soft_limit_exceeded(NULL), 0)                \
  X(task_sleep_null, bl_task_sleep(NULL, 1), -EINVAL)                          \
  X(task_job_id_null, (int)bl_task_job_id(NULL), 0)                            \
  X(task_index_null, (int)bl_task_index(NULL), 0)                              \
  X(task_pid_null_is_self, bl_task_pid(NULL) == getpid() ? 0 : 1, 0)                                       \
  X(result_get_null, bl_result_get(NULL, 0, &cvp, &sz, NULL), -EINVAL)         \
  X(result_wait_null, bl_result_wait(NULL, 0), -EINVAL)                        \
  X(result_ready_null, bl_result_ready(NULL), 0)                         \
  X(result_successful_null, bl_result_successful(NULL), -EINVAL)               \
  X(result_accepted_null, bl_result_accepted(NULL), 0)                   \
  X(result_worker_pid_null, bl_result_worker_pid(NULL), 0)                     \
  X(result_job_id_null, (int)bl_result_job_id(NULL), 0)                        \
  X(result_count_null, (int)bl_result_count(NULL), 0)                          \
  X(result_item_null, bl_result_item(NULL, 0, &cvp, &sz), -EINVAL)             \
  X(result_item_range, bl_result_item(res, 99, &cvp, &sz), -ERANGE)            \
  X(result_free_null, (bl_result_free(NULL), 0), 0)
#define POOL_AFTER_CASES(X)                                                    \
  X(after_apply_async, bl_pool_apply_async(pool, "bad_echo", "x", 1, NULL, &rout), BL_ENOTRUNNING) \
  X(after_apply, bl_pool_apply(pool, "bad_echo", "x", 1, NULL, &vp, &sz, NULL), BL_ENOTRUNNING) \
  X(after_map_async, bl_pool_map_async(pool, "bad_echo", args1, lens1, 1, NULL, &rout), BL_ENOTRUNNING) \
  X(after_map, bl_pool_map(pool, "bad_echo", args1, lens1, 1, NULL, &rout, NULL), BL_ENOTRUNNING) \
  X(after_starmap_async, bl_pool_starmap_async(pool, "bad_echo", args1, lens1, 1, NULL, &rout), BL_ENOTRUNNING) \
  X(after_starmap, bl_pool_starmap(pool, "bad_echo", args1, lens1, 1, NULL, &rout, NULL), BL_ENOTRUNNING) \
  X(after_imap, bl_pool_imap(pool, "bad_echo", args1, lens1, 1, NULL, &itout), BL_ENOTRUNNING) \
  X(after_imap_unordered, bl_pool_imap_unordered(pool, "bad_echo", args1, lens1, 1, NULL, &itout), BL_ENOTRUNNING) \
  X(after_terminate_again, bl_pool_terminate(pool), 0)                         \
  X(after_close, bl_pool_close(pool), 0)                                       \
  X(after_join, bl_pool_join(pool, 5000), 0)                                   \
  X(after_join_again, bl_pool_join(pool, 0), 0)                                \
  X(after_state, bl_pool_state(pool), BL_POOL_TERMINATE)                       \
  X(after_grow, bl_pool_grow(pool, 1), BL_ENOTRUNNING)                         \
  X(after_maintain_noop, bl_pool_maintain_pool(pool), 0)               \
  X(after_pids, bl_pool_pids(pool, pids, 4), 0)                                \
  X(after_result_resolved, bl_result_get(res, 0, &cvp, &sz, NULL), 0)
#undef BAD_PFX
#define BAD_PFX pool
POOL_CASES(BAD_DEF)
POOL_AFTER_CASES(BAD_DEF)
static const bad_case_t pool_cases[] = {POOL_CASES(BAD_ROW)};
static const bad_case_t pool_after_cases[] = {POOL_AFTER_CASES(BAD_ROW)};
Test(badinput, pool) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  bl_pool_options_init(&plo_reserved);
  plo_reserved.processes = 1;
  plo_reserved.reserved[0] = 1;
  bl_apply_options_init(&ao_reserved);
  ao_reserved.reserved[5] = 1;
  bl_pool_options_init(&plo_many);
  plo_many.processes = 5000;
  cr_assert_eq(bl_pool_new(&pool, &o), 0);
  cr_assert_eq(bl_pool_apply_async(pool, "bad_echo", "ok", 2, NULL, &res), 0);
  cr_assert_eq(bl_result_wait(res, 30000), 0);
  cr_assert_eq(bl_pool_pids(pool, pids, 4), 1);
  bl_imap_t *it;
  cr_assert_eq(bl_pool_imap(pool, "bad_echo", args1, lens1, 1, NULL, &it), 0);
  cr_assert_eq(bl_imap_next(it, 30000, &cvp, &sz, NULL), 0);
  RUN("pool", pool_cases);
  bl_result_t *slow; /* never finishes: terminate must fail it */
  cr_assert_eq(bl_pool_apply_async(pool, "bad_sleep", NULL, 0, NULL, &slow), 0);
  cr_assert_eq(bl_pool_terminate(pool), 0);
  cr_expect_eq(bl_result_get(slow, 30000, NULL, NULL, NULL), BL_ETERMINATED);
  cr_expect_eq(bl_result_successful(slow), 0);
  bl_result_free(&slow);
  cr_expect_eq(bl_imap_next(it, 0, &cvp, &sz, NULL), BL_EEOF);
  cr_expect_eq(bl_imap_next(it, 0, &cvp, &sz, NULL), BL_EEOF, "exhausted stays exhausted");
  cr_expect_not_null(bl_imap_result(it));
  bl_imap_free(&it);
  bl_imap_free(&it);
  cr_expect_null(it);
  RUN("pool-after-terminate", pool_after_cases);
  cr_expect_null(pout_pool);
  cr_expect_null(rout);
  cr_expect_null(itout);
  bl_pool_free(&pool);
  bl_pool_free(&pool);
  cr_expect_null(pool);
  cr_expect_eq(bl_result_get(res, 0, &cvp, &sz, NULL), 0, "result outlives pool");
  bl_result_free(&res);
  bl_result_free(&res);
  cr_expect_null(res);
}

/* ------------------------------------------------------------- manager.h */
static bl_manager_t *mgr, *mout;
static bl_proxy_t *dpx, *pxout, *lpx, *qpx, *mlpx;
static bl_manager_options_t mo_noinit = {0}, mo_reserved, mo_key0, mo_keybig;
static char bigkey[BL_MANAGER_AUTHKEY_MAX + 1];
static uint32_t u32;
#define MGR_CASES(X)                                                           \
  X(options_init_null, (bl_manager_options_init(NULL), 0), 0)                  \
  X(new_null, bl_manager_new(NULL, NULL), -EINVAL)                             \
  X(new_skipped_init, bl_manager_new(&mout, &mo_noinit), -EINVAL)              \
  X(new_reserved, bl_manager_new(&mout, &mo_reserved), -EINVAL)                \
  X(new_authkey_len0, bl_manager_new(&mout, &mo_key0), -EINVAL)                \
  X(new_authkey_too_long, bl_manager_new(&mout, &mo_keybig), -EINVAL)          \
  X(start_null, bl_manager_start(NULL), -EINVAL)                               \
  X(connect_null_out, bl_manager_connect(NULL, "@x", "k", 1), -EINVAL)         \
  X(connect_null_address, bl_manager_connect(&mout, NULL, "k", 1), -EINVAL)    \
  X(connect_null_key, bl_manager_connect(&mout, "@x", NULL, 1), -EINVAL)       \
  X(connect_nobody, bl_manager_connect(&mout, "@bl-badinput-none", "k", 1), -ECONNREFUSED) \
  X(shutdown_null, bl_manager_shutdown(NULL), -EINVAL)                         \
  X(free_null, (bl_manager_free(NULL), 0), 0)                                  \
  X(address_null, bl_manager_address(NULL) == NULL ? 0 : 1, 0)                 \
  X(address_unstarted, bl_manager_address(mgr) == NULL ? 0 : 1, 0)             \
  X(pid_null, bl_manager_pid(NULL), 0)                                         \
  X(authkey_null, bl_manager_authkey(NULL, &sz) == NULL ? 0 : 1, 0)            \
  X(dict_null, bl_manager_dict(NULL, &pxout), -EINVAL)                         \
  X(dict_unstarted, bl_manager_dict(mgr, &pxout), BL_ESTATE)              \
  X(list_unstarted, bl_manager_list(mgr, &pxout), BL_ESTATE)              \
  X(namespace_unstarted, bl_manager_namespace(mgr, &pxout), BL_ESTATE)    \
  X(queue_unstarted, bl_manager_queue(mgr, &pxout), BL_ESTATE)            \
  X(lock_unstarted, bl_manager_lock(mgr, &pxout), BL_ESTATE)              \
  X(event_unstarted, bl_manager_event(mgr, &pxout), BL_ESTATE)            \
  X(value_unstarted, bl_manager_value(mgr, &pxout, "v", 1), BL_ESTATE)    \
  X(list_null_out, bl_manager_list(mgr, NULL), -EINVAL)                        \
  X(proxy_id_null, (int)bl_proxy_id(NULL), 0)                                 \
  X(proxy_attach_null, bl_proxy_attach(NULL, 1, &pxout), -EINVAL)              \
  X(proxy_free_null, (bl_proxy_free(NULL), 0), 0)                              \
  X(dict_set_null, bl_dict_set(NULL, "k", "v", 1), -EINVAL)                    \
  X(dict_get_null, bl_dict_get(NULL, "k", &vp, &sz), -EINVAL)                  \
  X(dict_del_null, bl_dict_del(NULL, "k"), -EINVAL)                            \
  X(dict_len_null, bl_dict_len(NULL, &sz), -EINVAL)                            \
  X(list_append_null, bl_list_append(NULL, "v", 1), -EINVAL)                   \
  X(list_get_null, bl_list_get(NULL, 0, &vp, &sz), -EINVAL)                    \
  X(list_set_null, bl_list_set(NULL, 0, "v", 1), -EINVAL)                      \
  X(list_len_null, bl_list_len(NULL, &sz), -EINVAL)                            \
  X(namespace_set_null, bl_namespace_set(NULL, "a", "v", 1), -EINVAL)          \
  X(namespace_get_null, bl_namespace_get(NULL, "a", &vp, &sz), -EINVAL)        \
  X(mqueue_put_null, bl_mqueue_put(NULL, "v", 1), -EINVAL)                     \
  X(mqueue_get_null, bl_mqueue_get(NULL, &vp, &sz, 0), -EINVAL)                \
  X(mqueue_size_null, bl_mqueue_size(NULL, &sz), -EINVAL)                      \
  X(mlock_acquire_null, bl_mlock_acquire(NULL, 0), -EINVAL)                    \
  X(mlock_release_null, bl_mlock_release(NULL), -EINVAL)                       \
  X(mevent_set_null, bl_mevent_set(NULL), -EINVAL)                             \
  X(mevent_clear_null, bl_mevent_clear(NULL), -EINVAL)                         \
  X(mevent_is_set_null, bl_mevent_is_set(NULL), -EINVAL)                       \
  X(mevent_wait_null, bl_mevent_wait(NULL, 0), -EINVAL)                        \
  X(mvalue_set_null, bl_mvalue_set(NULL, "v", 1), -EINVAL)                     \
  X(mvalue_get_null, bl_mvalue_get(NULL, &vp, &sz), -EINVAL)
/* mgr started, dpx a dict proxy */
#define MGR_LIVE_CASES(X)                                                      \
  X(start_twice, bl_manager_start(mgr), BL_ESTATE)                             \
  X(dict_set_null_key, bl_dict_set(dpx, NULL, "v", 1), -EINVAL)                \
  X(dict_get_null_out, bl_dict_get(dpx, "k", NULL, &sz), -EINVAL)              \
  X(dict_get_missing, bl_dict_get(dpx, "missing", &vp, &sz), BL_ENOTFOUND)     \
  X(dict_set_null_val, bl_dict_set(dpx, "k", NULL, 4), -EINVAL)                \
  X(dict_len_null_out, bl_dict_len(dpx, NULL), -EINVAL)                       \
  X(wrong_kind_list_append, bl_list_append(dpx, "v", 1), -EINVAL)              \
  X(wrong_kind_list_get, bl_list_get(dpx, 0, &vp, &sz), -EINVAL)              \
  X(wrong_kind_namespace_get, bl_namespace_get(dpx, "a", &vp, &sz), -EINVAL)   \
  X(wrong_kind_mqueue_put, bl_mqueue_put(dpx, "v", 1), -EINVAL)                \
  X(wrong_kind_mlock_release, bl_mlock_release(dpx), -EINVAL)                  \
  X(wrong_kind_mevent_set, bl_mevent_set(dpx), -EINVAL)                        \
  X(wrong_kind_mvalue_get, bl_mvalue_get(dpx, &vp, &sz), -EINVAL)              \
  X(attach_unknown_id, bl_proxy_attach(mgr, 0xfffffff0u, &pxout), BL_ENOTFOUND) \
  X(attach_null_out, bl_proxy_attach(mgr, u32, NULL), -EINVAL)                 \
  X(value_null_init, bl_manager_value(mgr, &pxout, NULL, 4), -EINVAL)         \
  X(value_huge, bl_manager_value(mgr, &pxout, buf, SIZE_MAX), -EINVAL)         \
  X(dict_set_huge, bl_dict_set(dpx, "k", buf, SIZE_MAX), -EINVAL)             \
  X(dict_set_huge_key, bl_dict_set(dpx, bigkey, "v", 1), 0)                    \
  X(still_usable, bl_dict_len(dpx, &sz), 0)                                    \
  X(connect_wrong_key, bl_manager_connect(&mout, bl_manager_address(mgr), "bad", 3), BL_EAUTH) \
  X(connect_key_len0, bl_manager_connect(&mout, bl_manager_address(mgr), "k", 0), -EINVAL) \
  X(connect_key_too_long, bl_manager_connect(&mout, bl_manager_address(mgr), bigkey, sizeof bigkey), -EINVAL) \
  X(list_get_range, (bl_manager_list(mgr, &lpx), bl_list_get(lpx, 5, &vp, &sz)), -ERANGE) \
  X(list_set_range, bl_list_set(lpx, -1, "v", 1), -ERANGE)                     \
  X(wrong_kind_dict_on_list, bl_dict_len(lpx, &sz), -EINVAL)                   \
  X(mqueue_get_empty, (bl_manager_queue(mgr, &qpx), bl_mqueue_get(qpx, &vp, &sz, 0)), BL_EEMPTY) \
  X(mlock_release_unheld, (bl_manager_lock(mgr, &mlpx), bl_mlock_release(mlpx)), BL_EOVERRELEASE)
#define MGR_DOWN_CASES(X)                                                      \
  X(down_dict_set, bl_dict_set(dpx, "k", "v", 1), BL_ENOTRUNNING)              \
  X(down_dict_get, bl_dict_get(dpx, "k", &vp, &sz), BL_ENOTRUNNING)            \
  X(down_dict_len, bl_dict_len(dpx, &sz), BL_ENOTRUNNING)                      \
  X(down_new_dict, bl_manager_dict(mgr, &pxout), BL_ESTATE)                    \
  X(down_attach, bl_proxy_attach(mgr, u32, &pxout), BL_ENOTRUNNING)            \
  X(down_shutdown_again, bl_manager_shutdown(mgr), 0)                          \
  X(down_start_again, bl_manager_start(mgr), BL_ESTATE)
#undef BAD_PFX
#define BAD_PFX mgr
MGR_CASES(BAD_DEF)
MGR_LIVE_CASES(BAD_DEF)
MGR_DOWN_CASES(BAD_DEF)
static const bad_case_t mgr_cases[] = {MGR_CASES(BAD_ROW)};
static const bad_case_t mgr_live_cases[] = {MGR_LIVE_CASES(BAD_ROW)};
static const bad_case_t mgr_down_cases[] = {MGR_DOWN_CASES(BAD_ROW)};
Test(badinput, manager) {
  bl_manager_options_init(&mo_reserved);
  mo_reserved.reserved[2] = 1;
  bl_manager_options_init(&mo_key0);
  mo_key0.authkey = "k";
  bl_manager_options_init(&mo_keybig);
  mo_keybig.authkey = bigkey;
  mo_keybig.authkey_len = sizeof bigkey;
  memset(bigkey, 'k', sizeof bigkey - 1); /* NUL-terminated: a long key */
  cr_assert_eq(bl_manager_new(&mgr, NULL), 0);
  RUN("manager", mgr_cases);
  cr_assert_eq(bl_manager_start(mgr), 0);
  cr_assert_eq(bl_manager_dict(mgr, &dpx), 0);
  u32 = bl_proxy_id(dpx);
  RUN("manager-live", mgr_live_cases);
  cr_assert_eq(bl_manager_shutdown(mgr), 0);
  RUN("manager-down", mgr_down_cases);
  cr_expect_null(mout);
  cr_expect_null(pxout);
  cr_expect_eq(bl_list_len(lpx, &sz), BL_ENOTRUNNING);
  bl_proxy_free(&lpx);
  bl_proxy_free(&qpx);
  bl_proxy_free(&mlpx);
  bl_proxy_free(&dpx);
  bl_proxy_free(&dpx);
  bl_manager_free(&mgr);
  bl_manager_free(&mgr);
  cr_expect(!dpx && !mgr);
}

/* close() (not terminate): submissions refused, running work finishes. */
#undef BAD_PFX
#define BAD_PFX closed
#define POOL_CLOSED_CASES(X)                                                   \
  X(apply_async, bl_pool_apply_async(pool, "bad_echo", "x", 1, NULL, &rout), BL_ENOTRUNNING) \
  X(map_async, bl_pool_map_async(pool, "bad_echo", args1, lens1, 1, NULL, &rout), BL_ENOTRUNNING) \
  X(imap, bl_pool_imap(pool, "bad_echo", args1, lens1, 1, NULL, &itout), BL_ENOTRUNNING) \
  X(grow, bl_pool_grow(pool, 1), BL_ENOTRUNNING)                               \
  X(close_again, bl_pool_close(pool), 0)                                       \
  X(state, bl_pool_state(pool), BL_POOL_CLOSE)                                 \
  X(join, bl_pool_join(pool, 30000), 0)                                        \
  X(terminate_after_join, bl_pool_terminate(pool), 0)
POOL_CLOSED_CASES(BAD_DEF)
static const bad_case_t pool_closed_cases[] = {POOL_CLOSED_CASES(BAD_ROW)};
Test(badinput, pool_closed) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  cr_assert_eq(bl_pool_new(&pool, &o), 0);
  cr_assert_eq(bl_pool_close(pool), 0);
  RUN("pool-closed", pool_closed_cases);
  cr_expect_null(rout);
  cr_expect_null(itout);
  bl_pool_free(&pool);
  bl_pool_free(&pool);
  cr_expect_null(pool);
}
