/* child.c: the one fork helper, the one way out of a child, and pidfds.
 *
 * Every process libbilliard creates comes from bl__fork() and leaves via
 * bl__child_exit(), so coverage counters, stdio buffers and parent-death
 * signals are handled in one place. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "internal.h"

#ifdef BL_COVERAGE
/* gcc writes counters only at exit(); children leave with _exit(). */
extern void __gcov_reset(void);
extern void __gcov_dump(void);
#endif

static int in_child;

int bl__in_child(void) { return in_child; }

/* Kernels >= 5.3 have pidfds, but valgrind 3.19 does not know the two
 * syscalls and fails them with ENOSYS. Under it (and on old kernels) each
 * child gets a "death pipe" instead: the child holds the write end for its
 * whole life, so the read end reaches EOF (POLLIN|POLLHUP) exactly when the
 * child exits, which is the same readiness a pidfd shows. The table maps a
 * pid to its read end; bl__pidfd_open() hands out dups of it. */
static int have_pidfd = -1; /* -1 unknown, 0 no, 1 yes */
static pthread_mutex_t dp_mu = PTHREAD_MUTEX_INITIALIZER;
/* Recursive: a pthread_atfork parent handler may fork again inside the
 * window (same thread); only other threads must wait. */
static pthread_mutex_t fork_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
struct deathpipe {
  pid_t pid;
  int rfd;
};
static struct deathpipe *dps;
static size_t ndps, capdps;
/* In a bl__fork child under the fallback: its own death pipe's write end,
 * which a spawn child must carry across its exec (bl__child_deathpipe). */
static int own_dp = -1;

static int pidfd_supported(void) {
  if (have_pidfd < 0) {
    /* The probe point simulates a kernel (or valgrind) without pidfds, so
     * tests can run the death-pipe fallback. */
    long fd = BL_FAULT("child/pidfd/probe", ENOSYS);
    if (fd == 0)
      fd = syscall(SYS_pidfd_open, getpid(), 0);
    else
      errno = (int)-fd;
    have_pidfd = fd >= 0 || errno != ENOSYS;
    if (fd >= 0) close((int)fd);
  }
  return have_pidfd;
}

static void dp_remove_locked(size_t i) {
  close(dps[i].rfd);
  dps[i] = dps[--ndps];
}

static void dp_add(pid_t pid, int rfd) {
  pthread_mutex_lock(&dp_mu);
  for (size_t i = 0; i < ndps; i++)
    if (dps[i].pid == pid) { /* a recycled pid: the old entry is stale */
      dp_remove_locked(i);
      break;
    }
  if (ndps == capdps) {
    size_t ncap = capdps ? capdps * 2 : 16;
    struct deathpipe *n = realloc(dps, ncap * sizeof *n);
    if (!n) { /* lose exit detection for this child, not the process */
      close(rfd);
      pthread_mutex_unlock(&dp_mu);
      return;
    }
    dps = n;
    capdps = ncap;
  }
  dps[ndps++] = (struct deathpipe){pid, rfd};
  pthread_mutex_unlock(&dp_mu);
}

void bl__child_forget(pid_t pid) {
  pthread_mutex_lock(&dp_mu);
  for (size_t i = 0; i < ndps; i++)
    if (dps[i].pid == pid) {
      dp_remove_locked(i);
      break;
    }
  pthread_mutex_unlock(&dp_mu);
}

pid_t bl__waitpid(pid_t pid, int *status, int flags) {
  pid_t r;
  do r = waitpid(pid, status, flags);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (r > 0) bl__child_forget(r);
  return r;
}

