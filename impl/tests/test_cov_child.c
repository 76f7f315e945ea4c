/* test_cov_child.c: child.c paths the other suites do not reach: the
 * death-pipe fallback used where pidfds are missing (kernel < 5.3,
 * valgrind), forced with the child/pidfd/probe point, and pidfd errors. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "pool_tasks.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

/* Each Criterion test runs in a fresh process, so the pidfd probe (cached
 * after the first call) sees the point armed here. */
static void fallback(void) {
#ifdef FIU_ENABLE
  fiu_init(0);
  fiu_enable("child/pidfd/probe", 1, (void *)(intptr_t)ENOSYS, FIU_ONETIME);
#endif
  t_register_pool_tasks();
}
static void plain(void) { t_register_pool_tasks(); }

TestSuite(cov_child_fb, .init = fallback, .timeout = 60);
TestSuite(cov_child, .init = plain, .timeout = 60);

#ifdef FIU_ENABLE
#define NEED_FI() ((void)0)
#else
#define NEED_FI() cr_skip_test("fault points need -Dfault_injection=true")
#endif

/* A child that blocks until gate's write end closes, then exits 3. */
static pid_t gated_child(int gate[2], int pdeathsig) {
  pid_t pid = bl__fork(pdeathsig);
  if (pid == 0) {
    char c;
    close(gate[1]);
    ssize_t n;
    do n = read(gate[0], &c, 1);
    while (n < 0 && errno == EINTR);
    bl__child_exit(3);
  }
  return pid;
}

static int reap(pid_t pid) {
  int st = 0;
  if (bl__waitpid(pid, &st, 0) != pid) return -1000;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

Test(cov_child_fb, pidfd_is_a_death_pipe_and_signals_until_exit) {
  NEED_FI();
  int fds = t_count_fds();
  cr_assert_eq(bl__have_pidfd(), 0);
  int gate[2];
  cr_assert_eq(bl__pipe(gate), 0);
  pid_t pid = gated_child(gate, SIGKILL);
  cr_assert_gt(pid, 0);
  int pfd = bl__pidfd_open(pid);
  cr_assert_geq(pfd, 0);
  cr_expect(fcntl(pfd, F_GETFD) & FD_CLOEXEC);
  cr_expect_eq(bl__poll_fd(pfd, POLLIN, 0), 0, "not readable while alive");
  /* Signal 0 probes: the child is found by the pipe's inode. */
  cr_expect_eq(bl__pidfd_signal(pfd, 0), 0);
  cr_expect_eq(bl__pidfd_signal(pfd, SIGKILL), 0);
  cr_expect_eq(bl__poll_fd(pfd, POLLIN, 10000), 1, "readable once it died");
  /* Exited but not reaped yet: never signalled again (pid may recycle). */
  cr_expect_eq(bl__pidfd_signal(pfd, SIGTERM), -ESRCH);
  cr_expect_eq(reap(pid), -SIGKILL);
  /* Reaped: the table entry is gone, so no new pidfd for that pid. */
  cr_expect_eq(bl__pidfd_open(pid), -ESRCH);
  cr_expect_eq(bl__pidfd_signal(pfd, SIGTERM), -ESRCH);
  close(pfd);
  close(gate[0]);
  close(gate[1]);
  cr_expect_eq(t_count_fds(), fds, "death pipes released");
}

Test(cov_child_fb, normal_exit_and_table_growth) {
  NEED_FI();
  int fds = t_count_fds();
  enum { N = 20 }; /* beyond the table's first 16 slots */
  int gate[2];
  cr_assert_eq(bl__pipe(gate), 0);
  pid_t pids[N];
  int pfds[N];
  for (int i = 0; i < N; i++) {
    pids[i] = gated_child(gate, 0);
    cr_assert_gt(pids[i], 0);
    pfds[i] = bl__pidfd_open(pids[i]);
    cr_assert_geq(pfds[i], 0);
  }
  close(gate[1]); /* every child now reads EOF and exits 3 */
  for (int i = 0; i < N; i++) {
    cr_expect_eq(bl__poll_fd(pfds[i], POLLIN, 10000), 1);
    close(pfds[i]);
  }
  /* Reap half with bl__waitpid, the other half by hand + forget. */
  for (int i = 0; i < N; i++) {
    if (i % 2) {
      cr_expect_eq(reap(pids[i]), 3);
    } else {
      int st;
      cr_expect_eq(waitpid(pids[i], &st, 0), pids[i]);
      cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 3);
      bl__child_forget(pids[i]);
    }
  }
  bl__child_forget(pids[0]); /* unknown by now: no-op */
  close(gate[0]);
  cr_expect_eq(t_count_fds(), fds);
}

