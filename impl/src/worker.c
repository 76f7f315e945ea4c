/* worker.c: the child side of a pool worker.
 *
 * Reads TASK frames from its own task pipe, answers each with READY or
 * FAIL, and leaves on STOP, on EOF, or to be recycled (maxtasksperchild,
 * memory: exit 155 as billiard's EX_RECYCLE). The start of a unit is
 * posted in the shared page (started_seq); an ACK frame is written before
 * running only when the TASK asks for it (a time limit or an accept
 * callback needs the start at once). Results are written before the next
 * unit runs (never held behind it), in one write with whatever else is
 * pending. A shared map job (BL__PW_F_SHM) is one TASK for many chunks: the
 * worker claims them from the job's head in the pool's arena, stores their
 * results there, and answers with one DONE (docs/pool.md "Shared map
 * path"). Signals: SIGUSR1 (soft limit) only sets a flag that tasks observe;
 * SIGINT is ignored; SIGTERM and the rest keep their default action. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "handle.h"
#include "internal.h"
#include "poolint.h"
#include "startmethod.h"

#define BL__EX_RECYCLE 155
#define NO_JOB UINT64_MAX
/* Held map results (BL__PW_F_BATCH) are written once this many bytes wait:
 * a few chunks per write, while the parent still gets them early enough to
 * refill the task pipe before it runs dry. */
#ifndef BL__WORKER_BATCH
#define BL__WORKER_BATCH 16384u
#endif

struct bl_task_ctx {
  uint64_t job, seq;
  size_t index;
  struct bl__wshm *shm;
  bl__buf_t ret;
  int has_ret, failed, observed;
  /* The READY frame being built: bl_task_return writes the item straight
   * into it (no copy via ret); committed only when the task succeeds. */
  bl__buf_t *out;
  size_t at;
  size_t rlen;       /* the in-place item's length */
  int direct;        /* the result is in place, not in ret */
  char *ftype, *fmsg, *ftb;
};

static volatile sig_atomic_t soft_flag;

static void on_usr1(int sig) {
  (void)sig;
  soft_flag = 1;
}

static const struct bl__worker_cfg *wcfg;

static _Noreturn void leave(int code) {
  if (wcfg && wcfg->on_exit) wcfg->on_exit(getpid(), code, wcfg->user);
  bl__child_exit(code);
}

