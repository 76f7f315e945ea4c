/* driver.c: driver process mechanics (spawn, pipes, poll, reap). */
#include "driver.h"

#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

volatile pid_t bc_driver_live_pgid;

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

int bc_driver_start(bc_driver_t **out, char *const argv[], char *const env[], char **err) {
  int in[2], outp[2], errp[2];
  *out = NULL;
  if (pipe2(in, O_CLOEXEC) < 0) goto fail0;
  if (pipe2(outp, O_CLOEXEC) < 0) goto fail1;
  if (pipe2(errp, O_CLOEXEC) < 0) goto fail2;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) goto fail3;
  if (pid == 0) {
    /* Child: own process group, pipes on 0/1/2, default signals, exec. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], 0);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < 32; s++)
      if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    for (char *const *e = env; e && *e; e++) putenv(*e);
    execvp(argv[0], argv);
    dprintf(2, "billiard-conform: cannot exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  /* Both sides set the group: whichever runs first wins the race. */
  setpgid(pid, pid);
  close(in[0]);
  close(outp[1]);
  close(errp[1]);
  bc_driver_t *d = bc_xcalloc(1, sizeof *d);
  d->pid = pid;
  bc_driver_live_pgid = pid;
  d->pidfd = pidfd_open_(pid);
  d->in_fd = in[1];
  d->out_fd = outp[0];
  d->err_fd = errp[0];
  fcntl(d->in_fd, F_SETFL, O_NONBLOCK);
  fcntl(d->out_fd, F_SETFL, O_NONBLOCK);
  fcntl(d->err_fd, F_SETFL, O_NONBLOCK);
  *out = d;
  return 0;
fail3:
  close(errp[0]);
  close(errp[1]);
fail2:
  close(outp[0]);
  close(outp[1]);
fail1:
  close(in[0]);
  close(in[1]);
fail0:;
  int e = errno;
  *err = bc_asprintf("cannot start driver: %s", strerror(e));
  return -e;
}

void bc_driver_send(bc_driver_t *d, const char *line) {
  if (d->in_fd < 0) return;
  bc_buf_puts(&d->outq, line);
  bc_buf_add(&d->outq, "\n", 1);
}

static void flush_in(bc_driver_t *d) {
  while (d->in_fd >= 0 && d->outq_off < d->outq.len) {
    ssize_t w = write(d->in_fd, d->outq.s + d->outq_off, d->outq.len - d->outq_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;
    if (w < 0) { /* EPIPE: the driver stopped reading; the runner sees EOF */
      close_fd(&d->in_fd);
      break;
    }
    d->outq_off += (size_t)w;
  }
  if (d->outq_off == d->outq.len) {
    d->outq.len = 0;
    d->outq_off = 0;
  }
}

static void ring_add(bc_driver_t *d, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) d->ring[(d->ring_total + i) % BC_STDERR_RING] = p[i];
  d->ring_total += n;
}

static void read_out(bc_driver_t *d) {
  char buf[65536];
  for (;;) {
    ssize_t r = read(d->out_fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return; /* EAGAIN */
    if (r == 0) {
      d->out_eof = true;
      if (d->partial.len) bc_strv_push_owned(&d->lines, bc_buf_steal(&d->partial));
      close_fd(&d->out_fd);
      return;
    }
    const char *p = buf, *end = buf + r;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl) {
        bc_buf_add(&d->partial, p, (size_t)(end - p));
        break;
      }
      bc_buf_add(&d->partial, p, (size_t)(nl - p));
      bc_strv_push_owned(&d->lines, bc_buf_steal(&d->partial));
      p = nl + 1;
    }
  }
}