Test(cov_child_fb, signal_refuses_unknown_fds) {
  NEED_FI();
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  /* A pipe that is no child's death pipe, and a closed fd. */
  cr_expect_eq(bl__pidfd_signal(p[0], SIGTERM), -ESRCH);
  close(p[0]);
  close(p[1]);
  cr_expect_eq(bl__pidfd_signal(p[0], SIGTERM), -EBADF);
  cr_expect_eq(bl__pidfd_open(getpid()), -ESRCH, "not our child");
}

Test(cov_child_fb, grandchild_table_starts_empty) {
  NEED_FI();
  int gate[2];
  cr_assert_eq(bl__pipe(gate), 0);
  pid_t sib = gated_child(gate, SIGKILL);
  cr_assert_gt(sib, 0);
  pid_t pid = bl__fork(SIGKILL);
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    /* The parent's entries are not this child's children; its own fork
     * (the fork mutex started free here) gets a fresh entry. */
    int bad = bl__pidfd_open(sib) != -ESRCH;
    pid_t g = bl__fork(SIGKILL);
    if (g == 0) bl__child_exit(5);
    int gfd = g > 0 ? bl__pidfd_open(g) : -1;
    bad |= gfd < 0 || bl__poll_fd(gfd, POLLIN, 10000) != 1 || reap(g) != 5;
    if (gfd >= 0) close(gfd);
    bl__child_exit(bad);
  }
  cr_expect_eq(reap(pid), 0);
  close(gate[1]);
  cr_expect_eq(reap(sib), 3);
  close(gate[0]);
}

/* Whole objects on the fallback: a Process and a pool, with a lost worker. */
Test(cov_child_fb, process_and_pool_run_on_death_pipes) {
  NEED_FI();
  cr_assert_eq(bl__have_pidfd(), 0);
  int fds = t_count_fds();
  bl_pool_t *p = t_pool(2, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  int rc;
  cr_assert_eq(t_apply_int(p, "square", 6, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 36);
  bl_result_free(&r);
  /* A worker dies mid-job: its job fails, a replacement takes over. */
  cr_assert_eq(t_apply_int(p, "die", SIGKILL, NULL, &r), 0);
  cr_expect_eq(bl_result_wait(r, 20000), 0);
  cr_expect_eq(bl_result_get(r, 0, NULL, NULL, NULL), BL_EWORKERLOST);
  bl_result_free(&r);
  cr_assert_eq(t_apply_int(p, "square", 7, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 49);
  bl_result_free(&r);
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 20000), 0);
  bl_pool_free(&p);
  cr_expect_eq(t_count_fds(), fds);
}

Test(cov_child, pidfd_errors) {
  if (!bl__have_pidfd()) cr_skip_test("no pidfds here (valgrind)");
  /* Our own pid is no child; an exited-and-reaped pid has no process. */
  pid_t pid = bl__fork(SIGKILL);
  cr_assert_geq(pid, 0);
  if (pid == 0) bl__child_exit(0);
  cr_expect_eq(reap(pid), 0);
  int fd = bl__pidfd_open(pid);
  cr_expect(fd == -ESRCH || fd >= 0, "reaped: ESRCH unless the pid recycled");
  if (fd >= 0) close(fd);
  cr_expect_eq(bl__pidfd_open(-1), -EINVAL);
  cr_expect_eq(bl__pidfd_signal(-1, SIGTERM), -EBADF);
  cr_expect_eq(bl__waitpid(-1, NULL, WNOHANG), -ECHILD);
}