uint64_t bl__rss_kib(void) {
  /* Current RSS (statm's second field, pages), not billiard's peak
   * ru_maxrss: memory a task frees stops counting (divergence D12). */
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  unsigned long size = 0, res = 0;
  if (sscanf(buf, "%lu %lu", &size, &res) != 2) return 0;
  return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

static void ctx_reset(bl_task_ctx_t *c) {
  /* The strings exist only after bl_task_fail, which sets failed. */
  if (c->failed) {
    free(c->ftype);
    free(c->fmsg);
    free(c->ftb);
    c->ftype = c->fmsg = c->ftb = NULL;
  }
  c->ret.len = c->ret.off = 0;
  c->has_ret = c->failed = c->observed = c->direct = 0;
}

static int soft_fired(const bl_task_ctx_t *c) {
  return c->shm && c->seq &&
         atomic_load(&c->shm->soft_seq) == (uint_fast64_t)c->seq;
}

BL_API int bl_task_return(bl_task_ctx_t *ctx, const void *buf, size_t len) {
  BL_VALIDATE(ctx && (buf || !len), -EINVAL);
  uint8_t *slot = ctx->out ? bl__pw_ready_slot(ctx->out, ctx->at, len) : NULL;
  if (slot) {
    /* Fixed-size copies for the usual small results: no libc call. */
    if (len == 8) memcpy(slot, buf, 8);
    else if (len == 4) memcpy(slot, buf, 4);
    else if (len) memcpy(slot, buf, len);
    ctx->rlen = len;
    ctx->direct = ctx->has_ret = 1;
    return 0;
  }
  /* No frame (initializer), or too big for one: the commit reports it. */
  ctx->direct = 0;
  ctx->ret.len = 0;
  int rc = bl__buf_append(&ctx->ret, buf, len);
  if (rc == 0) ctx->has_ret = 1;
  return rc;
}

BL_API int bl_task_fail(bl_task_ctx_t *ctx, const char *type,
                        const char *message, const char *traceback) {
  BL_VALIDATE(ctx, -EINVAL);
  free(ctx->ftype);
  free(ctx->fmsg);
  free(ctx->ftb);
  ctx->ftype = bl__strdup(type ? type : "Exception");
  ctx->fmsg = bl__strdup(message);
  ctx->ftb = bl__strdup(traceback);
  ctx->failed = 1;
  return BL_ETASK;
}

BL_API int bl_task_soft_limit_exceeded(bl_task_ctx_t *ctx) {
  if (!ctx || !soft_fired(ctx)) return 0;
  ctx->observed = 1;
  return 1;
}

BL_API int bl_task_sleep(bl_task_ctx_t *ctx, uint32_t ms) {
  BL_VALIDATE(ctx, -EINVAL);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  /* Block SIGUSR1 between the check and the wait so that a signal landing
   * in between still interrupts ppoll (which unblocks it atomically). */
  pthread_sigmask(SIG_BLOCK, &usr1, &old);
  sigset_t during = old;
  sigdelset(&during, SIGUSR1);
  uint64_t end = bl_monotonic_ns() + (uint64_t)ms * BL__NS_PER_MS;
  int rc = 0;
  for (;;) {
    if (bl_task_soft_limit_exceeded(ctx)) {
      rc = BL_ESOFTTIMELIMIT;
      break;
    }
    uint64_t now = bl_monotonic_ns();
    if (now >= end) break;
    struct timespec ts = {(time_t)((end - now) / BL__NS_PER_S),
                          (long)((end - now) % BL__NS_PER_S)};
    ppoll(NULL, 0, &ts, &during);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

BL_API uint64_t bl_task_job_id(const bl_task_ctx_t *ctx) {
  return ctx ? ctx->job : 0;
}
BL_API size_t bl_task_index(const bl_task_ctx_t *ctx) {
  return ctx ? ctx->index : 0;
}
BL_API pid_t bl_task_pid(const bl_task_ctx_t *ctx) {
  (void)ctx;
  return getpid();
}

static void put_or_die(int rc) {
  if (rc) leave(1); /* out of memory for a frame: the parent sees a loss */
}

static void flush(int fd, bl__buf_t *out) {
  if (out->len == out->off) return;
  int rc = bl__write_full(fd, out->p + out->off, out->len - out->off);
  if (rc) leave(1); /* the parent is gone or broken */
  out->off = out->len = 0;
}

/* Where a unit's arguments are: a TASK body (4-byte length prefixes from
 * cur), or a shared job's packed array (stride bytes each). */
struct items {
  const uint8_t *p;
  size_t len, cur;
  uint32_t stride; /* BL__MJ_PREFIXED: prefixed */
};

static int next_item(struct items *s, const uint8_t **arg, size_t *alen) {
  if (s->stride == BL__MJ_PREFIXED)
    return bl__pw_next_item(s->p, s->len, &s->cur, arg, alen);
  *arg = s->p + s->cur;
  *alen = s->stride;
  s->cur += s->stride;
  return 0;
}

static int find_task(const char *name, size_t len, bl_task_fn *fn,
                     char buf[BL_TASK_NAME_MAX + 1]) {
  size_t nl = len > BL_TASK_NAME_MAX ? BL_TASK_NAME_MAX : len;
  memcpy(buf, name, nl);
  buf[nl] = 0;
  return bl_lookup_task(buf, fn);
}

/* Run n items of job/chunk; append READY (returns 1) or FAIL (0) to out.
 * limited: the unit has a time limit (look for a soft limit per item). */
static int run_items(bl_task_fn fn, uint64_t job, uint32_t chunk,
                     uint64_t first, uint32_t n, int limited, struct items *s,
                     bl_task_ctx_t *c, bl__buf_t *out) {
  size_t at, mark = out->len;
  put_or_die(bl__pw_ready_begin(out, job, chunk, &at));
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *arg;
    size_t alen;
    if (next_item(s, &arg, &alen)) leave(1);
    ctx_reset(c);
    c->index = (size_t)first + i;
    c->out = out;
    c->at = at;
    int rc = fn(c, arg, alen);
    c->out = NULL;
    int code = 0;
    if (c->failed || rc != 0) code = c->failed ? BL_ETASK : rc;
    else if (limited && soft_fired(c) && !c->observed) code = BL_ESOFTTIMELIMIT;
    if (code) {
      out->len = mark; /* a failing item fails its whole chunk */
      const char *type = c->failed ? c->ftype : bl_err_exception(code);
      const char *msg = c->failed ? c->fmsg : NULL;
      if (code == BL_ESOFTTIMELIMIT) type = "SoftTimeLimitExceeded";
      put_or_die(bl__pw_put_fail(out, job, chunk, code, type, msg,
                                 c->failed ? c->ftb : NULL));
      return 0;
    }
    if (c->direct) bl__pw_ready_commit(out, c->rlen);
    else put_or_die(bl__pw_ready_item(out, at, c->ret.p, c->has_ret ? c->ret.len : 0));
  }
  bl__pw_ready_end(out, at, n);
  return 1;
}

/* Run one TASK frame's items; append READY (returns 1) or FAIL (0) to out. */
static int run_unit(const bl__pw_hdr_t *h, const uint8_t *body,
                    bl_task_ctx_t *c, bl__buf_t *out) {
  char name[BL_TASK_NAME_MAX + 1];
  bl_task_fn fn;
  if (find_task((const char *)body, h->namelen, &fn, name) != 0) {
    put_or_die(bl__pw_put_fail(out, h->job, h->chunk, BL_ENOTFOUND,
                               "LookupError", name, NULL));
    return 0;
  }
  /* The parent signals a soft limit only for units sent with F_ACK
   * (poolwire.h): for the others the per-item check is skipped. */
  struct items s = {body, h->len, h->namelen, BL__MJ_PREFIXED};
  return run_items(fn, h->job, h->chunk, h->first, h->nitems,
                   (h->flags & BL__PW_F_ACK) != 0, &s, c, out);
}

/* Chunk k's results (the READY frame in scr) into the shared job's extent:
 * packed over the chunk's own arguments when their lengths are equal and
 * no longer than those (done with; no fresh memory), else into the result
 * area. 0, or -1: no room left (the frame then goes through the pipe). */
static int store_shared(struct bl__mjob *mj, uint32_t k, uint32_t n,
                        const bl__buf_t *scr) {
  uint8_t *head = (uint8_t *)mj;
  const uint8_t *body = scr->p + sizeof(bl__pw_hdr_t);
  size_t blen = scr->len - sizeof(bl__pw_hdr_t);
  uint32_t l0;
  int uni = bl__pw_body_uniform(body, blen, n, &l0);
  size_t need = uni ? (size_t)n * l0 : blen;
  uint64_t at;
  if (uni && mj->astride != BL__MJ_PREFIXED && l0 <= mj->astride) {
    at = mj->args + (uint64_t)k * mj->chunksize * mj->astride;
  } else {
    uint64_t r = atomic_fetch_add_explicit(&mj->rused, (need + 7) & ~(size_t)7,
                                           memory_order_relaxed);
    if (r > mj->rcap || need > mj->rcap - r) return -1;
    at = mj->res + r;
  }
  if (uni) bl__pw_body_pack(head + at, body, n, l0);
  else memcpy(head + at, body, blen);
  struct bl__mchunk *cd = (struct bl__mchunk *)(void *)(head + mj->cdesc) + k;
  cd->off = at;
  cd->len = need;
  cd->stride = uni ? l0 : BL__MJ_PREFIXED;
  atomic_store_explicit(&cd->state, 1, memory_order_release);
  return 0;
}

/* Join a shared map job (BL__PW_F_SHM): claim its chunks until none is
 * left, it ended (abort), or `budget` chunks ran (maxtasksperchild), or
 * memory is over max_memory_per_child. Appends to out: READY for a chunk
 * whose results did not fit, FAIL for a failing chunk (the job is over:
 * others stop claiming), else DONE with the number of chunks run. Returns
 * that number. */
static unsigned run_shared(const struct bl__worker_cfg *cfg,
                           const bl__pw_hdr_t *h, const uint8_t *body,
                           unsigned budget, bl_task_ctx_t *c, bl__buf_t *out,
                           bl__buf_t *scr) {
  if (!cfg->arena || h->first > cfg->arena_size ||
      cfg->arena_size - h->first < sizeof(struct bl__mjob))
    leave(1);
  struct bl__mjob *mj = (struct bl__mjob *)(void *)(cfg->arena + h->first);
  const uint8_t *args = (const uint8_t *)mj + mj->args;
  const uint64_t *choff = (const uint64_t *)(const void *)((const uint8_t *)mj + mj->choff);
  char name[BL_TASK_NAME_MAX + 1];
  bl_task_fn fn;
  if (find_task((const char *)body, h->namelen, &fn, name) != 0) {
    atomic_store(&mj->abort, 1);
    put_or_die(bl__pw_put_fail(out, h->job, 0, BL_ENOTFOUND, "LookupError",
                               name, NULL));
    return 0;
  }
  unsigned ran = 0;
  while (ran < budget && !atomic_load_explicit(&mj->abort, memory_order_relaxed)) {
    uint32_t k = atomic_fetch_add_explicit(&mj->next, 1, memory_order_relaxed);
    if (k >= mj->nchunks) break;
    BL_FAULT_CRASH("worker/task/after-ack"); /* a claimed chunk is accepted */
    uint64_t first = (uint64_t)k * mj->chunksize;
    uint32_t n = (uint32_t)(mj->nitems - first < mj->chunksize
                                ? mj->nitems - first : mj->chunksize);
    struct items s = mj->astride == BL__MJ_PREFIXED
        ? (struct items){args + choff[k], choff[k + 1] - choff[k], 0, BL__MJ_PREFIXED}
        : (struct items){args + first * mj->astride, (size_t)n * mj->astride, 0,
                         mj->astride};
    scr->off = scr->len = 0;
    int ok = run_items(fn, h->job, k, first, n, 0, &s, c, scr);
    ran++;
    if (!ok) {
      atomic_store(&mj->abort, 1);
      put_or_die(bl__buf_append(out, scr->p, scr->len));
      return ran;
    }
    BL_FAULT_CRASH("worker/result/write");
    if (store_shared(mj, k, n, scr) != 0) {
      scr->p[offsetof(bl__pw_hdr_t, flags)] = BL__PW_F_SHM;
      put_or_die(bl__buf_append(out, scr->p, scr->len));
      if (out->len - out->off >= BL__WORKER_BATCH) flush(cfg->res_fd, out);
    }
    if (cfg->max_mem_kib && bl__rss_kib() > cfg->max_mem_kib) break;
  }
  put_or_die(bl__pw_put_done(out, h->job, ran));
  return ran;
}

static int run_initializer(const struct bl__worker_cfg *cfg, bl_task_ctx_t *c) {
  bl_task_fn fn;
  if (bl_lookup_task(cfg->initializer, &fn) != 0) return -1;
  int rc = fn(c, cfg->initarg, cfg->initarg_len);
  return rc != 0 || c->failed ? -1 : 0;
}

_Noreturn void bl__worker_main(const struct bl__worker_cfg *cfg) {
  wcfg = cfg;
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1; /* no SA_RESTART: a soft limit interrupts waits */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);

  bl_task_ctx_t c = {.shm = cfg->shm};
  if (cfg->initializer && run_initializer(cfg, &c) != 0) leave(1);

  bl__buf_t in = {0}, out = {0}, scr = {0};
  unsigned done = 0;
  uint64_t held_job = NO_JOB; /* out holds READYs of this BATCH job */
  uint64_t seq = 0;
  for (;;) {
    bl__pw_hdr_t h;
    long n = bl__pw_peek(in.p + in.off, in.len - in.off, &h);
    if (n < 0) leave(1);
    if (n == 0) {
      flush(cfg->res_fd, &out); /* about to block: send what we have */
      bl__buf_compact(&in);
      if (bl__buf_reserve(&in, 65536)) leave(1);
      ssize_t r = read(cfg->task_fd, in.p + in.len, in.cap - in.len);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) leave(0); /* the parent closed our pipe: nothing more */
      in.len += (size_t)r;
      continue;
    }
    const uint8_t *body = in.p + in.off + sizeof h;
    in.off += (size_t)n;
    if (h.type == BL__PW_STOP) {
      flush(cfg->res_fd, &out);
      leave(0);
    }
    if (h.type != BL__PW_TASK) leave(1);
    /* Results already here must not wait behind this unit, unless they
     * are map chunks of this unit's own job (BL__PW_F_BATCH): that job
     * cannot be done before this unit is, so they may travel together,
     * up to a batch size that keeps the parent refilling our pipe before
     * it runs dry. The shared page tells a loss or terminate_job that
     * this unit started, so it is written after everything before it. */
    int hold = (h.flags & BL__PW_F_BATCH) && held_job == h.job &&
               out.len - out.off < BL__WORKER_BATCH;
    c.job = h.job;
    c.seq = ++seq;
    if (h.flags & BL__PW_F_ACK)
      put_or_die(bl__pw_put_simple(&out, BL__PW_ACK, h.job, h.chunk));
    if (!hold) flush(cfg->res_fd, &out);
    atomic_store_explicit(&cfg->shm->started_seq, seq, memory_order_release);
    BL_FAULT_CRASH("worker/task/after-ack");
    if (h.flags & BL__PW_F_SHM) {
      unsigned budget = cfg->maxtasks ? cfg->maxtasks - done : UINT_MAX;
      done += run_shared(cfg, &h, body, budget, &c, &out, &scr);
      held_job = NO_JOB;
    } else {
      int ok = run_unit(&h, body, &c, &out);
      held_job = ok && (h.flags & BL__PW_F_BATCH) ? h.job : NO_JOB;
      done++;
    }
    int recycle = (cfg->maxtasks && done >= cfg->maxtasks) ||
                  (cfg->max_mem_kib && bl__rss_kib() > cfg->max_mem_kib);
    bl__pw_hdr_t next;
    if (recycle || bl__pw_peek(in.p + in.off, in.len - in.off, &next) <= 0) {
      BL_FAULT_CRASH("worker/result/write");
      flush(cfg->res_fd, &out);
    }
    if (recycle) leave(BL__EX_RECYCLE);
  }
}

