/* supervisor.c: the pool's one event loop and the lives of its workers.
 *
 * One thread at a time "steps" the pool: it blocks in one place,
 * epoll_wait over every worker's result pipe and pidfd, the submission
 * eventfd (and, with threads = 0, a timerfd for the next deadline), with a
 * timeout derived from the nearest time limit. Then, under the pool lock,
 * it routes results, reaps dead workers (draining their result pipe first,
 * so a result written before death is delivered), applies time limits,
 * replaces workers and dispatches queued work. Callbacks run after the
 * lock is released.
 *
 *        submit ──eventfd──┐       ┌── result pipe (ACK/READY/FAIL) ×N
 *                          ▼       ▼
 *                 ┌──── epoll_wait(timeout = nearest deadline) ◄── pidfd ×N
 *                 │        │ (lock)
 *                 │        ├─ results  → resolve jobs (exactly once)
 *                 │        ├─ pidfd    → drain, reap, fail the job it ran,
 *                 │        │             requeue the ones it never started,
 *                 │        │             restart limiter, respawn
 *                 │        ├─ limits   → SIGUSR1 / TimeLimitExceeded+SIGTERM
 *                 │        │             → SIGKILL after the grace period
 *                 │        └─ dispatch → TASK frames into per-worker pipes
 *                 └──────── (unlock) run deferred callbacks */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "internal.h"
#include "poolint.h"
#include "startmethod.h"

#define BL__SPAWN_RETRY_MS 50
#define BL__BACKOFF_MS 25
#define BL__BACKOFF_MAX_MS 250
#define BL__CUSTOM_CLOCK_CAP_MS 250

/* N of ForkPoolWorker-N: every pool worker this process starts. */
static atomic_uint worker_counter;

static int ep_add(bl_pool_t *p, int fd, uint32_t ev, struct bl__tag *tag) {
  struct epoll_event e = {.events = ev, .data.ptr = tag};
  int rc = BL_FAULT("supervisor/epoll/add", ENOMEM);
  if (rc) return rc;
  return epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &e) == 0 ? 0 : -errno;
}

int bl__sv_init(bl_pool_t *p) {
  int rc = BL_FAULT("supervisor/epoll/create", EMFILE);
  if (rc) return rc;
  p->ep = epoll_create1(EPOLL_CLOEXEC);
  if (p->ep < 0) return -errno;
  rc = BL_FAULT("supervisor/eventfd/create", EMFILE);
  if (rc) return rc;
  p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->evfd < 0) return -errno;
  if (p->o.threads) {
    /* Only a thread other than the driver can wait on a worker's pipe
     * itself (see claim_wait in pool.c). */
    rc = BL_FAULT("supervisor/eventfd/cwake", EMFILE);
    if (rc) return rc;
    p->cwake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->cwake < 0) return -errno;
  }
  p->tag_ev.kind = BL__TAG_EVENT;
  if ((rc = ep_add(p, p->evfd, EPOLLIN, &p->tag_ev))) return rc;
  if (!p->o.threads) {
    /* The caller polls our epoll fd: deadlines must make it readable. */
    rc = BL_FAULT("supervisor/timerfd/create", EMFILE);
    if (rc) return rc;
    p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (p->tfd < 0) return -errno;
    p->tag_timer.kind = BL__TAG_TIMER;
    if ((rc = ep_add(p, p->tfd, EPOLLIN, &p->tag_timer))) return rc;
  }
  p->spawn_retry_at = 0;
  return 0;
}

static void free_worker(struct bl__worker *w) {
  bl__close(&w->st_fd);
  bl__close(&w->task_fd);
  bl__close(&w->task_rd);
  bl__close(&w->res_fd);
  bl__close(&w->pidfd);
  if (w->shm) munmap(w->shm, sizeof *w->shm);
  bl__buf_free(&w->out);
  bl__buf_free(&w->in);
  free(w);
}

static void free_dead(bl_pool_t *p) {
  while (p->dead) {
    struct bl__worker *w = p->dead;
    p->dead = w->next_dead;
    free_worker(w);
  }
}

