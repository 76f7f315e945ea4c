/* test_cov_misc.c: edge paths of the small concerns (errors, clock, fd
 * helpers, wire, time limits, restart limiter, logger) the other suites do
 * not reach: unknown codes, NULL arguments, non-blocking fds, clamps. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"
#include "restart.h"
#include "timelimits.h"
#include "wire.h"

Test(cov_misc, error_strings_for_every_kind_of_code) {
  /* A billiard code, success, an errno, and codes in neither range. */
  cr_expect_str_eq(bl_strerror(0), "success");
  cr_expect_str_eq(bl_strerror(-EPIPE), strerror(EPIPE));
  cr_expect_str_eq(bl_strerror(-4096), "unknown error");
  cr_expect_str_eq(bl_strerror(7), "unknown error");
  cr_expect_str_eq(bl_err_name(0), "OK");
  cr_expect_str_eq(bl_err_name(-ENOENT), "ENOENT");
  cr_expect_str_eq(bl_err_name(-4000), "UNKNOWN", "no errno has that number");
  cr_expect_str_eq(bl_err_name(5), "UNKNOWN");
  cr_expect_str_eq(bl_err_name(BL_ETIMEOUT), "BL_ETIMEOUT");
  cr_expect_str_eq(bl_err_exception(-EPIPE), "BrokenPipeError");
  cr_expect_str_eq(bl_err_exception(-ESHUTDOWN), "BrokenPipeError");
  cr_expect_str_eq(bl_err_exception(-ECONNRESET), "ConnectionResetError");
  cr_expect_str_eq(bl_err_exception(-EINTR), "InterruptedError");
  cr_expect_str_eq(bl_err_exception(-EIO), "OSError");
  cr_expect_str_eq(bl_err_exception(3), "Exception");
  cr_expect_eq(bl_err_is_billiard(BL_EAUTH), 1);
  cr_expect_eq(bl_err_is_billiard(-EIO), 0);
}

Test(cov_misc, error_info_set_clear_type) {
  cr_expect_eq(bl_error_info_set(NULL, 1, NULL, NULL, NULL), -EINVAL);
  bl_error_info_t e = {0};
  cr_assert_eq(bl_error_info_set(&e, BL_ETASK, NULL, "m", NULL), 0);
  cr_expect_null(e.type);
  cr_expect_str_eq(bl_error_info_type(&e), bl_err_exception(BL_ETASK),
                   "falls back to the code's");
  cr_assert_eq(bl_error_info_set(&e, BL_ETIMEOUT, "X", NULL, "tb"), 0);
  cr_expect_str_eq(bl_error_info_type(&e), "X");
  cr_expect_null(e.message, "a second set replaces the first");
  bl_error_info_clear(&e);
  bl_error_info_clear(NULL);
  cr_expect_null(bl_error_info_type(NULL));
  cr_expect_null(bl__strdup(NULL));
  char *s = bl__asprintf("%d-%s", 4, "x");
  cr_expect_str_eq(s, "4-x");
  free(s);
  cr_expect_not_null(bl_version());
}

static uint64_t fixed_now(void *ud) { return *(uint64_t *)ud; }

Test(cov_misc, clock_defaults_and_offset_never_goes_back) {
  uint64_t t = 42;
  bl_clock_t c = {.now_ns = fixed_now, .ud = &t};
  cr_expect_eq(bl_clock_now(&c), 42);
  bl_clock_t none = {0};
  uint64_t a = bl_clock_now(&none), b = bl_clock_now(NULL);
  cr_expect_leq(a, b, "both read the monotonic clock");
  bl_offset_clock_init(NULL);
  bl_offset_clock_jump(NULL, 5);
  bl_offset_clock_t oc;
  bl_offset_clock_init(&oc);
  uint64_t t0 = bl_clock_now(&oc.clock);
  bl_offset_clock_jump(&oc, -(int64_t)3600 * 1000000000);
  uint64_t t1 = bl_clock_now(&oc.clock);
  cr_expect_geq(t1, t0, "a backward jump stalls the clock");
  bl_offset_clock_jump(&oc, -(int64_t)t0 * 4); /* below zero: clamps */
  cr_expect_geq(bl_clock_now(&oc.clock), t0);
}

