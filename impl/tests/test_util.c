/* test_util.c: logger records and levels, cpu_count, current/parent/
 * active processes, the soft-time-limit handler, the documented no-ops. */
#include <criterion/criterion.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/errors.h>
#include <billiard/process.h>
#include <billiard/task.h>
#include <billiard/util.h>

#include "helpers.h"
#include "internal.h"

/* Read what is in the pipe now (the writer wrote whole records). */
static size_t drain(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap && bl__poll_fd(fd, POLLIN, 0) == 1) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  return n;
}

Test(util, log_without_handler_writes_nothing) {
  cr_expect_eq(bl_log(BL_LOG_CRITICAL, "dropped"), 0);
}

Test(util, log_record_format_and_filtering) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  cr_assert_eq(bl_log_to_fd(p[1], BL_LOG_NOTSET), 0);
  /* NOTSET behaves as WARNING, as Python's root logger. */
  cr_expect_eq(bl_log_get_level(), BL_LOG_NOTSET);
  cr_expect_eq(bl_log_effective_level(), BL_LOG_WARNING);
  cr_expect_eq(bl_log(BL_LOG_INFO, "not shown"), 0);
  cr_expect_eq(bl_log(BL_LOG_WARNING, "careful %d", 7), 1);
  char buf[512];
  drain(p[0], buf, sizeof buf);
  cr_expect_str_eq(buf, "[WARNING/MainProcess] careful 7\n");

  cr_assert_eq(bl_log_to_fd(p[1], BL_LOG_DEBUG), 0);
  cr_expect_eq(bl_log(BL_LOG_SUBDEBUG, "below"), 0);
  cr_expect_eq(bl_log(BL_LOG_DEBUG, "a"), 1);
  cr_expect_eq(bl_log(BL_LOG_CRITICAL, "b"), 1);
  cr_expect_eq(bl_log(42, "c"), 1);
  drain(p[0], buf, sizeof buf);
  cr_expect_str_eq(buf, "[DEBUG/MainProcess] a\n[CRITICAL/MainProcess] b\n"
                        "[Level 42/MainProcess] c\n");
  cr_expect_eq(bl_log_to_fd(p[1], -5), -EINVAL);
  cr_expect_eq(bl_log_set_level(-1), -EINVAL);
  cr_expect_eq(bl_log_to_fd(-1, BL_LOG_NOTSET), 0); /* removes the handler */
  cr_expect_eq(bl_log(BL_LOG_CRITICAL, "gone"), 0);
  close(p[0]);
  close(p[1]);
}

Test(util, log_long_record_is_truncated_to_one_line) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  bl__grow_pipe(p[1], 65536);
  cr_assert_eq(bl_log_to_fd(p[1], BL_LOG_INFO), 0);
  char *big = malloc(10000);
  memset(big, 'x', 9999);
  big[9999] = 0;
  cr_expect_eq(bl_log(BL_LOG_INFO, "%s", big), 1);
  char *buf = malloc(20000);
  size_t n = drain(p[0], buf, 20000);
  cr_expect_eq(n, 4095);
  cr_expect_eq(buf[n - 1], '\n');
  cr_expect_eq(strncmp(buf, "[INFO/MainProcess] xxx", 22), 0);
  free(buf);
  free(big);
  bl_log_to_fd(-1, BL_LOG_NOTSET);
  close(p[0]);
  close(p[1]);
}

Test(util, level_names) {
  cr_expect_str_eq(bl_log_level_name(BL_LOG_INFO), "INFO");
  cr_expect_str_eq(bl_log_level_name(BL_LOG_SUBWARNING), "SUBWARNING");
  cr_expect_str_eq(bl_log_level_name(3), "Level 3");
}

Test(util, cpu_count_matches_affinity) {
  cpu_set_t set;
  cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
  cr_expect_eq(bl_cpu_count(), CPU_COUNT(&set));
  cr_expect_geq(bl_cpu_count(), 1);
}

Test(util, main_process_identity) {
  bl_process_info_t me;
  cr_assert_eq(bl_current_process(&me), 0);
  cr_expect_str_eq(me.name, "MainProcess");
  cr_expect_eq(me.pid, getpid());
  pid_t pp = 123;
  cr_expect_eq(bl_parent_process(&pp), 0);
  cr_expect_eq(pp, 0);
  cr_expect_eq(bl_current_process(NULL), -EINVAL);
}

/* A child reports its name and parent: bytes 0..3 = 0 if the name is as
 * expected, and the parent pid must equal the one sent in arg. */
static int t_identity(const void *arg, size_t len) {
  pid_t want_parent;
  if (len != sizeof want_parent) return 10;
  memcpy(&want_parent, arg, sizeof want_parent);
  bl_process_info_t me;
  if (bl_current_process(&me) || strcmp(me.name, "util-child") != 0) return 11;
  if (me.pid != getpid()) return 12;
  pid_t pp = 0;
  if (bl_parent_process(&pp) != 1 || pp != want_parent) return 13;
  return 0;
}

/* Waits until its pipe (fds {read, write} in arg) is at EOF; closes its
 * inherited copy of the write end first. */