void bl__sv_fini(bl_pool_t *p) {
  free_dead(p);
  for (size_t i = 0; i < p->nw; i++) free_worker(p->w[i]); /* NEVER: joined */
  p->nw = 0;
  bl__close(&p->tfd);
  bl__close(&p->evfd);
  bl__close(&p->cwake);
  bl__close(&p->ep);
}

void bl__sv_signal(bl_pool_t *p, struct bl__worker *w, int sig) {
  (void)p;
  /* pidfd: a reaped (and possibly recycled) pid is never hit. */
  if (w->pidfd >= 0) bl__pidfd_signal(w->pidfd, sig);
}

/* The hard limit's SIGTERM/SIGKILL: to the worker's whole process group
 * when it leads one (a task called setpgid/setsid), so that the task's own
 * children die too, as billiard does; else to the worker alone. The worker
 * is not reaped while its pidfd is open, so its pid (= the group id) cannot
 * have been recycled. */
static void signal_tree(bl_pool_t *p, struct bl__worker *w, int sig) {
  if (w->pidfd >= 0 && getpgid(w->pid) == w->pid && killpg(w->pid, sig) == 0)
    return;
  bl__sv_signal(p, w, sig);
}

void bl__sv_close_res(bl_pool_t *p, struct bl__worker *w) {
  if (!w->res_open) return;
  if (w->res_in_ep) epoll_ctl(p->ep, EPOLL_CTL_DEL, w->res_fd, NULL);
  w->res_in_ep = 0;
  w->res_open = 0;
}

void bl__sv_arm_out(bl_pool_t *p, struct bl__worker *w, int on) {
  if (on == w->out_armed || w->task_fd < 0) return;
  if (on) {
    if (ep_add(p, w->task_fd, EPOLLOUT, &w->tag_task) == 0) w->out_armed = 1;
  } else {
    epoll_ctl(p->ep, EPOLL_CTL_DEL, w->task_fd, NULL);
    w->out_armed = 0;
  }
}

size_t bl__sv_live(const bl_pool_t *p) {
  size_t n = 0;
  for (size_t i = 0; i < p->nw; i++)
    n += !p->w[i]->stop_sent && !p->w[i]->doomed;
  return n;
}

/* The shared page: anonymous for fork; a memfd (*mfd) that a spawn or
 * forkserver worker maps again in its new image. */
