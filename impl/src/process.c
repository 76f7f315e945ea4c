/* process.c: billiard.Process with the fork start method: start a child
 * that runs a registered target by name, report start failures, reap,
 * signal through pidfds, and tear down daemon children at exit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <billiard/clock.h>
#include <billiard/process.h>
#include <billiard/task.h>

#include "fault.h"
#include "handle.h"
#include "internal.h"

/* The start-method layer (context.c, spawn.c, forkserver.c) and the
 * process-identity helpers (util.c) land separately; until both are in,
 * Process is fork-only and has no identity hooks. */
#if defined(__has_include)
#if __has_include("startmethod.h")
#define BL__HAVE_METHODS 1
#include "startmethod.h"
#endif
#if __has_include("procinfo.h")
#define BL__HAVE_PROCINFO 1
#include "procinfo.h"
#endif
#endif

enum state { ST_NEW, ST_STARTED, ST_CLOSED };

struct bl_process {
  char *target, *name;
  char ident[128]; /* "N", or "<parent identity>:N" in a child */
  void *arg;
  size_t len;
  int daemon, grace_ms;
  int method; /* 0 fork, 1 spawn, 2 forkserver (startmethod.h) */
  pid_t owner; /* the process that created this object (its parent) */
  /* Objects handed to the child (bl_process_add_handle): our own CLOEXEC
   * duplicates of their memfds, inherited by fork, kept across spawn's
   * exec, sent to the forkserver; closed once started. */
  int hfds[BL__MAX_HANDLES];
  size_t nh;

  pthread_mutex_t mu; /* guards the fields below */
  enum state state;
  pid_t pid;
  int pidfd;  /* open from start to close: never reused while p lives */
  int reaped; /* waitpid done: pid may be recycled, never signal it */
  int status; /* exit code or -signal once reaped */

  /* Process set (guarded by set_mu): started, unreaped children. refs
   * counts the user's handle plus the set's; the last one frees. */
  struct bl_process *next;
  int in_set, refs, user_freed, torn;
};

/* ---- this process's identity and set of children ---- */

