/* ops_misc.c: clock.jump, clock.worker_offset, fault.arm and fault.disarm.
 *
 * clock.jump moves the offset clock every pool was created with.
 * clock.worker_offset puts the children forked afterwards in a new time
 * namespace whose CLOCK_MONOTONIC is shifted; the driver keeps the real one.
 * fault.* arm libfiu points inside libbilliard (fault-injection builds). */
#include "bcd.h"

#include <billiard/context.h>
#include <billiard/util.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* ---- clocks ---- */
static json_t *op_clock_jump(json_t *a, bcd_err_t *e) {
  if (!bcd_has(a, "seconds"))
    return bcd_fail(e, "ValueError", "missing seconds");
  double s = bcd_num(a, "seconds", 0);
  bl_offset_clock_jump(&bcd.clock, (int64_t)llround(s * 1e9));
  bcd_wake_pools();
  return json_object();
}

/* Probed once at start-up in a throw-away child (the driver is still
 * single-threaded), so the driver itself never changes namespace unless a
 * scenario asks. */
int bcd_timens_possible(void) {
  pid_t pid = fork();
  if (pid < 0)
    return 0;
  if (pid == 0)
    _exit(unshare(CLONE_NEWTIME) == 0 ? 0 : 1);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static json_t *op_worker_offset(json_t *a, bcd_err_t *e) {
  if (bcd.npools || bcd.nprocesses)
    return bcd_fail(e, "ValueError",
                    "clock.worker_offset must precede pool.new");
  double s = bcd_num(a, "seconds", 0);
  if (!bcd.timens) {
    if (unshare(CLONE_NEWTIME) != 0)
      return bcd_unsupported(e, "unshare(CLONE_NEWTIME): %s", strerror(errno));
    bcd.timens = 1;
  }
  double whole = floor(s);
  long long sec = (long long)whole;
  long nsec = (long)llround((s - whole) * 1e9);
  if (nsec >= 1000000000L) {
    sec++;
    nsec -= 1000000000L;
  }
  char line[64];
  int n = snprintf(line, sizeof line, "monotonic %lld %ld\n", sec, nsec);
  int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return bcd_unsupported(e, "timens_offsets: %s", strerror(errno));
  ssize_t w = write(fd, line, (size_t)n);
  int err = errno;
  close(fd);
  if (w != n)
    return bcd_unsupported(e, "timens_offsets: %s", strerror(err));
  return json_object();
}

/* ---- faults ---- */
#ifdef FIU_ENABLE
static const struct {
  const char *name;
  int num;
} errnos[] = {
    {"EPERM", EPERM},   {"ENOENT", ENOENT},   {"ESRCH", ESRCH},
    {"EINTR", EINTR},   {"EIO", EIO},         {"ENXIO", ENXIO},
    {"E2BIG", E2BIG},   {"EBADF", EBADF},     {"ECHILD", ECHILD},
    {"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM},   {"EACCES", EACCES},
    {"EFAULT", EFAULT}, {"EBUSY", EBUSY},     {"EEXIST", EEXIST},
    {"ENODEV", ENODEV}, {"EINVAL", EINVAL},   {"ENFILE", ENFILE},
    {"EMFILE", EMFILE}, {"ENOSPC", ENOSPC},   {"EPIPE", EPIPE},
    {"ENOSYS", ENOSYS}, {"ETIMEDOUT", ETIMEDOUT},
    {"ECONNRESET", ECONNRESET}, {"EWOULDBLOCK", EWOULDBLOCK},
    {"EOVERFLOW", EOVERFLOW},
};

static int errno_of(const json_t *v) {
  if (json_is_integer(v))
    return (int)json_integer_value(v);
  if (json_is_string(v))
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
      if (strcmp(json_string_value(v), errnos[i].name) == 0)
        return errnos[i].num;
  return v == NULL || json_is_null(v) ? 0 : -1;
}

/* "nth" points: hit number n (1-based) fails, the others pass. The counter
 * is copied into workers forked afterwards, as libfiu's own state is. */
#define NTH_MAX 32
static struct nth {
  char *name;
  long n;
  atomic_long hits;
} nths[NTH_MAX];

static int name_matches(const char *armed, const char *name) {
  size_t l = strlen(armed);
  if (l > 0 && armed[l - 1] == '*')
    return strncmp(armed, name, l - 1) == 0;
  return strcmp(armed, name) == 0;
}

static int nth_cb(const char *name, int *failnum, void **failinfo,
                  unsigned int *flags) {
  (void)failnum;
  (void)failinfo;
  (void)flags;
  for (int i = 0; i < NTH_MAX; i++)
    if (nths[i].name && name_matches(nths[i].name, name))
      return atomic_fetch_add(&nths[i].hits, 1) + 1 == nths[i].n;
  return 0;
}

static void nth_drop(const char *name) {
  for (int i = 0; i < NTH_MAX; i++)
    if (nths[i].name && strcmp(nths[i].name, name) == 0) {
      free(nths[i].name);
      nths[i].name = NULL;
    }
}

/* A fork worker inherits the armed points with the driver's memory; a
 * spawn worker is a fresh image. So the armed set is also kept as text
 * ("mode errno n point" lines) in a memfd that every exec'd child inherits
 * (BCD_FAULTS_FD, set once while single-threaded), and the constructor
 * below arms the same points in a spawn child before libbilliard's own
 * constructor runs the worker. Not in the forkserver: its server would
 * arm a snapshot from its start that no later disarm reaches. */
#define FAULTS_ENV "BCD_FAULTS_FD"
static int faults_fd = -1;
static char faults_txt[4096];

static int arm(const char *point, int err, const char *mode, long n);

static void faults_sync(const char *point, int err, const char *mode, long n) {
  char out[sizeof faults_txt];
  size_t o = 0, pl = strlen(point);
  for (char *l = faults_txt, *nl; *l; l = nl + 1) {
    nl = strchr(l, '\n');
    if (nl == NULL)
      break;
    size_t len = (size_t)(nl - l) + 1;
    const char *p = strrchr(l, ' ');
    int same = p && (size_t)(nl - p - 1) == pl && strncmp(p + 1, point, pl) == 0;
    if (!same && o + len < sizeof out) {
      memcpy(out + o, l, len);
      o += len;
    }
  }
  if (mode != NULL && o + pl + 48 < sizeof out)
    o += (size_t)snprintf(out + o, sizeof out - o, "%s %d %ld %s\n", mode, err, n, point);
  out[o] = '\0';
  memcpy(faults_txt, out, o + 1);
  if (faults_fd >= 0 && ftruncate(faults_fd, 0) == 0 &&
      pwrite(faults_fd, faults_txt, o, 0) != (ssize_t)o)
    bcd_log("cannot record armed faults for spawn workers");
}

__attribute__((constructor)) static void faults_inherit(void) {
  const char *v = getenv(FAULTS_ENV);
  if (v == NULL || getenv("BL_SPAWN_FD") == NULL)
    return;
  char buf[sizeof faults_txt];
  ssize_t r = pread(atoi(v), buf, sizeof buf - 1, 0);
  if (r <= 0)
    return;
  buf[r] = '\0';
  fiu_init(0);
  for (char *l = buf, *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
    *nl = '\0';
    char mode[16], point[256];
    int err;
    long n;
    if (sscanf(l, "%15s %d %ld %255s", mode, &err, &n, point) == 4)
      (void)arm(point, err, mode, n);
  }
}

static int arm(const char *point, int err, const char *mode, long n) {
  void *info = (void *)(intptr_t)err;
  nth_drop(point);
  if (strcmp(mode, "always") == 0)
    return fiu_enable(point, 1, info, 0);
  if (strcmp(mode, "once") == 0)
    return fiu_enable(point, 1, info, FIU_ONETIME);
  int slot = -1;
  for (int i = 0; i < NTH_MAX && slot < 0; i++)
    if (nths[i].name == NULL)
      slot = i;
  if (slot < 0)
    return -2;
  nths[slot].name = strdup(point);
  nths[slot].n = n;
  atomic_store(&nths[slot].hits, 0);
  return fiu_enable_external(point, 1, info, 0, nth_cb);
}

static json_t *op_fault_arm(json_t *a, bcd_err_t *e) {
  const char *point = bcd_str(a, "point");
  const char *mode = bcd_str(a, "mode");
  if (point == NULL)
    return bcd_fail(e, "ValueError", "missing point");
  int err = errno_of(json_object_get(a, "errno"));
  if (err < 0)
    return bcd_fail(e, "ValueError", "unknown errno");
  if (mode == NULL)
    mode = "always";
  if (strcmp(mode, "always") != 0 && strcmp(mode, "once") != 0 &&
      strcmp(mode, "nth") != 0)
    return bcd_fail(e, "ValueError", "unknown mode %s", mode);
  if (strchr(point, ' ') != NULL || strlen(point) > 255)
    return bcd_fail(e, "ValueError", "bad point name");
  long n = (long)bcd_num(a, "n", 1);
  int rc = arm(point, err, mode, n);
  if (rc == -2)
    return bcd_fail(e, "ValueError", "too many nth points armed");
  if (rc != 0)
    return bcd_fail(e, "OSError", "fiu_enable(%s) failed", point);
  faults_sync(point, err, mode, n);
  return json_object();
}

static json_t *op_fault_disarm(json_t *a, bcd_err_t *e) {
  const char *point = bcd_str(a, "point");
  if (point == NULL)
    return bcd_fail(e, "ValueError", "missing point");
  fiu_disable(point);
  nth_drop(point);
  faults_sync(point, 0, NULL, 0);
  return json_object();
}

void bcd_fault_init(void) {
  fiu_init(0);
  /* Inherited across exec on purpose (spawn workers read it). */
  faults_fd = memfd_create("bcd-faults", 0);
  char v[16];
  snprintf(v, sizeof v, "%d", faults_fd);
  if (faults_fd >= 0)
    setenv(FAULTS_ENV, v, 1);
}
int bcd_fault_build(void) { return 1; }

static void fault_fini(void) {
  for (int i = 0; i < NTH_MAX; i++)
    if (nths[i].name) {
      fiu_disable(nths[i].name);
      free(nths[i].name);
      nths[i].name = NULL;
    }
}
#else
static json_t *op_fault_arm(json_t *a, bcd_err_t *e) {
  (void)a;
  return bcd_unsupported(e, "libbilliard built without fault injection");
}
#define op_fault_disarm op_fault_arm
void bcd_fault_init(void) {}
int bcd_fault_build(void) { return 0; }
static void fault_fini(void) {}
#endif

void bcd_fault_fini(void) { fault_fini(); }

/* ---- context.* and util.* (<billiard/context.h>, <billiard/util.h>) ---- */
static json_t *op_get_start_method(json_t *a, bcd_err_t *e) {
  (void)e;
  const char *m = bl_get_start_method(bcd_bool(a, "allow_none", 0));
  return json_pack("{s:o}", "method", m ? json_string(m) : json_null());
}

static json_t *op_set_start_method(json_t *a, bcd_err_t *e) {
  const char *m = bcd_str(a, "method"); /* null: back to "not set" (force) */
  int rc = bl_set_start_method(m, bcd_bool(a, "force", 0));
  if (rc == BL_ESTATE) /* billiard: RuntimeError('context has already been set') */
    return bcd_fail(e, "RuntimeError", "context has already been set");
  if (rc == -EINVAL)
    return bcd_fail(e, "ValueError", "cannot find context for '%s'", m ? m : "None");
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "context.set_start_method");
  return json_object();
}

static json_t *op_all_start_methods(json_t *a, bcd_err_t *e) {
  (void)a;
  (void)e;
  json_t *l = json_array();
  for (const char *const *m = bl_get_all_start_methods(); *m; m++)
    json_array_append_new(l, json_string(*m));
  return json_pack("{s:o}", "methods", l);
}

static json_t *op_cpu_count(json_t *a, bcd_err_t *e) {
  (void)a;
  int n = bl_cpu_count();
  if (n < 0)
    return bcd_fail_rc(e, n, NULL, "util.cpu_count");
  return json_pack("{s:i}", "n", n);
}

static json_t *op_current_process(json_t *a, bcd_err_t *e) {
  (void)a;
  bl_process_info_t me;
  int rc = bl_current_process(&me);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "util.current_process");
  return json_pack("{s:s,s:i}", "name", me.name, "pid", (int)me.pid);
}