static int map_shm(bl_pool_t *p, struct bl__worker *w, int *mfd) {
  int fd = -1;
  if (p->method != BL__M_FORK) {
    int e = BL_FAULT("supervisor/spawn/memfd", EMFILE);
    if (e) return e;
    fd = memfd_create("billiard-worker", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    e = BL_FAULT("supervisor/spawn/ftruncate", ENOMEM);
    if (e || ftruncate(fd, sizeof *w->shm) != 0) {
      if (!e) e = -errno;
      close(fd);
      return e;
    }
  }
  int frc = BL_FAULT("supervisor/spawn/mmap", ENOMEM);
  void *m = frc ? MAP_FAILED
                : mmap(NULL, sizeof *w->shm, PROT_READ | PROT_WRITE,
                       fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    int e = frc ? frc : -errno;
    if (fd >= 0) close(fd);
    return e;
  }
  w->shm = m;
  *mfd = fd;
  return 0;
}

/* spawn/forkserver: start a worker whose loop runs in a fresh image of the
 * program (startmethod.h). Its task/result pipe ends, the shared page and
 * the pool's arena travel as fds at the same numbers, everything else in
 * the boot bytes.
 * The start status arrives on w->st_fd; only the first workers wait for
 * it (so that bl_pool_new reports a start failure), later ones are not
 * waited for: a worker that cannot start exits 1 like a crashing one. */
static int start_fresh(bl_pool_t *p, struct bl__worker *w, int task_r,
                       int res_w, int mfd, pid_t *pid) {
  const char *init = p->o.initializer ? p->o.initializer : "";
  int afd = p->arena ? bl__arena_fd(p->arena) : -1;
  struct bl__worker_boot wb = {
      .task_fd = task_r, .res_fd = res_w, .shm_fd = mfd, .arena_fd = afd,
      .arena_size = afd >= 0 ? bl__arena_size(p->arena) : 0,
      .maxtasks = p->o.maxtasksperchild,
      .max_mem_kib = p->o.max_memory_per_child_kib,
      .init_len = (uint32_t)strlen(init), .initarg_len = p->o.initarg_len};
  size_t len = sizeof wb + wb.init_len + p->o.initarg_len;
  char *arg = malloc(len);
  if (!arg) return -ENOMEM;
  memcpy(arg, &wb, sizeof wb);
  memcpy(arg + sizeof wb, init, wb.init_len);
  if (p->o.initarg_len) memcpy(arg + sizeof wb + wb.init_len, p->o.initarg, p->o.initarg_len);
  char name[64];
  snprintf(name, sizeof name, "%s-%u", bl__pool_worker_prefix(p), w->no);
  int fds[4] = {task_r, res_w, mfd, afd};
  bl__boot_t b = {.target = BL__POOL_WORKER_TARGET, .name = name, .arg = arg,
                  .len = len, .parent = getpid(), .fds = fds,
                  .nfds = afd >= 0 ? 4 : 3};
  int st[2] = {-1, -1};
  int rc = bl__pipe(st);
  if (rc == 0 && p->method == BL__M_FORKSERVER) {
    rc = bl__forkserver_start(&b, st[1], pid);
  } else if (rc == 0) {
    pid_t c = bl__fork(SIGKILL);
    if (c == 0) {
      /* Everything else of the pool's is close-on-exec. */
      close(st[0]);
      bl__spawn_exec(&b, st[1]);
    }
    if (c < 0) rc = (int)c;
    else *pid = c;
  }
  free(arg);
  bl__close(&st[1]);
  if (rc) bl__close(&st[0]);
  w->st_fd = st[0];
  return rc;
}

/* The first workers: wait for the start status (int32 0 or the error),
 * or for the worker's death. */
static int wait_started(struct bl__worker *w) {
  for (;;) {
    struct pollfd pf[2] = {{.fd = w->st_fd, .events = POLLIN},
                           {.fd = w->pidfd, .events = POLLIN}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (pf[0].revents || bl__poll_fd(w->st_fd, POLLIN, 0) == 1) {
      int32_t code = 0;
      int rc = bl__read_full(w->st_fd, &code, sizeof code);
      if (rc) return rc == BL_EEOF ? BL_EPROCESS : rc;
      return code <= 0 ? code : BL_EPROCESS;
    }
    if (pf[1].revents) return BL_EPROCESS;
  }
}

int bl__sv_spawn(bl_pool_t *p) {
  if (p->nw == p->capw) {
    size_t nc = p->capw ? p->capw * 2 : 8;
    struct bl__worker **n = realloc(p->w, nc * sizeof *n);
    if (!n) return -ENOMEM;
    p->w = n;
    p->capw = nc;
  }
  struct bl__worker *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  /* Reachable from the pool even in a child killed before it is listed
   * (valgrind would call it lost). */
  p->w[p->nw] = w;
  w->pidfd = w->task_fd = w->task_rd = w->res_fd = w->st_fd = -1;
  w->kill_at = BL__TL_NEVER;
  bl__tl_stop(&w->tl);
  int tp[2] = {-1, -1}, rp[2] = {-1, -1}, mfd = -1, rc;
  if ((rc = map_shm(p, w, &mfd))) goto fail;
  atomic_init(&w->shm->soft_seq, 0);
  atomic_init(&w->shm->started_seq, 0);
  if ((rc = bl__pipe(tp)) || (rc = bl__pipe(rp))) goto fail;
  pid_t pid = 0;
  if (p->method != BL__M_FORK) {
    w->no = atomic_fetch_add(&worker_counter, 1) + 1;
    rc = start_fresh(p, w, tp[0], rp[1], mfd, &pid);
    bl__close(&mfd);
    if (rc) goto fail;
  } else {
    pid = bl__fork(SIGKILL);
    if (pid < 0) {
      rc = pid;
      goto fail;
    }
  }
  if (pid == 0) {
    /* Child: drop the parent's side of every pool fd it inherited. */
    close(tp[1]);
    close(rp[0]);
    for (size_t i = 0; i < p->nw; i++) {
      bl__close(&p->w[i]->task_fd);
      bl__close(&p->w[i]->task_rd);
      bl__close(&p->w[i]->res_fd);
      bl__close(&p->w[i]->pidfd);
    }
    bl__close(&p->ep);
    bl__close(&p->evfd);
    bl__close(&p->tfd);
    bl__close(&p->cwake);
    struct bl__worker_cfg cfg = {
        .task_fd = tp[0], .res_fd = rp[1], .shm = w->shm,
        .arena = p->arena ? bl__arena_base(p->arena) : NULL,
        .arena_size = p->arena ? bl__arena_size(p->arena) : 0,
        .initializer = p->o.initializer, .initarg = p->o.initarg,
        .initarg_len = p->o.initarg_len, .maxtasks = p->o.maxtasksperchild,
        .max_mem_kib = p->o.max_memory_per_child_kib,
        .on_exit = p->o.on_process_exit, .user = p->o.user};
    bl__worker_main(&cfg);
  }
  bl__close(&rp[1]);
  w->task_rd = tp[0];
  tp[0] = -1;
  w->pid = pid;
  if (!w->no) w->no = atomic_fetch_add(&worker_counter, 1) + 1;
  w->task_fd = tp[1];
  w->res_fd = rp[0];
  tp[1] = rp[0] = -1; /* now owned by w */
  w->pidfd = bl__pidfd_open(pid);
  if (w->pidfd >= 0 && w->st_fd >= 0 && !p->started) rc = wait_started(w);
  if (w->pidfd < 0 || rc) {
    /* Our unreaped child: its pid cannot have been recycled yet. */
    if (!rc) rc = w->pidfd;
    kill(pid, SIGKILL);
    bl__waitpid(pid, NULL, 0);
    goto fail;
  }
  bl__set_nonblock(w->task_fd, 1);
  bl__set_nonblock(w->res_fd, 1);
  w->tag_res = (struct bl__tag){BL__TAG_RES, w};
  w->tag_pid = (struct bl__tag){BL__TAG_PID, w};
  w->tag_task = (struct bl__tag){BL__TAG_TASK, w};
  if ((rc = ep_add(p, w->res_fd, EPOLLIN, &w->tag_res)) ||
      (rc = ep_add(p, w->pidfd, EPOLLIN, &w->tag_pid))) {
    bl__pidfd_signal(w->pidfd, SIGKILL);
    bl__waitpid(pid, NULL, 0);
    epoll_ctl(p->ep, EPOLL_CTL_DEL, w->res_fd, NULL);
    goto fail;
  }
  w->res_open = w->res_in_ep = 1;
  p->w[p->nw++] = w;
  bl__pool_defer(p, BL__DEF_UP, NULL, pid, 0);
  return 0;
fail:
  bl__close(&mfd);
  bl__close(&tp[0]);
  bl__close(&tp[1]);
  bl__close(&rp[0]);
  bl__close(&rp[1]);
  free_worker(w);
  return rc;
}

/* "signal 9 (SIGKILL)" or "exitcode 7", as billiard prints a lost worker. */
static void status_str(int status, char *buf, size_t cap) {
  if (status < 0) {
    const char *abbrev = sigabbrev_np(-status);
    snprintf(buf, cap, "signal %d (SIG%s)", -status, abbrev ? abbrev : "UNKNOWN");
  } else {
    snprintf(buf, cap, "exitcode %d", status);
  }
}

static void remove_worker(bl_pool_t *p, struct bl__worker *w) {
  for (size_t i = 0; i < p->nw; i++) {
    if (p->w[i] != w) continue;
    memmove(&p->w[i], &p->w[i + 1], (p->nw - i - 1) * sizeof *p->w);
    p->nw--;
    break;
  }
  w->next_dead = p->dead;
  p->dead = w;
  p->bcast = 1; /* join waits for the worker count */
}

void bl__sv_break(bl_pool_t *p, int code, const char *msg) {
  if (p->state == BL_POOL_BROKEN || p->state == BL_POOL_TERMINATE) return;
  p->state = BL_POOL_BROKEN;
  bl__pool_sub_drain(p, 1); /* accepted before the trip: failed below */
  p->broken_code = code;
  bl_error_info_set(&p->broken, code, bl_err_exception(code), msg, NULL);
  bl__pool_fail_queue(p, code, msg);
  for (size_t i = 0; i < p->nw; i++) {
    struct bl__worker *w = p->w[i];
    if (w->stop_sent) continue;
    w->stop_sent = 1;
    bl__pw_put_simple(&w->out, BL__PW_STOP, 0, 0);
    if (!w->out_armed && bl__pool_flush(p, w) == 1) bl__sv_arm_out(p, w, 1);
  }
  bl__pool_defer(p, BL__DEF_BROKEN, NULL, 0, code);
}

/* A worker's pidfd became readable: it has exited. */
static void on_worker_exit(bl_pool_t *p, struct bl__worker *w) {
  bl__pool_on_readable(p, w); /* results written before death count */
  bl__sv_close_res(p, w);
  bl__pool_catch_up(p, w); /* it started one whose ACK never came */
  int st = 0, status = 0;
  /* bl__waitpid also forgets the death pipe that stands in for a pidfd
   * where pidfds are missing (valgrind). */
  pid_t r = bl__waitpid(w->pid, &st, 0);
  if (r == w->pid) status = WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
  epoll_ctl(p->ep, EPOLL_CTL_DEL, w->pidfd, NULL);
  bl__sv_arm_out(p, w, 0);
  bl__close(&w->pidfd); /* from here on nothing can signal it */
  char why[64], msg[160];
  status_str(status, why, sizeof why);
  struct bl__unit *head = NULL, *tail = NULL, *u = w->if_head, *next;
  size_t nre = 0;
  for (; u; u = next) {
    next = u->next;
    u->next = NULL;
    if (u->state == BL__U_ACKED) {
      /* The job it was running is lost: exactly this one fails. Map
       * chunks it finished but still held (BL__PW_F_BATCH) are of the
       * same job as the running one: terminated, if that one was. */
      if (!w->running_resolved && !u->cancelled) {
        if (w->term_unit && w->term_unit->job == u->job) {
          snprintf(msg, sizeof msg, "%d", status < 0 ? -status : status);
          bl__pool_fail_unit(p, u, BL_ETERMINATED, NULL, msg);
        } else {
          snprintf(msg, sizeof msg, "Worker exited prematurely: %s Job: %llu.",
                   why, (unsigned long long)u->job->id);
          bl__pool_fail_unit(p, u, BL_EWORKERLOST, NULL, msg);
        }
      }
      bl__pool_unit_done(p, u);
      continue;
    }
    /* Never started: it runs elsewhere, in its original order. */
    if (tail) tail->next = u;
    else head = u;
    tail = u;
    nre++;
  }
  w->if_head = w->if_tail = NULL;
  w->nif = 0;
  w->running = NULL;
  bl__pool_requeue_front(p, head, tail, nre);
  if (p->state == BL_POOL_TERMINATE)
    bl__pool_fail_queue(p, BL_ETERMINATED, "Pool terminated");
  else if (p->state == BL_POOL_BROKEN)
    bl__pool_fail_queue(p, p->broken_code, p->broken.message);
  int counted = status != 0 && status != 155 && !w->stop_sent &&
                (p->state == BL_POOL_RUN || p->state == BL_POOL_CLOSE);
  pid_t pid = w->pid;
  remove_worker(p, w);
  bl__pool_defer(p, BL__DEF_DOWN, NULL, pid, status);
  if (counted) {
    uint64_t now = bl__pool_now(p);
    p->crash_streak++;
    if (bl__restart_step(&p->rs, now) != 0) {
      char m[64];
      bl__restart_message(&p->rs, p->rs.max_r, m, sizeof m);
      bl__sv_break(p, BL_ERESTARTFREQ, m);
    } else if (p->crash_streak >= 2) {
      /* Crash loop: a second counted exit with no job accepted since the
       * last one. Back off (25, 50, 100, 200, then 250 ms) so that a broken
       * initializer neither burns a CPU (limiter off) nor trips the limiter
       * before the caller could submit; the first replacement stays
       * immediate. */
      unsigned k = p->crash_streak - 2;
      uint64_t ms = k >= 4 ? BL__BACKOFF_MAX_MS : (uint64_t)BL__BACKOFF_MS << k;
      /* Never slower than twice the rate the limiter allows, so that a
       * crash loop still trips it (50 in 10 s: at most 100 ms apart). */
      uint64_t cap = BL__BACKOFF_MAX_MS;
      if (p->rs.max_r) {
        uint64_t lim = p->rs.max_t_ns / BL__NS_PER_MS / (2 * (uint64_t)p->rs.max_r);
        if (lim < cap) cap = lim ? lim : 1;
      }
      if (ms > cap) ms = cap;
      uint64_t at = now + ms * BL__NS_PER_MS;
      if (at > p->spawn_retry_at) p->spawn_retry_at = at;
    }
  }
}

void bl__sv_maintain(bl_pool_t *p) {
  if (p->state == BL_POOL_BROKEN || p->state == BL_POOL_TERMINATE) return;
  size_t want = p->target;
  if (p->state == BL_POOL_CLOSE) {
    if (!p->q_head) {
      /* Nothing left to hand out: each worker finishes its pipe, then
       * stops (exit 0, no fixed sleep). */
      for (size_t i = 0; i < p->nw; i++) {
        struct bl__worker *w = p->w[i];
        if (w->stop_sent || w->doomed) continue;
        w->stop_sent = 1;
        bl__pw_put_simple(&w->out, BL__PW_STOP, 0, 0);
        if (!w->out_armed && bl__pool_flush(p, w) == 1) bl__sv_arm_out(p, w, 1);
      }
      return;
    }
  }
  size_t live = bl__sv_live(p);
  uint64_t now = bl__pool_now(p);
  while (live < want && now >= p->spawn_retry_at) {
    if (bl__sv_spawn(p) != 0) {
      p->spawn_retry_at = now + BL__SPAWN_RETRY_MS * BL__NS_PER_MS;
      break;
    }
    live++;
  }
}

/* Apply due time limits and kill escalations; return the next deadline. */
static uint64_t apply_limits(bl_pool_t *p, uint64_t now) {
  uint64_t next = BL__TL_NEVER;
  for (size_t i = 0; i < p->nw; i++) {
    struct bl__worker *w = p->w[i];
    if (w->running && !w->running_resolved && bl__tl_next(&w->tl) <= now &&
        !w->claimed) {
      /* A result may already wait in the pipe: read it before judging. */
      bl__pool_on_readable(p, w);
    }
    if (w->running && !w->running_resolved) {
      bl__tl_action_t a = bl__tl_due(&w->tl, now);
      bl_result_t *r = w->running->job;
      if (a == BL__TL_SOFT) {
        atomic_store(&w->shm->soft_seq, w->running->seq);
        bl__sv_signal(p, w, SIGUSR1);
      } else if (a == BL__TL_HARD) {
        char msg[64];
        snprintf(msg, sizeof msg, "TimeLimitExceeded(%g,)", r->hard_ms / 1000.0);
        bl__pool_fail_unit(p, w->running, BL_ETIMELIMIT, NULL, msg);
        w->running_resolved = 1;
        w->doomed = 1;
        signal_tree(p, w, SIGTERM);
        w->kill_at = now + (uint64_t)p->o.kill_grace_ms * BL__NS_PER_MS;
      }
      uint64_t t = bl__tl_next(&w->tl);
      if (t < next) next = t;
    }
    if (w->kill_at != BL__TL_NEVER) {
      if (now >= w->kill_at) {
        signal_tree(p, w, SIGKILL);
        w->kill_at = BL__TL_NEVER;
      } else if (w->kill_at < next) {
        next = w->kill_at;
      }
    }
  }
  if (p->spawn_retry_at > now && p->spawn_retry_at < next &&
      bl__sv_live(p) < p->target)
    next = p->spawn_retry_at;
  return next;
}

static uint64_t housekeeping(bl_pool_t *p) {
  uint64_t now = bl__pool_now(p);
  uint64_t next = apply_limits(p, now);
  bl__sv_maintain(p);
  bl__pool_dispatch(p);
  free_dead(p);
  return next;
}

static void run_defs(bl_pool_t *p, struct bl__defer *d, size_t n) {
  const bl_pool_options_t *o = &p->o;
  for (size_t i = 0; i < n; i++) {
    bl_result_t *r = d[i].job;
    switch (d[i].kind) {
    case BL__DEF_RESOLVED:
      if (r->code == 0 && r->ao.callback) {
        if (r->kind == BL__JOB_APPLY) r->ao.callback(r, r->item1.p, r->item1.len, r->ao.user);
        else r->ao.callback(r, NULL, r->nitems, r->ao.user);
      } else if (r->code && r->ao.error_callback) {
        r->ao.error_callback(r, &r->err, r->ao.user);
      }
      if (r->timeout_set && o->on_timeout_cancel) o->on_timeout_cancel(p, r->id, o->user);
      break;
    case BL__DEF_ACCEPT:
      r->ao.accept_callback(r, d[i].pid, r->ao.user);
      break;
    case BL__DEF_TSET:
      o->on_timeout_set(p, r->id, r->soft_ms, r->hard_ms, o->user);
      break;
    case BL__DEF_UP:
      if (o->on_process_up) o->on_process_up(p, d[i].pid, o->user);
      break;
    case BL__DEF_DOWN:
      if (o->on_process_down) o->on_process_down(p, d[i].pid, d[i].status, o->user);
      break;
    case BL__DEF_BROKEN:
      if (o->on_pool_error) {
        char *m = NULL;
        pthread_mutex_lock(&p->mu);
        m = bl__strdup(p->broken.message);
        pthread_mutex_unlock(&p->mu);
        o->on_pool_error(p, d[i].status, m, o->user);
        free(m);
      }
      break;
    }
    if (r) bl__job_unref(r);
  }
}

static void arm_timer(bl_pool_t *p, int ms) {
  if (p->tfd < 0) return;
  struct itimerspec its = {0};
  if (ms >= 0) {
    uint64_t ns = ms ? (uint64_t)ms * BL__NS_PER_MS : 1;
    its.it_value.tv_sec = (time_t)(ns / BL__NS_PER_S);
    its.it_value.tv_nsec = (long)(ns % BL__NS_PER_S);
  }
  timerfd_settime(p->tfd, 0, &its, NULL);
}

int bl__sv_step(bl_pool_t *p, int timeout_ms) {
  pthread_mutex_lock(&p->mu);
  if (p->stepping) {
    /* Another thread drives the pool: wait for it to finish a step. */
    if (timeout_ms != 0) {
      struct timespec ts;
      uint64_t ms = timeout_ms < 0 || timeout_ms > 100 ? 100 : (uint64_t)timeout_ms;
      uint64_t wake = bl_monotonic_ns() + ms * BL__NS_PER_MS;
      ts.tv_sec = (time_t)(wake / BL__NS_PER_S);
      ts.tv_nsec = (long)(wake % BL__NS_PER_S);
      p->nwaiters++;
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
      p->nwaiters--;
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
  }
  p->stepping = 1;
  p->stepper = pthread_self();
  uint64_t next = housekeeping(p);
  int cap = p->o.clock ? BL__CUSTOM_CLOCK_CAP_MS : -1;
  int t = bl__tl_timeout_ms(next, bl__pool_now(p), cap);
  if (p->ndefs) t = 0;
  if (timeout_ms >= 0 && (t < 0 || timeout_ms < t)) t = timeout_ms;
  p->awake = 0;
  /* After awake is cleared (see bl__pool_kick): a job pushed since the
   * housekeeping's dispatch must not wait for the next event. */
  if (bl__pool_sub_pending(p)) t = 0;
  pthread_mutex_unlock(&p->mu);

  struct epoll_event ev[64];
  int n = epoll_wait(p->ep, ev, (int)BL__ARRAY_SIZE(ev), t);
  if (n < 0) n = 0; /* EINTR: just go round */

  pthread_mutex_lock(&p->mu);
  p->awake = 1;
  p->kicked = 0;
  for (int i = 0; i < n; i++) {
    struct bl__tag *tag = ev[i].data.ptr;
    struct bl__worker *w = tag->w;
    uint64_t junk;
    switch (tag->kind) {
    case BL__TAG_EVENT:
      while (read(p->evfd, &junk, sizeof junk) < 0 && errno == EINTR) {
      }
      break;
    case BL__TAG_TIMER:
      while (read(p->tfd, &junk, sizeof junk) < 0 && errno == EINTR) {
      }
      break;
    case BL__TAG_RES:
      bl__pool_on_readable(p, w);
      break;
    case BL__TAG_TASK:
      if (w->pidfd >= 0 && bl__pool_flush(p, w) != 1) bl__sv_arm_out(p, w, 0);
      break;
    case BL__TAG_PID:
      if (w->pidfd >= 0 && w->claimed && !w->exit_parked) {
        /* A caller reads its pipe: let it finish, then reap (unclaim
         * puts the pidfd back, still readable). */
        epoll_ctl(p->ep, EPOLL_CTL_DEL, w->pidfd, NULL);
        w->exit_parked = 1;
        bl__pool_wake_claimer(p);
      } else if (w->pidfd >= 0 && !w->exit_parked) {
        on_worker_exit(p, w);
      }
      break;
    }
  }
  next = housekeeping(p);
  if (p->tfd >= 0) arm_timer(p, bl__tl_timeout_ms(next, bl__pool_now(p), cap));
  p->awake = 0;
  /* Pushed after the last drain while we were awake (no kick then): make
   * the fd readable, or a caller-driven loop would sleep on it. */
  if (bl__pool_sub_pending(p)) bl__pool_kick(p);
  p->stepping = 0;
  /* Wake waiters only when this step resolved something or changed what
   * join waits for; without a supervisor thread every waiter is a
   * potential driver and must learn that the step ended. The broadcast
   * follows the unlock so that woken threads do not collide with us. */
  int bc = p->nwaiters && (p->bcast || !p->have_thread || p->quit);
  p->bcast = 0;
  struct bl__defer *defs = p->defs;
  size_t nd = p->ndefs;
  p->defs = NULL;
  p->ndefs = p->capdefs = 0;
  p->in_defs += nd > 0;
  pthread_mutex_unlock(&p->mu);
  if (bc) pthread_cond_broadcast(&p->cv);
  if (nd) {
    bl__cb_depth++;
    run_defs(p, defs, nd);
    bl__cb_depth--;
    /* join() waits for callbacks too, as billiard's join waits for the
     * threads that run them. */
    pthread_mutex_lock(&p->mu);
    p->in_defs--;
    if (p->nwaiters) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  free(defs);
  return n;
}

void *bl__sv_thread(void *arg) {
  bl_pool_t *p = arg;
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
  pthread_mutex_lock(&p->mu);
  p->th = pthread_self();
  int rc = 0;
  for (unsigned i = 0; i < p->target && rc == 0; i++) rc = bl__sv_spawn(p);
  p->init_rc = rc;
  p->started = rc ? -1 : 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (;;) {
    pthread_mutex_lock(&p->mu);
    int quit = p->quit;
    pthread_mutex_unlock(&p->mu);
    if (quit) break;
    bl__sv_step(p, -1);
  }
  return NULL;
}