static int t_wait_fd(const void *arg, size_t len) {
  int fd[2];
  if (len != sizeof fd) return 10;
  memcpy(fd, arg, sizeof fd);
  close(fd[1]);
  return bl__poll_fd(fd[0], POLLIN, 60000) == 1 ? 0 : 11;
}

__attribute__((constructor)) static void reg(void) {
  bl_register_target("util/identity", t_identity);
  bl_register_target("util/wait_fd", t_wait_fd);
}

Test(util, child_identity_and_parent) {
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.name = "util-child";
  pid_t me = getpid();
  bl_process_t *p = NULL;
  cr_assert_eq(bl_process_new(&p, "util/identity", &me, sizeof me, &o), 0);
  cr_assert_eq(bl_process_start(p), 0);
  cr_assert_eq(bl_process_join(p, 30000), 0);
  int code = -1;
  cr_assert_eq(bl_process_exitcode(p, &code), 0);
  cr_expect_eq(code, 0, "child identity check failed with %d", code);
  bl_process_free(&p);
}

static int find_pid(const bl_process_info_t *v, size_t n, pid_t pid) {
  for (size_t i = 0; i < n; i++)
    if (v[i].pid == pid) return 1;
  return 0;
}

Test(util, active_children_lists_live_and_reaps_exited) {
  int gate[2];
  cr_assert_eq(bl__pipe(gate), 0);
  bl_process_t *a = NULL, *b = NULL;
  cr_assert_eq(bl_process_new(&a, "util/wait_fd", gate, sizeof gate, NULL), 0);
  cr_assert_eq(bl_process_new(&b, "util/wait_fd", gate, sizeof gate, NULL), 0);
  cr_assert_eq(bl_process_start(a), 0);
  cr_assert_eq(bl_process_start(b), 0);

  bl_process_info_t v[8];
  size_t n = 0;
  cr_assert_eq(bl_active_children(v, 8, &n), 0);
  cr_expect_eq(n, 2);
  cr_expect(find_pid(v, n, bl_process_pid(a)) && find_pid(v, n, bl_process_pid(b)));
  cr_expect(strncmp(v[0].name, "Process-", 8) == 0);
  /* A short array still reports the total. */
  cr_assert_eq(bl_active_children(v, 1, &n), 0);
  cr_expect_eq(n, 2);

  /* Release both; wait for their exit on the sentinels (not by join), then
   * active_children reaps them and they disappear from the list. */
  close(gate[1]);
  cr_assert_eq(bl__poll_fd(bl_process_sentinel(a), POLLIN, 30000), 1);
  cr_assert_eq(bl__poll_fd(bl_process_sentinel(b), POLLIN, 30000), 1);
  /* Under valgrind the sentinel is a death pipe, which reaches EOF a
   * moment before the child becomes waitable, and active_children reaps
   * without blocking: allow that moment. */
  uint64_t until = t_now_ms() + 30000;
  while (bl_active_children(v, 8, &n) == 0 && n != 0 && t_now_ms() < until)
    usleep(1000);
  cr_expect_eq(n, 0);
  int code = -1;
  cr_expect_eq(bl_process_exitcode(a, &code), 0);
  cr_expect_eq(code, 0);
  cr_expect_eq(bl_active_children(NULL, 1, &n), -EINVAL);
  bl_process_free(&a);
  bl_process_free(&b);
  close(gate[0]);
}

Test(util, soft_timeout_handler_sets_flag_without_restart) {
  cr_assert_eq(bl_install_soft_timeout_handler(), 0);
  struct sigaction sa;
  cr_assert_eq(sigaction(SIGUSR1, NULL, &sa), 0);
  cr_expect_eq(sa.sa_flags & SA_RESTART, 0);
  cr_expect_eq(bl_soft_timeout_pending(0), 0);
  cr_assert_eq(raise(SIGUSR1), 0); /* would CRASH the test without the handler */
  cr_expect_eq(bl_soft_timeout_pending(0), 1);
  cr_expect_eq(bl_soft_timeout_pending(1), 1); /* read and clear */
  cr_expect_eq(bl_soft_timeout_pending(0), 0);
  signal(SIGUSR1, SIG_DFL);
}

Test(util, soft_timeout_interrupts_blocking_read) {
  cr_assert_eq(bl_install_soft_timeout_handler(), 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  /* A child signals us; our read() must fail with EINTR rather than be
   * restarted (the child never writes, so only the signal ends it). */
  pid_t parent = getpid();
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    for (int i = 0; i < 600; i++) { /* repeat in case it lands before read */
      kill(parent, SIGUSR1);
      usleep(100000);
    }
    t_exit(0);
  }
  char ch;
  ssize_t r = read(p[0], &ch, 1);
  int e = errno;
  kill(c, SIGKILL);
  t_wait_exit(c);
  cr_expect_eq(r, -1);
  cr_expect_eq(e, EINTR);
  cr_expect_eq(bl_soft_timeout_pending(1), 1);
  signal(SIGUSR1, SIG_DFL);
  close(p[0]);
  close(p[1]);
}

Test(util, noops_do_nothing) {
  int before = t_count_fds();
  bl_freeze_support();
  bl_allow_connection_pickling();
  cr_expect_eq(t_count_fds(), before);
}