/* Writes and reads on non-blocking fds wait for room/data, never tear. */
struct feeder {
  int fd;
  size_t n;
};
static void *drain(void *arg) {
  struct feeder *f = arg;
  char buf[8192];
  size_t got = 0;
  while (got < f->n) {
    ssize_t r = read(f->fd, buf, sizeof buf);
    if (r <= 0) break;
    got += (size_t)r;
  }
  f->n = got;
  return NULL;
}
static void *feed(void *arg) {
  struct feeder *f = arg;
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL); /* let the reader reach EAGAIN first (not required) */
  char *buf = calloc(1, f->n);
  f->n = bl__write_full(f->fd, buf, f->n) == 0 ? f->n : 0;
  free(buf);
  return NULL;
}

Test(cov_misc, full_io_on_nonblocking_fds) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  cr_assert_eq(bl__set_nonblock(p[1], 1), 0);
  /* More than a pipe holds: the writer sees EAGAIN and polls. */
  size_t big = 1 << 20;
  struct feeder d = {p[0], big};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, drain, &d), 0);
  char *buf = calloc(1, big);
  cr_expect_eq(bl__write_full(p[1], buf, big), 0);
  free(buf);
  pthread_join(th, NULL);
  cr_expect_eq(d.n, big);
  /* The reader side: data arrives after EAGAIN. */
  cr_assert_eq(bl__set_nonblock(p[0], 1), 0);
  struct feeder w = {p[1], 100000};
  cr_assert_eq(pthread_create(&th, NULL, feed, &w), 0);
  char *in = malloc(100000);
  cr_expect_eq(bl__read_full(p[0], in, 100000), 0);
  free(in);
  pthread_join(th, NULL);
  cr_expect_eq(w.n, 100000);
  /* Errors: a closed peer, a bad fd. */
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  cr_expect_eq(bl__write_full(p[1], "x", 1), -EPIPE);
  close(p[1]);
  char c;
  cr_expect_eq(bl__read_full(p[1], &c, 1), -EBADF);
  cr_expect_eq(bl__set_nonblock(p[1], 1), -EBADF);
  cr_expect_eq(bl__poll_fd(p[1], POLLIN, 10), 1, "POLLNVAL counts as ready");
  int fd = -1;
  bl__close(&fd);
  bl__close(NULL);
  int q[2];
  cr_assert_eq(bl__pipe(q), 0);
  bl__grow_pipe(q[1], 1 << 30); /* above the cap: falls back to 1 MiB */
  cr_expect_geq(fcntl(q[1], F_GETPIPE_SZ), 65536);
  bl__close(&q[0]);
  bl__close(&q[1]);
  cr_expect_eq(q[0], -1);
}

static void on_alarm(int sig) { (void)sig; }

Test(cov_misc, poll_restarts_after_a_signal_with_the_time_left) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 0}, {0, 20000}};
  setitimer(ITIMER_REAL, &it, NULL);
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl__poll_fd(p[0], POLLIN, 200), 0);
  cr_expect_geq(t_now_ms() - t0, 150, "the interrupted wait went on");
  cr_expect_eq(bl__poll_fd(p[0], POLLIN, 0), 0);
  close(p[0]);
  close(p[1]);
}

Test(cov_misc, wire_rejects_bad_arguments) {
  uint8_t h[BL__WIRE_HDR_MAX];
  uint64_t len = 0;
  cr_expect_eq(bl__wire_decode_header(NULL, 4, 100, &len), BL_EPROTOCOL);
  size_t n = bl__wire_encode_header(h, 10);
  cr_expect_eq(bl__wire_decode_header(h, n, 100, NULL), BL_EPROTOCOL);
  cr_expect_eq(bl__wire_decode_header(h, 2, 100, &len), BL_EPROTOCOL);
  cr_expect_eq(bl__wire_decode_header(h, n, 9, &len), BL_EPROTOCOL, "over max");
  uint8_t frame[32] = {0};
  n = bl__wire_encode_header(frame, 3);
  memcpy(frame + n, "abc", 3);
  /* payload and len are optional outputs. */
  cr_expect_eq(bl__wire_parse(frame, n + 3, 100, NULL, NULL), (long long)n + 3);
  cr_expect_eq(bl__wire_parse(frame, n + 2, 100, NULL, NULL), 0, "incomplete");
  n = bl__wire_encode_header(h, (uint64_t)BL__WIRE_SHORT_MAX + 1);
  cr_expect_eq(n, BL__WIRE_HDR_LONG);
  cr_expect_eq(bl__wire_parse(h, 6, UINT64_MAX, NULL, NULL), 0, "long header cut");
}

