/* test_child.c: bl__fork, bl__child_exit, pidfds, fd helpers. */
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

Test(child, fork_and_exit_code) {
  pid_t pid = bl__fork(SIGKILL);
  cr_assert_geq(pid, 0);
  if (pid == 0) bl__child_exit(bl__in_child() ? 7 : 1);
  cr_expect_eq(t_wait_exit(pid), 7);
  cr_expect_eq(bl__in_child(), 0);
}

Test(child, pidfd_signals_and_becomes_readable_on_exit) {
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    pause();
    t_exit(0);
  }
  int pfd = bl__pidfd_open(pid);
  cr_assert_geq(pfd, 0);
  cr_expect(fcntl(pfd, F_GETFD) & FD_CLOEXEC);
  cr_expect_eq(bl__poll_fd(pfd, POLLIN, 0), 0);
  cr_expect_eq(bl__pidfd_signal(pfd, SIGKILL), 0);
  cr_expect_eq(bl__poll_fd(pfd, POLLIN, 10000), 1);
  cr_expect_eq(t_wait_exit(pid), -SIGKILL);
  /* Reaped: the pidfd now refuses to signal anything (no recycled pid). */
  cr_expect_eq(bl__pidfd_signal(pfd, SIGTERM), -ESRCH);
  close(pfd);
}

Test(child, pdeathsig_kills_orphans) {
  int fds[2];
  cr_assert_eq(bl__pipe(fds), 0);
  pid_t mid = t_fork();
  cr_assert_geq(mid, 0);
  if (mid == 0) {
    pid_t gc = bl__fork(SIGKILL);
    if (gc == 0) {
      pause();
      bl__child_exit(0);
    }
    (void)!write(fds[1], &gc, sizeof gc);
    bl__child_exit(0); /* dies; the grandchild must follow */
  }
  close(fds[1]);
  pid_t gc = 0;
  cr_assert_eq(bl__read_full(fds[0], &gc, sizeof gc), 0);
  close(fds[0]);
  cr_expect_eq(t_wait_exit(mid), 0);
  /* The grandchild was reparented; wait for it to vanish. */
  int gone = 0;
  for (int i = 0; i < 2000 && !gone; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)gc);
    FILE *f = fopen(path, "r");
    if (!f) { gone = 1; break; }
    char st = 0;
    if (fscanf(f, "%*d %*s %c", &st) == 1 && (st == 'Z' || st == 'X')) gone = 1;
    fclose(f);
    if (!gone) usleep(5000); /* no event exists for a non-child's death */
  }
  cr_expect(gone, "grandchild %d survived its parent", (int)gc);
}

Test(child, pipes_are_cloexec_and_full_io_roundtrips) {
  int fds[2];
  cr_assert_eq(bl__pipe(fds), 0);
  cr_expect(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
  cr_expect(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
  size_t n = 1 << 20;
  char *buf = malloc(n), *out = malloc(n);
  for (size_t i = 0; i < n; i++) buf[i] = (char)(i * 7);
  bl__grow_pipe(fds[1], 1 << 20);
  pid_t pid = t_fork();
  if (pid == 0) {
    close(fds[0]);
    int rc = bl__write_full(fds[1], buf, n) == 0 ? 0 : 1;
    free(buf); /* valgrind checks the child too */
    free(out);
    t_exit(rc);
  }
  close(fds[1]);
  cr_expect_eq(bl__read_full(fds[0], out, n), 0);
  cr_expect_eq(memcmp(buf, out, n), 0);
  cr_expect_eq(bl__read_full(fds[0], out, 1), BL_EEOF);
  cr_expect_eq(t_wait_exit(pid), 0);
  bl__close(&fds[0]);
  cr_expect_eq(fds[0], -1);
  bl__close(&fds[0]); /* no-op */
  free(buf);
  free(out);
}

Test(child, exit_fd_readable_and_signal_refused_after_exit) {
  /* Exercises whichever of pidfd / death pipe this process uses. */
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) t_exit(3);
  int pfd = bl__pidfd_open(pid);
  cr_assert_geq(pfd, 0, "%s", bl_strerror(pfd));
  cr_expect_eq(bl__poll_fd(pfd, POLLIN, 10000), 1);
  cr_expect_eq(t_wait_exit(pid), 3);
  cr_expect_eq(bl__pidfd_signal(pfd, SIGKILL), -ESRCH);
  close(pfd);
  cr_expect_eq(bl__waitpid(pid, NULL, WNOHANG), -ECHILD);
}

Test(child, torn_read_is_protocol_error) {
  int fds[2];
  cr_assert_eq(bl__socketpair(fds), 0);
  cr_expect(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
  cr_assert_eq(bl__write_full(fds[1], "abc", 3), 0);
  close(fds[1]);
  char b[8];
  cr_expect_eq(bl__read_full(fds[0], b, 8), BL_EPROTOCOL);
  close(fds[0]);
}

Test(child, write_to_closed_reader_is_epipe) {
  int fds[2];
  cr_assert_eq(bl__pipe(fds), 0);
  close(fds[0]);
  signal(SIGPIPE, SIG_IGN);
  cr_expect_eq(bl__write_full(fds[1], "x", 1), -EPIPE);
  close(fds[1]);
}

Test(child, poll_timeout_and_nonblock) {
  int fds[2];
  cr_assert_eq(bl__pipe(fds), 0);
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl__poll_fd(fds[0], POLLIN, 50), 0);
  cr_expect_geq(t_now_ms() - t0, 45);
  cr_expect_eq(bl__set_nonblock(fds[0], 1), 0);
  cr_expect(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
  cr_expect_eq(bl__set_nonblock(fds[0], 0), 0);
  cr_expect(!(fcntl(fds[0], F_GETFL) & O_NONBLOCK));
  cr_expect_eq(bl__set_nonblock(-1, 1), -EBADF);
  close(fds[0]);
  close(fds[1]);
}
