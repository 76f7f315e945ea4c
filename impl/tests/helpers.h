/* helpers.h: test-side process helpers. A forked test child never calls
 * cr_assert*: it reports by exit status and leaves with t_exit(). */
#ifndef BL_TEST_HELPERS_H
#define BL_TEST_HELPERS_H

#include <stdint.h>
#include <sys/types.h>

/* fork with fflush, PR_SET_PDEATHSIG(SIGKILL) and a getppid() re-check. */
pid_t t_fork(void);
/* Leave a test child (coverage dump, _exit). */
_Noreturn void t_exit(int code);
/* waitpid retried on EINTR: exit code, or -signal, or -1000 on error. */
int t_wait_exit(pid_t pid);
/* Non-zero when running under valgrind (slow: shrink loops). */
int t_under_valgrind(void);
/* Count of open fds in this process. */
int t_count_fds(void);
uint64_t t_now_ms(void);

#endif