Test(cov_misc, time_limit_and_restart_boundaries) {
  cr_expect_eq(bl__tl_timeout_ms(BL__TL_NEVER, 0, 7), 7);
  cr_expect_eq(bl__tl_timeout_ms(10, 20, 7), 0);
  /* A 30-day hard limit (uint32 ms allow 49) does not fit an int. */
  uint64_t month = 30ull * 86400 * 1000 * BL__NS_PER_MS;
  cr_expect_eq(bl__tl_timeout_ms(month, 0, -1), 0x7fffffff, "clamped");
  cr_expect_eq(bl__tl_timeout_ms(5 * BL__NS_PER_MS, 0, -1), 5);
  bl__restart_t st;
  bl__restart_init(&st, 2, 1000);
  const uint64_t T0 = 10;
  cr_expect_eq(bl__restart_step(&st, T0), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 1), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 2), BL_ERESTARTFREQ, "r == max_r");
  char msg[64];
  bl__restart_message(&st, 3, msg, sizeof msg);
  cr_expect_str_eq(msg, "3 in 1e-06s");
  bl__restart_init(&st, 0, 1000);
  cr_expect_eq(bl__restart_step(&st, T0), 0, "max_r 0: never trips");
}

Test(cov_misc, logger_levels_names_and_truncation) {
  cr_expect_str_eq(bl_log_level_name(BL_LOG_NOTSET), "NOTSET");
  cr_expect_str_eq(bl_log_level_name(BL_LOG_SUBDEBUG), "SUBDEBUG");
  cr_expect_str_eq(bl_log_level_name(BL_LOG_ERROR), "ERROR");
  cr_expect_str_eq(bl_log_level_name(BL_LOG_CRITICAL), "CRITICAL");
  cr_expect_str_eq(bl_log_level_name(17), "Level 17");
  cr_expect_eq(bl_log_set_level(-1), -EINVAL);
  cr_expect_eq(bl_log_set_level(BL_LOG_ERROR), 0);
  cr_expect_eq(bl_log_get_level(), BL_LOG_ERROR);
  cr_expect_eq(bl_log_effective_level(), BL_LOG_ERROR);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  cr_assert_eq(bl_log_to_fd(p[1], BL_LOG_NOTSET), 0);
  cr_expect_eq(bl_log_get_level(), BL_LOG_ERROR, "NOTSET keeps the level");
  cr_expect_eq(bl_log(BL_LOG_WARNING, "filtered"), 0);
  char *big = malloc(6000);
  memset(big, 'a', 5999);
  big[5999] = 0;
  cr_expect_eq(bl_log(BL_LOG_ERROR, "%s", big), 1);
  free(big);
  char buf[8192];
  ssize_t n = read(p[0], buf, sizeof buf);
  cr_expect_eq(n, 4095, "4 KiB record, truncated, newline kept");
  cr_expect_eq(buf[n - 1], '\n');
  cr_expect_eq(bl_log_to_fd(-1, BL_LOG_NOTSET), 0);
  cr_expect_eq(bl_log(BL_LOG_CRITICAL, "no handler"), 0);
  cr_expect_eq(bl_log_set_level(BL_LOG_NOTSET), 0);
  cr_expect_eq(bl_log_effective_level(), BL_LOG_WARNING);
  close(p[0]);
  close(p[1]);
  cr_expect_geq(bl_cpu_count(), 1);
}

Test(cov_misc, debug_validate_prints_the_failed_check) {
  int saved = bl__debug_validate; /* BL_DEBUG_VALIDATE=1 at load sets it */
  bl__debug_validate = 1;
  cr_expect_eq(bl_error_info_set(NULL, 1, NULL, NULL, NULL), -EINVAL);
  bl__debug_validate = saved;
}

/* What a debug build does when a NEVER()/ALWAYS() belief is wrong. */
Test(cov_misc, a_wrong_never_aborts, .signal = SIGABRT) {
  bl__never_failed(__FILE__, __LINE__, "a wrong belief");
}
