/* child.c: the one fork helper, the one way out of a child, and pidfds.
 *
 * Every process libbilliard creates comes from bl__fork() and leaves via
 * bl__child_exit(), so coverage counters, stdio buffers and parent-death
 * signals are handled in one place. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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

pid_t bl__fork(int pdeathsig) {
  int rc = BL_FAULT("child/fork/fork", EAGAIN);
  if (rc) return rc;
  pid_t parent = getpid();
  /* Unflushed stdio would be written twice, once by each process. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid > 0) return pid;
  in_child = 1;
#ifdef BL_COVERAGE
  __gcov_reset(); /* GCOVR_EXCL_LINE: else the parent's counts are dumped twice */
#endif
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
#endif
  _exit(code);
}

int bl__pidfd_open(pid_t pid) {
  int rc = BL_FAULT("child/pidfd/open", EMFILE);
  if (rc) return rc;
  /* pidfd_open fds are always close-on-exec. */
  long fd = syscall(SYS_pidfd_open, pid, 0);
  return fd < 0 ? -errno : (int)fd;
}

int bl__pidfd_signal(int pidfd, int sig) {
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) != 0) return -errno;
  return 0;
}

#ifdef FIU_ENABLE
void bl__fault_crash(void *failinfo) {
  int sig = failinfo ? (int)(intptr_t)failinfo : SIGKILL;
  raise(sig);
  _exit(128 + sig); /* a caught or ignored signal still ends the process */
}
#endif

#ifdef BL_COVERAGE
void bl__testcase_hit(int line) {
  /* Only the branch taken matters to gcov; this keeps the call alive. */
  static volatile int sink;
  sink = line;
}
#endif
