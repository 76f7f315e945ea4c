/* util.c: billiard.util for C: a stderr/fd logger with billiard's record
 * format, cpu_count, current/parent/active processes, a soft-time-limit
 * flag handler, and the no-ops freeze_support/allow_connection_pickling. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <billiard/util.h>

#include "internal.h"
#include "procinfo.h"

/* ---- identity ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* A fork by another thread while mu is held must not leave it locked in
 * the child, which uses it right away (procinfo, exec path). The child
 * gets a fresh mutex; no prepare handler, so nothing here can interfere
 * with forks made from other atfork handlers. */
static void mu_reinit(void) { pthread_mutex_init(&mu, NULL); }
__attribute__((constructor)) static void mu_atfork(void) {
  pthread_atfork(NULL, NULL, mu_reinit);
}
static char cur_name[BL_PROCESS_NAME_MAX] = "MainProcess";
static pid_t parent_pid; /* 0 in the main process */

void bl__procinfo_set(const char *name, pid_t parent) {
  pthread_mutex_lock(&mu);
  snprintf(cur_name, sizeof cur_name, "%s", name ? name : "MainProcess");
  parent_pid = parent;
  pthread_mutex_unlock(&mu);
}

BL_API int bl_current_process(bl_process_info_t *info) {
  BL_VALIDATE(info, -EINVAL);
  pthread_mutex_lock(&mu);
  info->pid = getpid();
  memcpy(info->name, cur_name, sizeof info->name);
  pthread_mutex_unlock(&mu);
  return 0;
}

BL_API int bl_parent_process(pid_t *pid) {
  BL_VALIDATE(pid, -EINVAL);
  pthread_mutex_lock(&mu);
  *pid = parent_pid;
  pthread_mutex_unlock(&mu);
  return *pid != 0;
}

__attribute__((weak)) int bl__process_active(bl_process_info_t *out,
                                             size_t cap, size_t *n);

BL_API int bl_active_children(bl_process_info_t *out, size_t cap, size_t *n) {
  BL_VALIDATE(n && (out || cap == 0), -EINVAL);
  *n = 0;
  /* Without process.o linked in no Process was ever started. */
  if (!bl__process_active) return 0;
  return bl__process_active(out, cap, n);
}

BL_API int bl_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* ---- logger ---- */

static int log_fd = -1; /* -1: no handler, nothing is written */
static int log_level = BL_LOG_NOTSET;

BL_API const char *bl_log_level_name(int level) {
  switch (level) {
  case BL_LOG_NOTSET: return "NOTSET";
  case BL_LOG_SUBDEBUG: return "SUBDEBUG";
  case BL_LOG_DEBUG: return "DEBUG";
  case BL_LOG_INFO: return "INFO";
  case BL_LOG_SUBWARNING: return "SUBWARNING";
  case BL_LOG_WARNING: return "WARNING";
  case BL_LOG_ERROR: return "ERROR";
  case BL_LOG_CRITICAL: return "CRITICAL";
  default: break;
  }
  /* Python prints "Level N" for unnamed levels; a static buffer per
   * thread keeps this call allocation-free. */
  static _Thread_local char buf[32];
  snprintf(buf, sizeof buf, "Level %d", level);
  return buf;
}

BL_API int bl_log_to_fd(int fd, int level) {
  BL_VALIDATE(level >= 0, -EINVAL);
  BL_VALIDATE(fd < 0 || fcntl(fd, F_GETFD) != -1, -EBADF); /* not open */
  pthread_mutex_lock(&mu);
  log_fd = fd < 0 ? -1 : fd;
  if (level != BL_LOG_NOTSET) log_level = level;
  pthread_mutex_unlock(&mu);
  return 0;
}

BL_API int bl_log_to_stderr(int level) { return bl_log_to_fd(STDERR_FILENO, level); }

BL_API int bl_log_set_level(int level) {
  BL_VALIDATE(level >= 0, -EINVAL);
  pthread_mutex_lock(&mu);
  log_level = level;
  pthread_mutex_unlock(&mu);
  return 0;
}

BL_API int bl_log_get_level(void) {
  pthread_mutex_lock(&mu);
  int l = log_level;
  pthread_mutex_unlock(&mu);
  return l;
}

BL_API int bl_log_effective_level(void) {
  int l = bl_log_get_level();
  return l == BL_LOG_NOTSET ? BL_LOG_WARNING : l; /* the root logger's */
}

BL_API int bl_log(int level, const char *fmt, ...) {
  BL_VALIDATE(fmt, -EINVAL);
  char buf[4096], name[BL_PROCESS_NAME_MAX];
  pthread_mutex_lock(&mu);
  int fd = log_fd, eff = log_level == BL_LOG_NOTSET ? BL_LOG_WARNING : log_level;
  memcpy(name, cur_name, sizeof name);
  pthread_mutex_unlock(&mu);
  if (fd < 0 || level < eff) return 0;
  int n = snprintf(buf, sizeof buf, "[%s/%s] ", bl_log_level_name(level), name);
  if (n < 0 || (size_t)n >= sizeof buf - 1) n = (int)sizeof buf - 2;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - 1 - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof buf - 2) len = sizeof buf - 2; /* truncated */
  buf[len++] = '\n';
  /* One write per record: a pipe write of at most PIPE_BUF (4096) bytes is
   * atomic, so records of concurrent writers never interleave. */
  int rc = bl__write_full(fd, buf, len);
  return rc < 0 ? rc : 1;
}

/* ---- soft time limit ---- */

static volatile sig_atomic_t soft_flag;

static void on_soft_timeout(int sig) {
  (void)sig;
  soft_flag = 1;
}

BL_API int bl_install_soft_timeout_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_soft_timeout;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a soft limit interrupts blocking waits */
  if (sigaction(SIGUSR1, &sa, NULL) != 0) return -errno;
  return 0;
}

BL_API int bl_soft_timeout_pending(int clear) {
  int v = soft_flag;
  if (clear) soft_flag = 0;
  return v;
}

/* ---- no-ops (see util.h for why) ---- */

BL_API void bl_freeze_support(void) {}
BL_API void bl_allow_connection_pickling(void) {}