static void read_err(bc_driver_t *d) {
  char buf[8192];
  for (;;) {
    ssize_t r = read(d->err_fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return;
    if (r == 0) {
      close_fd(&d->err_fd);
      return;
    }
    ring_add(d, buf, (size_t)r);
  }
}

bool bc_driver_reap(bc_driver_t *d) {
  if (d->exited) return true;
  int st;
  pid_t r;
  do r = waitpid(d->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == d->pid) {
    d->exited = true;
    d->status = st;
    close_fd(&d->pidfd);
  }
  return d->exited;
}

int bc_driver_pump(bc_driver_t *d, int timeout_ms) {
  struct pollfd p[4];
  int n = 0, io = -1, oo = -1, eo = -1, po = -1;
  if (d->out_fd >= 0) p[oo = n++] = (struct pollfd){d->out_fd, POLLIN, 0};
  if (d->err_fd >= 0) p[eo = n++] = (struct pollfd){d->err_fd, POLLIN, 0};
  if (d->in_fd >= 0 && d->outq.len > d->outq_off) p[io = n++] = (struct pollfd){d->in_fd, POLLOUT, 0};
  if (d->pidfd >= 0 && !d->exited) p[po = n++] = (struct pollfd){d->pidfd, POLLIN, 0};
  /* Without a pidfd, poll in short slices so an exit is noticed. */
  if (d->pidfd < 0 && !d->exited && (timeout_ms < 0 || timeout_ms > 50)) timeout_ms = 50;
  if (timeout_ms < 0) timeout_ms = -1;
  int r = poll(p, (nfds_t)n, timeout_ms);
  if (r < 0) return errno == EINTR ? 0 : -errno;
  if (oo >= 0 && p[oo].revents) read_out(d);
  if (eo >= 0 && p[eo].revents) read_err(d);
  if (io >= 0 && p[io].revents) flush_in(d);
  if (po >= 0 && p[po].revents) bc_driver_reap(d);
  if (d->pidfd < 0) bc_driver_reap(d);
  /* Opportunistic write: most commands fit the pipe at once. */
  if (d->in_fd >= 0 && d->outq.len > d->outq_off) flush_in(d);
  return 0;
}

char *bc_driver_take_line(bc_driver_t *d) {
  if (d->lines_head >= d->lines.n) return NULL;
  char *l = d->lines.v[d->lines_head];
  d->lines.v[d->lines_head++] = NULL;
  if (d->lines_head == d->lines.n) {
    d->lines.n = 0;
    d->lines_head = 0;
  }
  return l;
}

void bc_driver_close_stdin(bc_driver_t *d) {
  flush_in(d);
  close_fd(&d->in_fd);
}

void bc_driver_signal_group(bc_driver_t *d, int sig) {
  /* The group id is the driver's pid; it names only processes we started. */
  if (d->pid > 0) kill(-d->pid, sig);
}

char *bc_driver_stderr_tail(const bc_driver_t *d, int max_lines) {
  size_t n = d->ring_total < BC_STDERR_RING ? d->ring_total : BC_STDERR_RING;
  size_t start = d->ring_total - n;
  char *s = bc_xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) s[i] = d->ring[(start + i) % BC_STDERR_RING];
  s[n] = '\0';
  /* Keep the last max_lines lines. */
  size_t len = n;
  while (len && s[len - 1] == '\n') s[--len] = '\0';
  int lines = 0;
  size_t i = len;
  while (i > 0) {
    if (s[i - 1] == '\n' && ++lines >= max_lines) break;
    i--;
  }
  char *r = bc_xstrdup(s + i);
  free(s);
  return r;
}

char *bc_driver_status_str(int st) {
  if (WIFEXITED(st)) return bc_asprintf("exited with status %d", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    return bc_asprintf("killed by signal %d (%s)", sig, bc_signal_name(sig));
  }
  return bc_asprintf("ended with wait status %d", st);
}

void bc_driver_free(bc_driver_t **dp) {
  bc_driver_t *d = *dp;
  if (!d) return;
  if (!bc_driver_reap(d)) {
    bc_driver_signal_group(d, SIGKILL);
    int st = 0;
    while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR) {
    }
    d->exited = true;
    d->status = st;
  }
  bc_driver_live_pgid = 0;
  close_fd(&d->in_fd);
  close_fd(&d->out_fd);
  close_fd(&d->err_fd);
  close_fd(&d->pidfd);
  bc_buf_free(&d->outq);
  bc_buf_free(&d->partial);
  for (size_t i = d->lines_head; i < d->lines.n; i++) free(d->lines.v[i]);
  d->lines.n = 0;
  bc_strv_free(&d->lines);
  free(d);
  *dp = NULL;
}