static json_t *op_active_children(json_t *a, bcd_err_t *e) {
  (void)a;
  bl_process_info_t kids[64];
  size_t n = 0;
  int rc = bl_active_children(kids, 64, &n);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "util.active_children");
  json_t *names = json_array(), *pids = json_array();
  for (size_t i = 0; i < n && i < 64; i++) {
    json_array_append_new(names, json_string(kids[i].name));
    json_array_append_new(pids, json_integer(kids[i].pid));
  }
  return json_pack("{s:i,s:o,s:o}", "n", (int)n, "names", names, "pids", pids);
}

/* ---- logger, no-ops, executable, forkserver preload ---- */
static int level_of(const json_t *a, bcd_err_t *e, int dflt) {
  static const struct {
    const char *name;
    int level;
  } lv[] = {{"SUBDEBUG", BL_LOG_SUBDEBUG}, {"DEBUG", BL_LOG_DEBUG},
            {"INFO", BL_LOG_INFO},         {"SUBWARNING", BL_LOG_SUBWARNING},
            {"WARNING", BL_LOG_WARNING},   {"ERROR", BL_LOG_ERROR},
            {"CRITICAL", BL_LOG_CRITICAL}};
  const char *n = bcd_str(a, "level");
  if (n == NULL)
    return dflt;
  for (size_t i = 0; i < sizeof lv / sizeof lv[0]; i++)
    if (strcmp(lv[i].name, n) == 0)
      return lv[i].level;
  bcd_fail(e, "ValueError", "unknown level '%s'", n);
  return -1;
}