/* A spawn/forkserver worker: decode the boot argument (supervisor.c's
 * spawn_worker), map the shared page, run the loop. The argument lives
 * until exit (bl__boot_run's buffer): the strings point into it. */
int bl__pool_worker_target(const void *arg, size_t len) {
  static struct bl__worker_cfg cfg;
  static char init[BL_TASK_NAME_MAX + 1];
  struct bl__worker_boot wb;
  /* Its boot fds are its pipes and page, not Process handles. */
  bl__handles_set(NULL, 0);
  if (len < sizeof wb) return 1;
  memcpy(&wb, arg, sizeof wb);
  const char *p = (const char *)arg + sizeof wb;
  if (wb.init_len > BL_TASK_NAME_MAX || wb.initarg_len != len - sizeof wb - wb.init_len)
    return 1;
  memcpy(init, p, wb.init_len);
  init[wb.init_len] = 0;
  void *shm = mmap(NULL, sizeof(struct bl__wshm), PROT_READ | PROT_WRITE, MAP_SHARED,
                   wb.shm_fd, 0);
  close(wb.shm_fd);
  if (shm == MAP_FAILED) return 1;
  void *arena = NULL;
  if (wb.arena_fd >= 0) { /* the pool's shared map arena, at any address */
    arena = mmap(NULL, (size_t)wb.arena_size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_NORESERVE, wb.arena_fd, 0);
    close(wb.arena_fd);
    if (arena == MAP_FAILED) return 1;
  }
  cfg = (struct bl__worker_cfg){
      .task_fd = wb.task_fd, .res_fd = wb.res_fd, .shm = shm,
      .arena = arena, .arena_size = arena ? (size_t)wb.arena_size : 0,
      .initializer = wb.init_len ? init : NULL, .initarg = p + wb.init_len,
      .initarg_len = (size_t)wb.initarg_len, .maxtasks = wb.maxtasks,
      .max_mem_kib = wb.max_mem_kib};
  bl__worker_main(&cfg);
}
