/* util.h: billiard's utility functions: logger, cpu_count, the current,
 * parent and active child processes, the soft-time-limit signal handler,
 * and the platform no-ops freeze_support / allow_connection_pickling.
 *
 * Thread-safety: every function may be called from any thread. Logging
 * writes each record with one write(2), so records from several threads
 * or processes sharing the fd do not interleave. */
#ifndef BILLIARD_UTIL_H
#define BILLIARD_UTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- logger (billiard.util: get_logger, log_to_stderr) ---- */

/* Python logging's numeric levels, plus billiard's SUBDEBUG/SUBWARNING. */
enum bl_log_level {
  BL_LOG_NOTSET = 0,
  BL_LOG_SUBDEBUG = 5,
  BL_LOG_DEBUG = 10,
  BL_LOG_INFO = 20,
  BL_LOG_SUBWARNING = 25,
  BL_LOG_WARNING = 30,
  BL_LOG_ERROR = 40,
  BL_LOG_CRITICAL = 50
};

/* The logger starts with no handler (nothing is written) and level
 * NOTSET, which, as in Python, behaves as WARNING once a handler exists.
 * bl_log_to_stderr(level) adds the stderr handler and, when level is not
 * BL_LOG_NOTSET, sets the level (billiard's log_to_stderr(level=None)).
 * bl_log_to_fd() does the same for any fd (not closed by the library;
 * -1 removes the handler). Each returns 0 or -EINVAL for a negative level. */
BL_API int bl_log_to_stderr(int level);
BL_API int bl_log_to_fd(int fd, int level);
BL_API int bl_log_set_level(int level);
/* The level set (NOTSET included) and the effective level. */
BL_API int bl_log_get_level(void);
BL_API int bl_log_effective_level(void);
/* Name of a level: "DEBUG", "INFO", ..., or "Level N" like Python. */
BL_API const char *bl_log_level_name(int level);

/* Write "[LEVEL/ProcessName] message\n" (billiard's DEFAULT_LOGGING_FORMAT
 * '[%(levelname)s/%(processName)s] %(message)s') when a handler exists and
 * level >= the effective level; otherwise do nothing. Records longer than
 * 4 KiB are truncated. Returns 1 written, 0 filtered, -errno. */
BL_API int bl_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- processes ---- */

/* Number of CPUs this process may run on: sched_getaffinity(), else
 * sysconf(_SC_NPROCESSORS_ONLN); at least 1. (billiard.cpu_count, which
 * Pool uses for processes=0.) */
BL_API int bl_cpu_count(void);

#define BL_PROCESS_NAME_MAX 128
typedef struct bl_process_info {
  pid_t pid;
  char name[BL_PROCESS_NAME_MAX]; /* NUL-terminated, possibly truncated */
} bl_process_info_t;

/* This process: name "MainProcess" in the main program, the Process name
 * (bl_process_options_t.name or "Process-N") in a child started with
 * bl_process_start() under any start method. Never fails for valid input. */
BL_API int bl_current_process(bl_process_info_t *info);

/* The parent: 1 and *pid in a child started by bl_process_start() (the pid
 * of the process that started it, recorded at start: still that pid after
 * the parent died), 0 and *pid = 0 in the main process (billiard: None). */
BL_API int bl_parent_process(pid_t *pid);

/* Children started by bl_process_start() in this process that are still
 * running, in no particular order. Like billiard's active_children(), it
 * first reaps children that have exited (their exit codes stay readable
 * through their bl_process_t). Fills at most cap entries; *n receives the
 * total count (may exceed cap: call again with a larger array). */
BL_API int bl_active_children(bl_process_info_t *out, size_t cap, size_t *n);

/* ---- soft time limit (billiard.pool.soft_timeout_sighandler) ---- */

/* Install a SIGUSR1 handler that only records that a soft time limit
 * fired (C cannot raise SoftTimeLimitExceeded inside arbitrary code, so
 * the code must poll). Installed without SA_RESTART so blocking calls
 * return EINTR and the code gets a chance to look. 0 or -errno.
 * Pool workers have their own handler (bl_task_soft_limit_exceeded in
 * <billiard/pool.h>); this one is for Process targets and user code. */
BL_API int bl_install_soft_timeout_handler(void);
/* 1 if SIGUSR1 arrived since the last clear; clear != 0 resets it. */
BL_API int bl_soft_timeout_pending(int clear);

/* ---- documented no-ops ---- */

/* billiard.freeze_support(): on Windows it lets a frozen executable act
 * as a spawn child. Here a spawn child is recognised by a library
 * constructor before main() runs (see <billiard/context.h>), so there is
 * nothing left to do. */
BL_API void bl_freeze_support(void);
/* billiard.allow_connection_pickling(): registers picklers so Connection
 * objects can be sent to other processes. C has no pickling; a connection
 * crosses to a child as an inherited fd (fork) or by SCM_RIGHTS, so this
 * does nothing. */
BL_API void bl_allow_connection_pickling(void);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_UTIL_H */