static json_t *op_log_to_stderr(json_t *a, bcd_err_t *e) {
  int lv = level_of(a, e, BL_LOG_NOTSET); /* null: billiard's level=None */
  if (lv < 0)
    return NULL;
  int rc = bl_log_to_stderr(lv);
  return rc ? bcd_fail_rc(e, rc, NULL, "log_to_stderr") : json_object();
}

/* Log with fd 2 captured: the line the logger wrote, or null. */
static json_t *op_log(json_t *a, bcd_err_t *e) {
  int lv = level_of(a, e, BL_LOG_WARNING);
  if (lv < 0)
    return NULL;
  const char *msg = bcd_str(a, "message");
  int p[2];
  /* Non-blocking: a worker forked meanwhile may hold the write end, so
   * read what is there (bl_log's single write is already in) until EAGAIN. */
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
    return bcd_fail(e, "OSError", "pipe: %s", strerror(errno));
  int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (saved < 0 || dup2(p[1], 2) < 0) {
    close(p[0]);
    close(p[1]);
    if (saved >= 0)
      close(saved);
    return bcd_fail(e, "OSError", "dup2: %s", strerror(errno));
  }
  int rc = bl_log(lv, "%s", msg ? msg : "");
  dup2(saved, 2);
  close(saved);
  close(p[1]);
  char buf[8192];
  size_t have = 0;
  ssize_t n;
  while (have < sizeof buf - 1 &&
         (n = read(p[0], buf + have, sizeof buf - 1 - have)) > 0)
    have += (size_t)n;
  close(p[0]);
  if (rc < 0)
    return bcd_fail_rc(e, rc, NULL, "log");
  while (have > 0 && buf[have - 1] == '\n')
    have--;
  return json_pack("{s:o}", "line",
                   have ? bcd_bytes_json(buf, have) : json_null());
}

