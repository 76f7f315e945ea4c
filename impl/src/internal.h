/* internal.h: helpers shared by libbilliard's source files; never installed.
 * Internal non-static names use the bl__ prefix. */
#ifndef BL_INTERNAL_H
#define BL_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <billiard/errors.h>

#define BL__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BL__NS_PER_MS 1000000ull
#define BL__NS_PER_S 1000000000ull

/* Entry-point validation: returns err in every build (tests must see it);
 * debug builds also say where, out of line, so that each expansion adds
 * only the branch on cond to the coverage report. */
#ifndef NDEBUG
#define BL_VALIDATE(cond, err)                                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      bl__validate_failed(__FILE__, __LINE__, #cond);                           \
      return (err);                                                             \
    }                                                                           \
  } while (0)
#else
#define BL_VALIDATE(cond, err)                                                  \
  do {                                                                          \
    if (!(cond)) return (err);                                                  \
  } while (0)
#endif
/* Set BL_DEBUG_VALIDATE=1 in the environment to print failed checks. */
extern int bl__debug_validate;
void bl__validate_failed(const char *file, int line, const char *cond);

/* SQLite-style coverage markers (https://sqlite.org/testing.html#coverage).
 * testcase(x) notes a boundary that tests must reach: in coverage builds it
 * is a branch of its own, so the report shows whether x was ever true.
 * NEVER(x) wraps a defensive check believed unreachable, ALWAYS(x) one
 * believed always true. Coverage builds replace them by constants, so an
 * impossible branch is not counted as untested; debug builds abort when
 * the belief is wrong (every test run checks it); release builds keep the
 * check, marked unlikely. x must have no side effects. Reachable checks
 * (bad input, a failure a fault point can simulate) must NOT use them. */
#if defined(BL_COVERAGE)
#define testcase(x)                                                             \
  do {                                                                          \
    if (x) bl__testcase_hit(__LINE__);                                          \
  } while (0)
#define NEVER(x) (0)
#define ALWAYS(x) (1)
void bl__testcase_hit(int line);
#elif !defined(NDEBUG)
#define testcase(x) ((void)0)
#define NEVER(x) ((x) ? (bl__never_failed(__FILE__, __LINE__, #x), 1) : 0)
#define ALWAYS(x) ((x) ? 1 : (bl__never_failed(__FILE__, __LINE__, "!(" #x ")"), 0))
#else
#define testcase(x) ((void)0)
#define NEVER(x) __builtin_expect(!!(x), 0)
#define ALWAYS(x) __builtin_expect(!!(x), 1)
#endif
/* Debug builds: a NEVER/ALWAYS belief was wrong; prints where and aborts. */
_Noreturn void bl__never_failed(const char *file, int line, const char *cond);

/* ---- child.c: the one fork helper and the one way out of a child ---- */

/* fork() after fflush(NULL); in the child resets coverage counters and,
 * when pdeathsig is set, arms PR_SET_PDEATHSIG so no orphan outlives a
 * crashed parent. Returns the pid, 0 in the child, or -errno. */
pid_t bl__fork(int pdeathsig);
/* Leave a child: dumps coverage counters, then _exit(code). */
_Noreturn void bl__child_exit(int code);
/* Non-zero in a process created by bl__fork (until it execs). */
int bl__in_child(void);

/* pidfd_open(pid, 0): an fd that becomes readable (POLLIN) when the child
 * exits; CLOEXEC; -errno on failure. Where the kernel or valgrind (3.19:
 * ENOSYS) lacks pidfds, it is a dup of the child's "death pipe" read end
 * (children must come from bl__fork), with the same readiness. Close it
 * with close(). */
int bl__pidfd_open(pid_t pid);
/* Signal the child behind a bl__pidfd_open fd; never hits a recycled pid.
 * -ESRCH once reaped (fallback: once exited). */
int bl__pidfd_signal(int pidfd, int sig);
/* 1 when real pidfds are in use, 0 under the death-pipe fallback. */
int bl__have_pidfd(void);
/* waitpid() retried on EINTR: the pid, 0 (WNOHANG, still running) or
 * -errno. Always reap bl__fork children with this (it drops the fallback's
 * death pipe), or call bl__child_forget(pid) after reaping another way. */
pid_t bl__waitpid(pid_t pid, int *status, int flags);
void bl__child_forget(pid_t pid);
/* In a bl__fork child under the death-pipe fallback: the write end its
 * parent watches (close-on-exec; a spawn child keeps it across the exec
 * so that it does not look dead from then on). -1 with pidfds. */
int bl__child_deathpipe(void);

/* ---- fdutil.c: EINTR-safe fd helpers; every fd is CLOEXEC ---- */
int bl__pipe(int fds[2]);                 /* pipe2(O_CLOEXEC) */
int bl__socketpair(int fds[2]);           /* AF_UNIX SOCK_STREAM, CLOEXEC */
int bl__set_nonblock(int fd, int on);
void bl__close(int *fd);                  /* close and set to -1; keeps errno */
/* Write/read exactly len bytes, retrying on EINTR and short counts.
 * read_full returns BL_EEOF on EOF at offset 0, BL_EPROTOCOL on EOF after
 * part of the data (a torn frame); write_full returns -EPIPE etc. */
int bl__write_full(int fd, const void *buf, size_t len);
int bl__read_full(int fd, void *buf, size_t len);
/* poll() one fd for events, timeout_ms < 0 = infinite; restarts on EINTR
 * with the remaining time. 1 ready, 0 timed out, -errno. */
int bl__poll_fd(int fd, short events, int timeout_ms);
/* Grow a pipe's buffer toward want bytes (best effort, F_SETPIPE_SZ). */
void bl__grow_pipe(int fd, int want);

/* ---- errors.c ---- */
/* Coverage builds: write the counters gathered so far and start again from
 * zero (before an exec, which would lose them); a no-op otherwise. */
void bl__coverage_flush(void);
char *bl__strdup(const char *s);          /* NULL-safe strdup */
char *bl__asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* BL_INTERNAL_H */