static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bl_process *set_head;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* billiard names children Process-N, and grandchildren Process-N:M (the
 * parent's identity, then its own counter, which restarts in each child). */
static char identity[128];
static unsigned counter;

/* Forks by other code (pools, tests) must not leave set_mu locked in the
 * child: hold it across fork, as every pthread_atfork user does. */
static void atfork_prepare(void) { pthread_mutex_lock(&set_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&set_mu); }
static void atfork_child(void) { pthread_mutex_unlock(&set_mu); }

static void teardown_at_exit(void) { (void)bl_process_teardown(); }

static void init_once(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  atexit(teardown_at_exit);
}

static void close_handles(bl_process_t *p) {
  for (size_t i = 0; i < p->nh; i++) bl__close(&p->hfds[i]);
  p->nh = 0;
}

static void proc_destroy(bl_process_t *p) {
  bl__close(&p->pidfd);
  close_handles(p);
  pthread_mutex_destroy(&p->mu);
  free(p->target);
  free(p->name);
  free(p->arg);
  free(p);
}

/* Drop a reference; the last one frees. Called with set_mu held. */
static void unref_locked(bl_process_t *p) {
  if (--p->refs == 0) proc_destroy(p);
}

static void set_remove_locked(bl_process_t *p) {
  if (!p->in_set) return;
  for (bl_process_t **pp = &set_head; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  p->next = NULL;
  p->in_set = 0;
  unref_locked(p);
}

/* ---- reaping ---- */

static int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return 0; /* NEVER: waitpid without WUNTRACED reports only exits */
}

/* Reap p if it has exited; block = wait for it. Returns 1 reaped (now or
 * before), 0 still running, -errno. Takes p->mu; never called with set_mu
 * held (lock order: set_mu before p->mu, and this takes set_mu after). */
static int reap(bl_process_t *p, int block) {
  pthread_mutex_lock(&p->mu);
  int newly = 0, rc = 1;
  if (!p->reaped) {
    int st = 0;
    pid_t r = bl__waitpid(p->pid, &st, block ? 0 : WNOHANG);
    if (r == p->pid) {
      p->status = decode_status(st);
      p->reaped = newly = 1;
    } else if (r == 0) {
      rc = 0;
    } else if (r == -ECHILD) {
      /* Someone else reaped it (SIGCHLD set to SIG_IGN, or a stray
       * waitpid(-1)). It is gone; its status is lost. */
      p->status = 255;
      p->reaped = newly = 1;
      bl__child_forget(p->pid);
    } else {
      rc = (int)r;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (newly) {
    pthread_mutex_lock(&set_mu);
    set_remove_locked(p);
    pthread_mutex_unlock(&set_mu);
  }
  return rc;
}

/* Reap children whose handles were freed while they still ran (like
 * multiprocessing's _cleanup at each start), so none stays a zombie. */
static void sweep_detached(void) {
  pid_t me = getpid();
  for (;;) {
    bl_process_t *found = NULL;
    pthread_mutex_lock(&set_mu);
    for (bl_process_t *q = set_head; q; q = q->next) {
      if (q->user_freed && q->owner == me && !q->reaped &&
          bl__poll_fd(q->pidfd, POLLIN, 0) == 1) {
        found = q;
        q->refs++;
        break;
      }
    }
    pthread_mutex_unlock(&set_mu);
    if (!found) return;
    (void)reap(found, 1);
    pthread_mutex_lock(&set_mu);
    unref_locked(found);
    pthread_mutex_unlock(&set_mu);
  }
}

/* ---- API ---- */

BL_API void bl_process_options_init(bl_process_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->term_grace_ms = 1000;
}

BL_API int bl_process_new(bl_process_t **pp, const char *target,
                          const void *arg, size_t len,
                          const bl_process_options_t *o) {
  BL_VALIDATE(pp, -EINVAL);
  *pp = NULL;
  BL_VALIDATE(target && *target, -EINVAL);
  BL_VALIDATE(strlen(target) <= BL_TASK_NAME_MAX, -ENAMETOOLONG);
  BL_VALIDATE(arg || len == 0, -EINVAL);
  /* Copied, and sent whole to spawn/forkserver children: cap it (as the
   * pool's 1 GiB message body) before any size arithmetic can wrap. */
  BL_VALIDATE(len <= ((size_t)1 << 30), -EMSGSIZE);
  bl_process_options_t def;
  if (!o) {
    bl_process_options_init(&def);
    o = &def;
  }
  BL_VALIDATE(o->size == sizeof *o, -EINVAL);
  for (size_t i = 0; i < BL__ARRAY_SIZE(o->reserved); i++)
    BL_VALIDATE(o->reserved[i] == 0, -EINVAL);
  BL_VALIDATE(o->term_grace_ms >= 0, -EINVAL);
#ifdef BL__HAVE_METHODS
  /* NULL = the default method, which this fixes (billiard's context). */
  int method = bl__method_resolve(o->start_method);
  if (method < 0) return -EINVAL;
#else
  int method = 0;
  if (o->start_method && strcmp(o->start_method, "fork") != 0) {
    /* spawn/forkserver fit this API (the child looks the target up by
     * name) but are not built in; anything else is a caller error. */
    if (strcmp(o->start_method, "spawn") == 0 ||
        strcmp(o->start_method, "forkserver") == 0)
      return BL_ENOTSUPPORTED;
    return -EINVAL;
  }
#endif
  pthread_once(&once, init_once);

  bl_process_t *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  p->pidfd = -1;
  p->refs = 1;
  p->owner = getpid();
  p->daemon = !!o->daemon;
  p->method = method;
  p->grace_ms = o->term_grace_ms ? o->term_grace_ms : 1000;
  p->target = bl__strdup(target);
  p->arg = malloc(len ? len : 1);
  if (p->arg && len) memcpy(p->arg, arg, len);
  p->len = len;
  /* The counter advances for every process, named or not, as billiard's. */
  pthread_mutex_lock(&set_mu);
  unsigned n = ++counter;
  if (identity[0])
    snprintf(p->ident, sizeof p->ident, "%.100s:%u", identity, n);
  else
    snprintf(p->ident, sizeof p->ident, "%u", n);
  pthread_mutex_unlock(&set_mu);
  p->name = o->name ? bl__strdup(o->name) : bl__asprintf("Process-%s", p->ident);
  if (!p->target || !p->arg || !p->name) {
    proc_destroy(p);
    return -ENOMEM;
  }
  *pp = p;
  return 0;
}

BL_API int bl_process_add_handle(bl_process_t *p, bl_handle_kind_t kind,
                                 const void *obj) {
  BL_VALIDATE(p && obj, -EINVAL);
  if (p->state != ST_NEW || p->owner != getpid()) return BL_ESTATE;
  int fds[2] = {-1, -1};
  int n = bl__handle_export((int)kind, obj, fds);
  if (n < 0) return n;
  if (p->nh + (size_t)n > BL__MAX_HANDLES) return -E2BIG;
  size_t first = p->nh;
  for (int i = 0; i < n; i++) {
    int rc = BL_FAULT("process/handle/dup", EMFILE);
    int d = rc ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      if (!rc) rc = -errno;
      while (p->nh > first) bl__close(&p->hfds[--p->nh]);
      return rc;
    }
    p->hfds[p->nh++] = d;
  }
  return (int)first;
}

/* The child side of start: find the target, tell the parent, run it. */
_Noreturn static void child_main(bl_process_t *p, int status_w) {
  p->pid = getpid();
  p->state = ST_STARTED;
  /* This child's own children are Process-<its identity>:N, from 1. The
   * child is single-threaded here: no lock needed. */
  snprintf(identity, sizeof identity, "%.120s", p->ident);
  counter = 0;
#ifdef BL__HAVE_PROCINFO
  bl__procinfo_set(p->name, p->owner);
#endif
  bl__handles_set(p->hfds, p->nh);

  bl_target_fn fn = NULL;
  int32_t status = bl_lookup_target(p->target, &fn);
  /* Report explicitly, 0 included: EOF cannot mean success here, because
   * without an exec a child forked meanwhile by another thread inherits
   * the write end and keeps it open. 4 bytes are written atomically. */
  (void)bl__write_full(status_w, &status, sizeof status);
  if (status) bl__child_exit(1);
  bl__close(&status_w);
  int code = fn(p->arg, p->len);
  /* As billiard's _bootstrap: flush stdio, tear down daemon children. */
  (void)bl_process_teardown();
  fflush(NULL);
  bl__child_exit(code & 0xff);
}

/* Wait for the child's start report on the status pipe: 0 (running its
 * target), its error code, or BL_EPROCESS if it died without reporting.
 * The pidfd is watched too, since other holders of the pipe's write end
 * (children forked meanwhile by other threads) would delay EOF. */
static int wait_status(int rfd, int pidfd) {
  for (;;) {
    struct pollfd pf[2] = {{.fd = rfd, .events = POLLIN},
                           {.fd = pidfd, .events = POLLIN}};
    int n = poll(pf, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (pf[0].revents || (pf[1].revents && bl__poll_fd(rfd, POLLIN, 0) == 1)) {
      int32_t code = 0;
      int rc = bl__read_full(rfd, &code, sizeof code);
      if (rc == BL_EEOF) return BL_EPROCESS; /* died before reporting */
      if (rc) return rc;
      return code <= 0 ? code : BL_EPROCESS;
    }
    if (pf[1].revents) return BL_EPROCESS; /* exited, nothing written */
  }
}

BL_API int bl_process_start(bl_process_t *p) {
  BL_VALIDATE(p, -EINVAL);
  if (p->state != ST_NEW) return BL_ESTATE; /* "cannot start a process twice" */
  if (p->owner != getpid()) return BL_ESTATE; /* "can only start a process
                                                 object created by the
                                                 current process" */
  sweep_detached();

  /* The status pipe (libuv's exec-status pipe, without an exec): the child
   * writes an error code if it cannot run the target, or closes its end
   * once it can; the parent waits for one or the other. */
  int sp[2] = {-1, -1};
  int rc = BL_FAULT("process/start/status-pipe", EMFILE);
  if (rc == 0) rc = bl__pipe(sp);
  if (rc) return rc;

  pid_t pid;
#ifdef BL__HAVE_METHODS
  /* spawn and forkserver children find the target by name in a fresh
   * image and report on the same status pipe (startmethod.h). */
  bl__boot_t boot = {.target = p->target, .name = p->name, .ident = p->ident,
                     .arg = p->arg, .len = p->len, .parent = getpid(),
                     .fds = p->hfds, .nfds = p->nh};
  if (p->method == BL__M_FORKSERVER) {
    rc = bl__forkserver_start(&boot, sp[1], &pid);
    bl__close(&sp[1]);
    if (rc) {
      bl__close(&sp[0]);
      return rc;
    }
  } else
#endif
  {
    pid = bl__fork(SIGKILL);
    if (pid < 0) {
      bl__close(&sp[0]);
      bl__close(&sp[1]);
      return (int)pid;
    }
    if (pid == 0) {
      bl__close(&sp[0]);
#ifdef BL__HAVE_METHODS
      if (p->method == BL__M_SPAWN) bl__spawn_exec(&boot, sp[1]);
#endif
      child_main(p, sp[1]);
    }
    bl__close(&sp[1]);
  }

  int pidfd = BL_FAULT("process/start/pidfd", EMFILE);
  if (pidfd == 0) pidfd = bl__pidfd_open(pid);
  rc = pidfd < 0 ? pidfd : wait_status(sp[0], pidfd);
  bl__close(&sp[0]);
  if (rc) {
    /* Not started: make sure nothing is left running or unreaped. The pid
     * is still ours (not yet reaped), so kill() cannot hit another process. */
    kill(pid, SIGKILL);
    int st;
    (void)bl__waitpid(pid, &st, 0);
    if (pidfd >= 0) close(pidfd);
    return rc;
  }

  pthread_mutex_lock(&set_mu);
  pthread_mutex_lock(&p->mu);
  p->pid = pid;
  p->pidfd = pidfd;
  p->state = ST_STARTED;
  pthread_mutex_unlock(&p->mu);
  close_handles(p); /* the child has them now */
  p->next = set_head;
  set_head = p;
  p->in_set = 1;
  p->refs++;
  pthread_mutex_unlock(&set_mu);
  return 0;
}

/* Common entry checks for calls that need a started, open child of ours. */
static int check_child(bl_process_t *p) {
  if (p->state != ST_STARTED) return BL_ESTATE;
  if (p->pid == getpid()) return BL_ESTATE;   /* "can't join itself" */
  if (p->owner != getpid()) return BL_ESTATE; /* "can only join a child" */
  return 0;
}

BL_API int bl_process_join(bl_process_t *p, int timeout_ms) {
  BL_VALIDATE(p, -EINVAL);
  int rc = check_child(p);
  if (rc) return rc;
  pthread_mutex_lock(&p->mu);
  int done = p->reaped;
  pthread_mutex_unlock(&p->mu);
  if (done) return 0;
  /* The pidfd stays open until close/free, so another thread reaping in
   * the meantime cannot make us poll a reused fd number. */
  rc = bl__poll_fd(p->pidfd, POLLIN, timeout_ms < 0 ? -1 : timeout_ms);
  if (rc < 0) return rc;
  if (rc == 0) return BL_ETIMEOUT;
  rc = reap(p, 1);
  return rc < 0 ? rc : 0;
}

BL_API int bl_process_is_alive(bl_process_t *p) {
  BL_VALIDATE(p, -EINVAL);
  if (p->state == ST_STARTED && p->pid == getpid()) return 1; /* itself */
  if (p->state != ST_STARTED) return 0;
  if (p->owner != getpid()) return BL_ESTATE; /* "can only test a child" */
  int rc = reap(p, 0);
  return rc < 0 ? rc : !rc;
}

BL_API int bl_process_exitcode(bl_process_t *p, int *code) {
  BL_VALIDATE(p && code, -EINVAL);
  int rc = check_child(p);
  if (rc) return rc;
  rc = reap(p, 0);
  if (rc < 0) return rc;
  if (rc == 0) return BL_ESTATE; /* still running: billiard's None */
  pthread_mutex_lock(&p->mu);
  *code = p->status;
  pthread_mutex_unlock(&p->mu);
  return 0;
}

BL_API pid_t bl_process_pid(const bl_process_t *p) { return p ? p->pid : 0; }
BL_API const char *bl_process_name(const bl_process_t *p) {
  return p ? p->name : NULL;
}
BL_API int bl_process_daemon(const bl_process_t *p) { return p && p->daemon; }
BL_API int bl_process_sentinel(const bl_process_t *p) {
  return p && p->state == ST_STARTED ? p->pidfd : -1;
}

static int send_sig(bl_process_t *p, int sig) {
  BL_VALIDATE(p, -EINVAL);
  int rc = check_child(p);
  if (rc) return rc;
  pthread_mutex_lock(&p->mu);
  /* After waitpid the pid may already name another process: never signal.
   * Before it, the pidfd pins this child, and pidfd_send_signal fails with
   * ESRCH once it is reaped, so a reap racing with us is harmless too. */
  rc = p->reaped ? 0 : bl__pidfd_signal(p->pidfd, sig);
  pthread_mutex_unlock(&p->mu);
  return rc == -ESRCH ? 0 : rc;
}

BL_API int bl_process_terminate(bl_process_t *p) { return send_sig(p, SIGTERM); }
BL_API int bl_process_kill(bl_process_t *p) { return send_sig(p, SIGKILL); }

BL_API int bl_process_close(bl_process_t *p) {
  BL_VALIDATE(p, -EINVAL);
  if (p->state == ST_STARTED && p->owner == getpid()) {
    int rc = reap(p, 0);
    if (rc < 0) return rc;
    if (rc == 0) return BL_ESTATE; /* "Cannot close a process while it is still running" */
  }
  pthread_mutex_lock(&p->mu);
  bl__close(&p->pidfd);
  p->state = ST_CLOSED;
  pthread_mutex_unlock(&p->mu);
  return 0;
}

BL_API void bl_process_free(bl_process_t **pp) {
  if (!pp || !*pp) return;
  bl_process_t *p = *pp;
  *pp = NULL;
  if (p->state == ST_STARTED && p->owner == getpid()) (void)reap(p, 0);
  pthread_mutex_lock(&set_mu);
  /* A child still running stays in the set (which holds its own ref) to
   * be reaped by a later start or by teardown. */
  p->user_freed = 1;
  unref_locked(p);
  pthread_mutex_unlock(&set_mu);
}

BL_API int bl_process_teardown(void) {
  pid_t me = getpid();
  bl_process_t *list[64];
  int total = 0;
  /* Batches, so that an arbitrary number of daemons needs no allocation. */
  for (;;) {
    size_t n = 0;
    pthread_mutex_lock(&set_mu);
    for (bl_process_t *q = set_head; q && n < BL__ARRAY_SIZE(list); q = q->next) {
      if (q->daemon && q->owner == me && !q->reaped && !q->torn) {
        q->torn = 1;
        q->refs++;
        list[n++] = q;
      }
    }
    pthread_mutex_unlock(&set_mu);
    if (n == 0) break;
    uint64_t now = bl_monotonic_ns();
    for (size_t i = 0; i < n; i++) (void)send_sig(list[i], SIGTERM);
    for (size_t i = 0; i < n; i++) {
      uint64_t deadline = now + (uint64_t)list[i]->grace_ms * BL__NS_PER_MS;
      uint64_t t = bl_monotonic_ns();
      int left = t >= deadline ? 0 : (int)((deadline - t) / BL__NS_PER_MS);
      if (bl__poll_fd(list[i]->pidfd, POLLIN, left) != 1)
        (void)send_sig(list[i], SIGKILL);
      (void)reap(list[i], 1);
    }
    pthread_mutex_lock(&set_mu);
    for (size_t i = 0; i < n; i++) unref_locked(list[i]);
    pthread_mutex_unlock(&set_mu);
    total += (int)n;
  }
  sweep_detached();
  return total;
}

#ifdef BL__HAVE_PROCINFO
/* A spawn/forkserver child (spawn.c): single-threaded before its target. */
void bl__process_set_identity(const char *ident) {
  snprintf(identity, sizeof identity, "%.120s", ident ? ident : "");
  counter = 0;
}

/* For bl_active_children (util.c): reap exited children of this process's
 * set, then list the live ones. */
int bl__process_active(bl_process_info_t *out, size_t cap, size_t *n) {
  pid_t me = getpid();
  size_t cnt = 0;
  pthread_mutex_lock(&set_mu);
  for (bl_process_t *q = set_head; q; q = q->next)
    if (q->owner == me) cnt++;
  bl_process_t **all = calloc(cnt ? cnt : 1, sizeof *all);
  if (!all) {
    pthread_mutex_unlock(&set_mu);
    return -ENOMEM;
  }
  size_t k = 0;
  for (bl_process_t *q = set_head; q && k < cnt; q = q->next)
    if (q->owner == me) {
      q->refs++;
      all[k++] = q;
    }
  pthread_mutex_unlock(&set_mu);
  *n = 0;
  int rc = 0;
  for (size_t i = 0; i < k; i++) {
    int r = reap(all[i], 0);
    if (r < 0 && rc == 0) rc = r;
    if (r == 0) {
      if (*n < cap) {
        out[*n].pid = all[i]->pid;
        snprintf(out[*n].name, sizeof out[*n].name, "%s", all[i]->name);
      }
      (*n)++;
    }
  }
  pthread_mutex_lock(&set_mu);
  for (size_t i = 0; i < k; i++) unref_locked(all[i]);
  pthread_mutex_unlock(&set_mu);
  free(all);
  return rc;
}
#endif