static json_t *op_freeze_support(json_t *a, bcd_err_t *e) {
  (void)a;
  (void)e;
  bl_freeze_support();
  return json_object();
}

static json_t *op_allow_pickling(json_t *a, bcd_err_t *e) {
  (void)a;
  (void)e;
  bl_allow_connection_pickling();
  return json_object();
}

static json_t *op_set_executable(json_t *a, bcd_err_t *e) {
  const char *path = bcd_str(a, "path"); /* null: this program's image */
  char self[4096];
  if (path == NULL) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
      return bcd_fail(e, "OSError", "readlink: %s", strerror(errno));
    self[n] = '\0';
    path = self;
  }
  int rc = bl_set_executable(path);
  return rc ? bcd_fail_rc(e, rc, NULL, "set_executable") : json_object();
}

/* Preload units of the protocol are targets of this program (tasks.c
 * registers `marker` from a constructor, so the forkserver image has it). */
static json_t *op_set_preload(json_t *a, bcd_err_t *e) {
  json_t *l = json_object_get(a, "names");
  size_t n = json_array_size(l);
  const char **names = calloc(n + 1, sizeof *names);
  if (names == NULL)
    return bcd_fail(e, "MemoryError", "out of memory");
  for (size_t i = 0; i < n; i++) {
    names[i] = json_string_value(json_array_get(l, i));
    if (names[i] == NULL || strcmp(names[i], "marker") != 0) {
      free(names);
      return bcd_fail(e, "ValueError", "unknown preload unit");
    }
  }
  int rc = bl_set_forkserver_preload(names);
  free(names);
  return rc ? bcd_fail_rc(e, rc, NULL, "set_forkserver_preload")
            : json_object();
}

const bcd_op_t bcd_ops_misc[] = {
    {"util.log_to_stderr", op_log_to_stderr},
    {"util.log", op_log},
    {"util.freeze_support", op_freeze_support},
    {"util.allow_connection_pickling", op_allow_pickling},
    {"context.set_executable", op_set_executable},
    {"context.set_forkserver_preload", op_set_preload},
    {"clock.jump", op_clock_jump},
    {"clock.worker_offset", op_worker_offset},
    {"fault.arm", op_fault_arm},
    {"fault.disarm", op_fault_disarm},
    {"context.get_start_method", op_get_start_method},
    {"context.set_start_method", op_set_start_method},
    {"context.get_all_start_methods", op_all_start_methods},
    {"util.cpu_count", op_cpu_count},
    {"util.current_process", op_current_process},
    {"util.active_children", op_active_children},
    {NULL, NULL},
};
