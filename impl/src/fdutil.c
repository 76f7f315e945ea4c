/* fdutil.c: EINTR-safe fd helpers. Every fd libbilliard opens is CLOEXEC. */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <billiard/clock.h>

#include "fault.h"
#include "internal.h"

int bl__pipe(int fds[2]) {
  int rc = BL_FAULT("fdutil/pipe/create", EMFILE);
  if (rc) return rc;
  return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int bl__socketpair(int fds[2]) {
  int rc = BL_FAULT("fdutil/socketpair/create", EMFILE);
  if (rc) return rc;
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0
                                                                      : -errno;
}

int bl__set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, fl) == 0 ? 0 : -errno;
}

void bl__close(int *fd) {
  if (!fd || *fd < 0) return;
  int saved = errno;
  close(*fd); /* Linux releases the fd even on EINTR: never retry. */
  *fd = -1;
  errno = saved;
}

int bl__write_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        /* A non-blocking fd: wait for room rather than tear the frame. */
        int r = bl__poll_fd(fd, POLLOUT, -1);
        if (r < 0) return r;
        continue;
      }
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int bl__read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        int r = bl__poll_fd(fd, POLLIN, -1);
        if (r < 0) return r;
        continue;
      }
      return -errno;
    }
    if (n == 0) return got == 0 ? BL_EEOF : BL_EPROTOCOL;
    got += (size_t)n;
  }
  return 0;
}

int bl__poll_fd(int fd, short events, int timeout_ms) {
  uint64_t deadline = 0;
  if (timeout_ms > 0)
    deadline = bl_monotonic_ns() + (uint64_t)timeout_ms * BL__NS_PER_MS;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, timeout_ms);
    if (n > 0) return 1;
    if (n == 0) return 0;
    if (errno != EINTR) return -errno;
    if (timeout_ms > 0) {
      uint64_t now = bl_monotonic_ns();
      if (now >= deadline) return 0;
      /* Round up so a sub-millisecond remainder is still waited for. */
      timeout_ms = (int)((deadline - now + BL__NS_PER_MS - 1) / BL__NS_PER_MS);
    }
  }
}

void bl__grow_pipe(int fd, int want) {
#ifdef F_SETPIPE_SZ
  /* Best effort: unprivileged callers are capped by pipe-max-size. */
  if (fcntl(fd, F_SETPIPE_SZ, want) < 0 && want > 65536)
    (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#else
  (void)fd;
  (void)want;
#endif
}