pid_t bl__fork(int pdeathsig) {
  int rc = BL_FAULT("child/fork/fork", EAGAIN);
  if (rc) return rc;
  pid_t parent = getpid();
  int dp[2] = {-1, -1};
  int fallback = !pidfd_supported();
  if (fallback) {
    /* Between pipe2() and the parent's close of the write end, a fork in
     * another thread would copy that write end into an unrelated child and
     * hide this child's death until that one exits: serialise the window. */
    pthread_mutex_lock(&fork_mu);
    if (pipe2(dp, O_CLOEXEC) != 0) {
      int e = errno;
      pthread_mutex_unlock(&fork_mu);
      return -e;
    }
  }
  /* Unflushed stdio would be written twice, once by each process. */
  fflush(NULL);
#ifdef FIU_ENABLE
  bl__fault_fork_prepare(); /* no thread is inside libfiu (fault.h) */
#endif
  pid_t pid = fork();
#ifdef FIU_ENABLE
  int fe = errno;
  if (pid == 0) bl__fault_fork_child();
  else bl__fault_fork_parent();
  errno = fe;
#endif
  if (pid < 0) {
    int e = errno;
    bl__close(&dp[0]);
    bl__close(&dp[1]);
    if (fallback) pthread_mutex_unlock(&fork_mu);
    return -e;
  }
  if (pid > 0) {
    bl__close(&dp[1]);
    if (fallback) pthread_mutex_unlock(&fork_mu);
    if (dp[0] >= 0) dp_add(pid, dp[0]);
    return pid;
  }
#ifdef BL_COVERAGE
  /* First thing: else the parent's counts are dumped twice, and what the
   * child does from here on is counted. */
  __gcov_reset(); /* GCOVR_EXCL_LINE: the counts before it are dropped */
#endif
  in_child = 1;
  if (fallback) {
    pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    fork_mu = fresh; /* the forking thread held it; this copy starts free */
  }
  /* The child keeps dp[1] open until it exits; its parent's table is not
   * its own, so forget inherited entries without closing the fds twice. */
  bl__close(&dp[0]);
  own_dp = dp[1];
  pthread_mutex_init(&dp_mu, NULL);
  for (size_t i = 0; i < ndps; i++) close(dps[i].rfd);
  ndps = 0;
  if (pdeathsig) {
    /* The parent may have died between fork() and prctl(): check after
     * arming, since the signal is only sent for deaths that follow it. */
    if (prctl(PR_SET_PDEATHSIG, pdeathsig) != 0 || getppid() != parent)
      bl__child_exit(0);
  }
  return 0;
}

_Noreturn void bl__child_exit(int code) {
#ifdef BL_COVERAGE
  __gcov_dump(); /* GCOVR_EXCL_LINE: lines after the dump are never counted */
  _exit(code);   /* GCOVR_EXCL_LINE */
#else
  _exit(code);
#endif
}

int bl__pidfd_open(pid_t pid) {
  int rc = BL_FAULT("child/pidfd/open", EMFILE);
  if (rc) return rc;
  if (pidfd_supported()) {
    /* pidfd_open fds are always close-on-exec. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
  }
  int fd = -ESRCH;
  pthread_mutex_lock(&dp_mu);
  for (size_t i = 0; i < ndps; i++)
    if (dps[i].pid == pid) {
      fd = fcntl(dps[i].rfd, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) fd = -errno;
      break;
    }
  pthread_mutex_unlock(&dp_mu);
  return fd;
}

int bl__pidfd_signal(int pidfd, int sig) {
  if (pidfd_supported()) {
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) != 0) return -errno;
    return 0;
  }
  /* Death-pipe fallback: find the pid by the pipe's inode. An exited child
   * (pipe at EOF) is never signalled, so a recycled pid is never hit. */
  struct stat want, st;
  if (fstat(pidfd, &want) != 0) return -errno;
  pid_t pid = 0;
  pthread_mutex_lock(&dp_mu);
  for (size_t i = 0; i < ndps; i++)
    if (fstat(dps[i].rfd, &st) == 0 && st.st_ino == want.st_ino &&
        st.st_dev == want.st_dev) {
      pid = dps[i].pid;
      break;
    }
  pthread_mutex_unlock(&dp_mu);
  if (pid <= 0 || bl__poll_fd(pidfd, POLLIN, 0) != 0) return -ESRCH;
  return kill(pid, sig) == 0 ? 0 : -errno;
}

int bl__have_pidfd(void) { return pidfd_supported(); }

int bl__child_deathpipe(void) { return in_child ? own_dp : -1; }

#ifdef FIU_ENABLE
void bl__fault_crash(void *failinfo) {
  int sig = failinfo ? (int)(intptr_t)failinfo : SIGKILL;
  bl__coverage_flush(); /* the signal leaves no exit() to write counters */
  raise(sig);
  _exit(128 + sig); /* a caught or ignored signal still ends the process */
}
#endif

#ifdef BL_COVERAGE
/* Only the branch taken matters to gcov; the store keeps the call alive. */
volatile int bl__testcase_sink;
void bl__testcase_hit(int line) { bl__testcase_sink = line; }
#endif
