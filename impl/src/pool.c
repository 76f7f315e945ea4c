/* pool.c: the Pool API: options, submitting jobs, dispatching units to
 * workers, routing their results, resolving jobs exactly once, waiting, and
 * close/terminate/join. The event loop itself is in supervisor.c.
 *
 * A job is resolved exactly once (resolve()), under the pool lock; its
 * callbacks run later, unlocked, from the deferred queue. */
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "internal.h"
#include "poolint.h"
#include "startmethod.h"

static atomic_uint_fast64_t job_counter; /* one per process, from 0 */

uint64_t bl__pool_now(const bl_pool_t *p) { return bl_clock_now(p->o.clock); }

BL_API void bl_pool_options_init(bl_pool_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->lost_worker_timeout_ms = 10000;
  o->max_restarts = 10;
  o->max_restart_freq_ms = 10000;
  o->kill_grace_ms = 100;
  o->prefetch = 32;
  o->threads = 1;
}

BL_API void bl_apply_options_init(bl_apply_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

BL_API size_t bl_pool_default_chunksize(size_t n, unsigned workers) {
  size_t d = 4 * (size_t)(workers ? workers : 1);
  size_t c = (n + d - 1) / d;
  return c ? c : 1;
}

/* ---------------------------------------------------------------- jobs */

void bl__job_unref(bl_result_t *r) {
  if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
  if (r->kind == BL__JOB_APPLY) {
    free(r->buf1);
  } else {
    for (size_t c = 0; r->chunks && c < r->nchunks; c++)
      free(r->chunks[c].off);
    while (r->blk) {
      struct bl__blk *b = r->blk;
      r->blk = b->next;
      if (b->mapped) munmap(b, b->mapped);
      else free(b);
    }
    for (size_t c = 0; r->cherr && c < r->nchunks; c++)
      bl_error_info_clear(&r->cherr[c]);
    free(r->chunks);
    free(r->cherr);
    free(r->chcode);
    free(r->done_order);
    free(r->units);
    if (r->arena) {
      bl__arena_free(r->arena, r->ext_off, r->ext_len);
      bl__arena_unref(r->arena);
    }
    free(r->argoff);
    free(r->arglen);
    free(r->args);
  }
  bl_error_info_clear(&r->err);
  free(r);
}

BL_API void bl_result_free(bl_result_t **r) {
  if (!r || !*r) return;
  bl__job_unref(*r);
  *r = NULL;
}

int bl__pool_defer(bl_pool_t *p, int kind, bl_result_t *job, pid_t pid,
                   int status) {
  if (p->ndefs == p->capdefs) {
    size_t nc = p->capdefs ? p->capdefs * 2 : 64;
    struct bl__defer *n = realloc(p->defs, nc * sizeof *n);
    if (!n) return -ENOMEM; /* a callback is skipped; the job still resolves */
    p->defs = n;
    p->capdefs = nc;
  }
  if (job) atomic_fetch_add(&job->refs, 1);
  p->defs[p->ndefs++] = (struct bl__defer){kind, job, pid, status};
  /* A step collects deferred callbacks when it ends. Outside the awake part
   * of a step (a job resolved at submission, terminate_job of a queued
   * job, ...) wake the driver so that they run promptly, not at its next
   * unrelated wake-up (the kick is a no-op while a driver is awake). */
  bl__pool_kick(p);
  return 0;
}

void bl__pool_notify(bl_pool_t *p) {
  if (p->stepping && pthread_equal(p->stepper, pthread_self())) p->bcast = 1;
  else if (p->nwaiters) pthread_cond_broadcast(&p->cv);
}

static int has_cb(const bl_result_t *r) {
  return r->ao.callback || r->ao.error_callback || r->timeout_set;
}

/* The one place a job becomes ready. Lock held. */
static void resolve(bl_pool_t *p, bl_result_t *r, int code, const char *type,
                    const char *msg, const char *tb) {
  if (atomic_load_explicit(&r->ready, memory_order_relaxed)) return;
  r->code = code;
  if (code) bl_error_info_set(&r->err, code, type, msg, tb);
  atomic_store_explicit(&r->ready, 1, memory_order_release);
  if (r->mj) atomic_store_explicit(&r->mj->abort, 1, memory_order_relaxed);
  p->unresolved--;
  if (r->putslot) r->putslot = 0, p->putheld--;
  if (has_cb(r)) bl__pool_defer(p, BL__DEF_RESOLVED, r, 0, 0);
  if (r == p->claim_job) bl__pool_wake_claimer(p);
  bl__pool_notify(p);
}

void bl__pool_wake_claimer(bl_pool_t *p) {
  if (!p->claim_job || pthread_equal(p->claimer, pthread_self())) return;
  uint64_t one = 1;
  ssize_t n = write(p->cwake, &one, sizeof one);
  (void)n; /* a full counter is already a pending wake-up */
}

void bl__pool_unit_done(bl_pool_t *p, struct bl__unit *u) {
  (void)p;
  if (u->state == BL__U_DONE) return;
  u->state = BL__U_DONE;
  bl_result_t *r = u->job;
  if (--r->units_open == 0) bl__job_unref(r); /* the pool's reference */
}

/* A chunk of an imap job ends (value stored or error). Lock held. */
static void imap_chunk_end(bl_pool_t *p, bl_result_t *r, uint32_t c) {
  if (r->done_order) r->done_order[r->ndone] = c;
  r->ndone++;
  if (r->ndone == r->nchunks) resolve(p, r, 0, NULL, NULL, NULL);
  else bl__pool_notify(p);
}

void bl__pool_fail_unit(bl_pool_t *p, struct bl__unit *u, int code,
                        const char *type, const char *msg) {
  bl_result_t *r = u->job;
  if (r->kind == BL__JOB_IMAP || r->kind == BL__JOB_IMAPU) {
    if (r->chcode[u->chunk] != 0) return; /* a chunk ends once */
    if (!r->cherr) r->cherr = calloc(r->nchunks, sizeof *r->cherr);
    if (r->cherr)
      bl_error_info_set(&r->cherr[u->chunk], code, type, msg, NULL);
    r->chcode[u->chunk] = code ? code : BL_EPROCESS;
    imap_chunk_end(p, r, u->chunk);
    return;
  }
  resolve(p, r, code, type, msg, NULL);
}

/* A new block for at least need bytes, sized for `want` (the chunks still
 * to come). Blocks from 256 KiB up are mmap'd with MAP_POPULATE: one
 * system call instead of a page fault per page while results stream in. */
static struct bl__blk *blk_new(size_t need, size_t want) {
  /* At most 4 MiB at a time: populating one stalls the storing thread
   * (≈0.2 ms per MiB here), which a huge map should not feel at once. */
  enum { SMALL = 16384, MAPPED = 262144, MAX = 4u << 20 };
  size_t cap = want < SMALL ? SMALL : want > MAX ? MAX : want;
  if (cap < need) cap = need;
  struct bl__blk *b;
  size_t total = sizeof *b + cap;
  if (BL_FAULT("pool/result/store", ENOMEM)) return NULL;
  if (total >= MAPPED) {
    long pg = sysconf(_SC_PAGESIZE);
    size_t ps = pg > 0 ? (size_t)pg : 4096;
    total = (total + ps - 1) / ps * ps;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED) return NULL;
    b = m;
    b->mapped = total;
    b->cap = total - sizeof *b;
  } else {
    if (!(b = malloc(total))) return NULL;
    b->mapped = 0;
    b->cap = cap;
  }
  b->used = 0;
  return b;
}

/* n bytes (8-aligned) from r's blocks, which only grow until r is freed;
 * `more` chunks of about the same size are still to come. */
static uint8_t *chunk_store(bl_result_t *r, size_t n, size_t more) {
  size_t need = (n + 7) & ~(size_t)7;
  struct bl__blk *b = r->blk;
  if (!b || b->cap - b->used < need) {
    size_t want = need && more > SIZE_MAX / need ? SIZE_MAX : need * more;
    if (!(b = blk_new(need, want))) return NULL;
    b->next = r->blk;
    r->blk = b;
  }
  uint8_t *at = b->data + b->used;
  b->used += need;
  return at;
}

static size_t chunk_items(const bl_result_t *r, size_t k) {
  size_t first = k * r->chunksize;
  return r->nitems - first < r->chunksize ? r->nitems - first : r->chunksize;
}

/* The offsets of n length-prefixed items that fill buf[0, len) exactly:
 * 0, BL_EPROTOCOL or -ENOMEM. */
static int item_offsets(const uint8_t *buf, size_t len, size_t n,
                        uint32_t **out) {
  uint32_t *off = malloc((n ? n : 1) * sizeof *off);
  if (!off) return -ENOMEM;
  size_t cur = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *it;
    size_t l;
    off[i] = (uint32_t)cur;
    if (bl__pw_next_item(buf, len, &cur, &it, &l)) {
      free(off);
      return BL_EPROTOCOL;
    }
  }
  if (cur != len) {
    free(off);
    return BL_EPROTOCOL;
  }
  *out = off;
  return 0;
}

/* Chunk k's READY body into r's result blocks: one copy. Items of equal
 * length are packed (no prefixes, found by stride); otherwise the body is
 * kept as it is, with an offset table. 0 or an error code. Lock held. */
static int store_chunk(bl_result_t *r, uint32_t k, const bl__pw_hdr_t *h,
                       const uint8_t *body) {
  size_t n = chunk_items(r, k);
  size_t more = r->nchunks > r->ndone ? r->nchunks - r->ndone : 1;
  if (h->nitems != n) return BL_EPROTOCOL;
  uint32_t l0 = 0, *off = NULL;
  uint8_t *copy;
  if (bl__pw_body_uniform(body, h->len, n, &l0)) {
    if (!(copy = chunk_store(r, n * l0, more))) return -ENOMEM;
    bl__pw_body_pack(copy, body, n, l0);
  } else {
    int rc = item_offsets(body, h->len, n, &off);
    if (rc) return rc;
    if (!(copy = chunk_store(r, h->len, more))) {
      free(off);
      return -ENOMEM;
    }
    memcpy(copy, body, h->len);
  }
  r->chunks[k] = (struct bl__chunk){copy, off, l0};
  return 0;
}

/* Map arguments: none NULL with a length, none over a frame's limit;
 * *total gets their bytes. 0, -EINVAL or -EMSGSIZE (the first bad item's). */
static int args_check(const void *const *args, const size_t *lens, size_t n,
                      size_t *total) {
  size_t t = 0;
  for (size_t i = 0; i < n; i++) {
    if (!args[i] && lens[i]) return -EINVAL;
    if (lens[i] > BL__PW_MAX_BODY || t + lens[i] > SIZE_MAX / 4) return -EMSGSIZE;
    t += lens[i];
  }
  *total = t;
  return 0;
}

/* ---------------------------------------------------- shared map path */

/* Queue u last. Lock held. */
static void queue_append(bl_pool_t *p, struct bl__unit *u) {
  u->next = NULL;
  if (p->q_tail) p->q_tail->next = u;
  else p->q_head = u;
  p->q_tail = u;
  p->qlen++;
}

/* Another join of shared job r: a unit that, sent to a worker, makes it
 * claim r's chunks. front: ahead of the queue (it replaces one that left
 * early, in r's place). Lock held. */
static int shared_join(bl_pool_t *p, bl_result_t *r, int front) {
  if (r->nunits == r->capunits) return -1;
  struct bl__unit *u = &r->units[r->nunits];
  *u = (struct bl__unit){.job = r, .chunk = (uint32_t)r->nunits,
                         .state = BL__U_QUEUED};
  r->nunits++;
  r->units_open++;
  if (front) bl__pool_requeue_front(p, u, u, 1);
  else queue_append(p, u);
  return 0;
}

/* Every chunk of r has run: point its results at the arena (the workers
 * wrote them there), except those that came through a pipe. 0 or
 * BL_EPROTOCOL / -ENOMEM. */
static int shared_finish(bl_result_t *r) {
  struct bl__mjob *mj = r->mj;
  uint8_t *head = (uint8_t *)mj;
  struct bl__mchunk *cd = (struct bl__mchunk *)(void *)(head + mj->cdesc);
  for (size_t k = 0; k < r->nchunks; k++) {
    if (r->chunks[k].buf) continue; /* it came through the pipe */
    size_t n = chunk_items(r, k);
    if (!atomic_load_explicit(&cd[k].state, memory_order_acquire) ||
        cd[k].off > r->ext_len || cd[k].len > r->ext_len - cd[k].off)
      return BL_EPROTOCOL;
    uint32_t *off = NULL;
    if (cd[k].stride == BL__MJ_PREFIXED) {
      int rc = item_offsets(head + cd[k].off, cd[k].len, n, &off);
      if (rc) return rc;
    } else if ((uint64_t)cd[k].stride * n != cd[k].len) {
      return BL_EPROTOCOL;
    }
    r->chunks[k] = (struct bl__chunk){head + cd[k].off, off, cd[k].stride};
  }
  return 0;
}

/* DONE: w left shared job r after h->nitems chunks. Lock held. */
static void shared_done(bl_pool_t *p, struct bl__worker *w, struct bl__unit *u,
                        const bl__pw_hdr_t *h) {
  bl_result_t *r = u->job;
  if (h->nitems > 1) w->nsent += h->nitems - 1; /* maxtasksperchild: chunks */
  if (atomic_load_explicit(&r->ready, memory_order_relaxed)) return;
  if (h->nitems > r->nchunks - r->ndone) {
    resolve(p, r, BL_EPROTOCOL, NULL, "bad DONE frame", NULL);
    return;
  }
  r->ndone += h->nitems;
  if (r->ndone == r->nchunks) {
    int rc = shared_finish(r);
    resolve(p, r, rc, NULL, rc ? "bad shared map result" : NULL, NULL);
    return;
  }
  /* It left with chunks unclaimed (maxtasksperchild, memory): another
   * worker joins in its place. */
  if (atomic_load(&r->mj->next) < r->nchunks && shared_join(p, r, 1) != 0)
    resolve(p, r, BL_EPROTOCOL, NULL, "no join left for a shared map", NULL);
}

/* Gather r's arguments into an extent of the arena, with the job's head,
 * chunk table and result area: packed when every item has the first one's
 * length, else length-prefixed. 0; 1: no room (use the pipes); or an
 * argument error (-EINVAL, -EMSGSIZE). */
static int shared_gather(bl_pool_t *p, bl_result_t *r, const void *const *args,
                         const size_t *lens) {
  size_t n = r->nitems, nc = r->nchunks, l0 = lens[0], lim = bl__arena_size(p->arena) / 4;
  /* Sized for the usual case, every item as long as the first, which the
   * copy itself checks; otherwise measured and copied with prefixes. */
  if (l0 > BL__PW_MAX_BODY || (l0 && n > lim / l0)) return 1;
  int uniform = 1;
  size_t total = n * l0;
  for (;;) {
    if (n > lim / 16 || total > lim) return 1;
    size_t argb = uniform ? total : total + 4 * n;
    size_t choffb = uniform ? 0 : (nc + 1) * sizeof(uint64_t);
    size_t rcap = n * 16 > argb ? n * 16 : argb;
    if (rcap < 65536) rcap = 65536;
#define A64(x) (((x) + 63) & ~(size_t)63)
    size_t o_cd = A64(sizeof(struct bl__mjob));
    size_t o_choff = A64(o_cd + nc * sizeof(struct bl__mchunk));
    size_t o_args = A64(o_choff + choffb), o_res = A64(o_args + argb);
#undef A64
    size_t len = o_res + rcap, off;
    if (bl__arena_alloc(p->arena, len, &off) != 0) return 1;
    uint8_t *head = bl__arena_base(p->arena) + off, *dst = head + o_args;
    /* Fault the arguments' pages in at once: far cheaper than one by one
     * (results mostly go over them, see worker.c store_shared). */
    madvise(head, o_res, BL__MADV_POPULATE_WRITE);
    size_t i = 0;
    if (uniform) {
      const size_t *ln = lens;
      if (l0 == 8) {
        for (; i < n && ln[i] == 8 && args[i]; i++) memcpy(dst + 8 * i, args[i], 8);
      } else {
        for (; i < n && ln[i] == l0 && (args[i] || !l0); i++)
          if (l0) memcpy(dst + l0 * i, args[i], l0);
      }
    } else {
      uint64_t *choff = (uint64_t *)(void *)(head + o_choff);
      size_t at = 0;
      for (; i < n; i++) {
        if (i % r->chunksize == 0) choff[i / r->chunksize] = at;
        uint32_t l = (uint32_t)lens[i];
        memcpy(dst + at, &l, 4);
        if (l) memcpy(dst + at + 4, args[i], l);
        at += 4 + (size_t)l;
      }
      choff[nc] = at;
    }
    if (i < n) { /* unequal lengths (or a NULL argument): check, measure */
      bl__arena_free(p->arena, off, len);
      int rc = args_check(args, lens, n, &total);
      if (rc) return rc;
      uniform = 0;
      continue;
    }
    struct bl__mjob *mj = (struct bl__mjob *)(void *)head;
    atomic_init(&mj->next, 0);
    atomic_init(&mj->rused, 0);
    atomic_init(&mj->abort, 0);
    mj->nchunks = (uint32_t)nc;
    mj->astride = uniform ? (uint32_t)l0 : BL__MJ_PREFIXED;
    mj->nitems = n;
    mj->chunksize = r->chunksize;
    mj->cdesc = o_cd;
    mj->choff = o_choff;
    mj->args = o_args;
    mj->res = o_res;
    mj->rcap = rcap;
    /* A reused extent holds an earlier job's chunk states. */
    memset(head + o_cd, 0, nc * sizeof(struct bl__mchunk));
    bl__arena_ref(p->arena);
    r->arena = p->arena;
    r->ext_off = off;
    r->ext_len = len;
    r->mj = mj;
    return 0;
  }
}

/* A READY/FAIL frame for unit u. Lock held. */
static void on_outcome(bl_pool_t *p, struct bl__unit *u, const bl__pw_hdr_t *h,
                       const uint8_t *body) {
  bl_result_t *r = u->job;
  /* An imap chunk already failed (terminate() fails the units in the
   * workers' pipes; their late outcomes may still arrive): it ended. */
  if ((r->kind == BL__JOB_IMAP || r->kind == BL__JOB_IMAPU) && r->chcode[u->chunk])
    return;
  if (h->type == BL__PW_FAIL) {
    bl__pw_fail_t f;
    char *type = NULL, *msg = NULL, *tb = NULL;
    if (bl__pw_get_fail(body, h->len, &f) == 0) {
      type = f.typelen ? strndup(f.type, f.typelen) : NULL;
      msg = f.msglen ? strndup(f.msg, f.msglen) : NULL;
      tb = f.tblen ? strndup(f.tb, f.tblen) : NULL;
    } else {
      f.code = BL_EPROTOCOL;
    }
    if (r->kind == BL__JOB_IMAP || r->kind == BL__JOB_IMAPU) {
      if (!r->cherr) r->cherr = calloc(r->nchunks, sizeof *r->cherr);
      if (r->cherr) bl_error_info_set(&r->cherr[u->chunk], f.code, type, msg, tb);
      r->chcode[u->chunk] = f.code;
      imap_chunk_end(p, r, u->chunk);
    } else {
      resolve(p, r, f.code, type, msg, tb);
    }
    free(type);
    free(msg);
    free(tb);
    return;
  }
  if (atomic_load_explicit(&r->ready, memory_order_relaxed)) return;
  if (r->kind == BL__JOB_APPLY) {
    const uint8_t *it;
    size_t len, cur = 0;
    if (h->nitems != 1 || bl__pw_next_item(body, h->len, &cur, &it, &len)) {
      resolve(p, r, BL_EPROTOCOL, NULL, "bad READY frame", NULL);
      return;
    }
    uint8_t *dst = r->small;
    if (len > sizeof r->small && !(dst = r->buf1 = malloc(len))) {
      resolve(p, r, -ENOMEM, NULL, NULL, NULL);
      return;
    }
    if (len) memcpy(dst, it, len);
    r->item1 = (struct bl__item){dst, len};
    resolve(p, r, 0, NULL, NULL, NULL);
    return;
  }
  int bad = store_chunk(r, u->chunk, h, body);
  if (bad) {
    bl__pool_fail_unit(p, u, bad, NULL, NULL);
    return;
  }
  if (r->kind == BL__JOB_MAP) {
    if (++r->ndone == r->nchunks) resolve(p, r, 0, NULL, NULL, NULL);
  } else {
    r->chcode[u->chunk] = 1;
    imap_chunk_end(p, r, u->chunk);
  }
}

static void on_ack(bl_pool_t *p, struct bl__worker *w, struct bl__unit *u) {
  bl_result_t *r = u->job;
  u->state = BL__U_ACKED;
  w->running = u;
  w->running_resolved = 0;
  bl__restart_reset(&p->rs);
  p->crash_streak = 0;
  /* Release, and only when it changes: a map's chunks mostly run on the
   * same few workers (a seq_cst store is a full barrier per chunk). */
  if (atomic_load_explicit(&r->pid, memory_order_relaxed) != (int)w->pid)
    atomic_store_explicit(&r->pid, (int)w->pid, memory_order_release);
  if (r->mj ? atomic_load(&r->mj->next) >= r->nchunks : ++r->nacked >= r->nchunks)
    atomic_store(&r->accepted, 1);
  if (r->ao.accept_callback && !u->cancelled)
    bl__pool_defer(p, BL__DEF_ACCEPT, r, w->pid, 0);
  if (r->soft_ms || r->hard_ms) {
    bl__tl_start(&w->tl, bl__pool_now(p), r->soft_ms, r->hard_ms);
    /* A caller reading the pipe itself (claim_wait) saw the ACK: the
     * driver must re-arm its timeout for the new deadline. */
    if (!p->stepping || !pthread_equal(p->stepper, pthread_self()))
      bl__pool_kick(p);
    if (r->kind == BL__JOB_APPLY && p->o.on_timeout_set && !r->timeout_set) {
      r->timeout_set = 1;
      bl__pool_defer(p, BL__DEF_TSET, r, 0, 0);
    }
  } else {
    bl__tl_stop(&w->tl);
  }
}

void bl__pool_catch_up(bl_pool_t *p, struct bl__worker *w) {
  if (!w->shm) return;
  uint64_t s = atomic_load_explicit(&w->shm->started_seq, memory_order_acquire);
  for (struct bl__unit *u = w->if_head; u && u->seq <= s; u = u->next) {
    if (u->state != BL__U_SENT) continue;
    u->early = 1;
    on_ack(p, w, u);
  }
}

static void catch_up_all(bl_pool_t *p) {
  for (size_t i = 0; i < p->nw; i++) bl__pool_catch_up(p, p->w[i]);
}

/* Broken stream from a live worker: it cannot be trusted, kill it. */
static void worker_protocol_error(bl_pool_t *p, struct bl__worker *w) {
  if (!w->doomed) {
    w->doomed = 1;
    bl__sv_signal(p, w, SIGKILL);
  }
}

/* Apply every whole frame buffered in w->in. Returns the number handled,
 * or BL_EPROTOCOL for a frame that does not fit the worker's pipe order.
 * Lock held. */
static int parse_frames(bl_pool_t *p, struct bl__worker *w, int *handled) {
  int rc = 0;
  for (;;) {
    bl__pw_hdr_t h;
    long fl = bl__pw_peek(w->in.p + w->in.off, w->in.len - w->in.off, &h);
    if (fl == 0) break;
    struct bl__unit *u = w->if_head;
    /* In order, per unit: ACK when the TASK asked for one (unless already
     * taken from the shared page), then READY/FAIL; without one, the
     * outcome itself says the unit ran. */
    int ack = h.type == BL__PW_ACK;
    /* A join of a shared map: READY (F_SHM) for chunks that did not fit
     * its result area, then DONE or FAIL. */
    int shared = fl > 0 && u && u->job->mj;
    int inl = shared && h.type == BL__PW_READY;
    if (fl < 0 || !u || u->job->id != h.job || h.type == BL__PW_TASK ||
        h.type == BL__PW_STOP ||
        (shared ? ack || (inl && (!(h.flags & BL__PW_F_SHM) || h.chunk >= u->job->nchunks))
                : u->chunk != h.chunk || h.type == BL__PW_DONE ||
                  (ack ? !u->ackf || (u->state != BL__U_SENT && !u->early)
                       : u->state == BL__U_SENT && u->ackf))) {
      rc = BL_EPROTOCOL;
      break;
    }
    if (!ack && u->state == BL__U_SENT) on_ack(p, w, u);
    const uint8_t *body = w->in.p + w->in.off + sizeof h;
    w->in.off += (size_t)fl;
    (*handled)++;
    if (ack) {
      if (u->state == BL__U_SENT) on_ack(p, w, u);
      else u->early = 0;
      continue;
    }
    if (inl) {
      bl_result_t *r = u->job;
      int bad = atomic_load_explicit(&r->ready, memory_order_relaxed) ||
                u->cancelled || r->chunks[h.chunk].buf ? 0
                : store_chunk(r, h.chunk, &h, body);
      if (bad) resolve(p, r, bad, NULL, NULL, NULL);
      continue;
    }
    w->if_head = u->next;
    if (!w->if_head) w->if_tail = NULL;
    w->nif--;
    int drop = 0;
    if (w->running == u) { /* an earlier unit's READY may follow a catch-up */
      w->running = NULL;
      bl__tl_stop(&w->tl);
      drop = w->running_resolved; /* late: already failed by the limit */
      w->running_resolved = 0;
    }
    if (h.type == BL__PW_DONE) shared_done(p, w, u, &h);
    else if (!drop && !u->cancelled) on_outcome(p, u, &h, body);
    if (w->term_unit == u) w->term_unit = NULL;
    bl__pool_unit_done(p, u);
  }
  if (w->in.off == w->in.len) w->in.off = w->in.len = 0;
  return rc;
}

int bl__pool_on_readable(bl_pool_t *p, struct bl__worker *w) {
  int handled = 0;
  while (w->res_open && !w->claimed) {
    int rc = BL_FAULT("pool/result/read", EIO);
    if (rc == 0 && bl__buf_reserve(&w->in, 65536)) rc = -ENOMEM;
    ssize_t n = 0;
    size_t want = w->in.cap - w->in.len;
    if (rc == 0) {
      n = read(w->res_fd, w->in.p + w->in.len, want);
      if (n < 0) rc = -errno;
    }
    if (rc == -EINTR) continue;
    if (rc == -EAGAIN) break;
    if (rc == 0 && n > 0) {
      w->in.len += (size_t)n;
      rc = parse_frames(p, w, &handled);
      if (rc == 0) {
        /* A short read emptied the pipe: skip the read that would only
         * say EAGAIN (the epoll set is level-triggered for what follows). */
        if ((size_t)n < want) break;
        continue;
      }
    }
    /* EOF: the worker is gone or going, and its pidfd tells the rest. A
     * read or protocol error: the worker cannot be trusted, kill it. */
    if (rc) worker_protocol_error(p, w);
    bl__sv_close_res(p, w);
    break;
  }
  return handled;
}

/* ------------------------------------------------------------ dispatch */

_Thread_local int bl__cb_depth;

int bl__pool_flush(bl_pool_t *p, struct bl__worker *w) {
  while (w->out.off < w->out.len) {
    int rc = BL_FAULT("pool/dispatch/write", EPIPE);
    ssize_t n = -1;
    if (rc == 0) {
      /* The pool holds a read end too (task_rd): writing to a dead
       * worker's pipe cannot raise SIGPIPE in the caller's thread, so no
       * signal mask is touched around the write. */
      n = write(w->task_fd, w->out.p + w->out.off, w->out.len - w->out.off);
      if (n < 0) rc = -errno;
    }
    if (rc == -EINTR) continue;
    if (rc == -EAGAIN) return 1; /* caller arms EPOLLOUT */
    if (rc) {
      /* The worker cannot get its frames: treat it as lost. Its unstarted
       * units are re-dispatched when its pidfd reports the death. */
      w->out.off = w->out.len = 0;
      worker_protocol_error(p, w);
      return rc;
    }
    w->out.off += (size_t)n;
  }
  w->out.off = w->out.len = 0;
  return 0;
}

static int eligible(const bl_pool_t *p, const struct bl__worker *w) {
  return !w->stop_sent && !w->doomed && w->pidfd >= 0 &&
         (!p->o.maxtasksperchild || w->nsent < p->o.maxtasksperchild);
}

static int on_sv_thread(const bl_pool_t *p);

/* Take w's result pipe out of the supervisor's epoll set for the calling
 * thread (see claim_wait). Lock held. */
static int claim_take(bl_pool_t *p, struct bl__worker *w, bl_result_t *r) {
  if (w->res_in_ep && epoll_ctl(p->ep, EPOLL_CTL_DEL, w->res_fd, NULL) != 0)
    return -1;
  w->res_in_ep = 0;
  w->claimed = 1;
  atomic_store_explicit(&r->claimed, 1, memory_order_relaxed);
  p->claim_job = r;
  p->claim_w = w;
  p->claimer = pthread_self();
  return 0;
}

/* Put w's result pipe (back) into the epoll set. Lock held. */
static void res_watch(bl_pool_t *p, struct bl__worker *w) {
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &w->tag_res};
  if (epoll_ctl(p->ep, EPOLL_CTL_ADD, w->res_fd, &e) == 0) {
    w->res_in_ep = 1;
  } else {
    /* Cannot watch it: the worker is of no more use (its pidfd reports
     * the death, and the exit path reads the pipe directly). */
    w->res_open = 0;
    worker_protocol_error(p, w);
  }
}

static int send_unit(bl_pool_t *p, struct bl__worker *w, struct bl__unit *u) {
  bl_result_t *r = u->job;
  size_t i0 = (size_t)u->chunk * r->chunksize, n = chunk_items(r, u->chunk);
  size_t at = w->out.len;
  int rc = r->mj ? bl__pw_put_join(&w->out, r->id, u->chunk, r->ext_off, r->task)
         : r->argv ? bl__pw_put_task_v(&w->out, r->id, u->chunk, i0, r->task,
                                       r->argv, r->argvlen, i0, (uint32_t)n)
                   : bl__pw_put_task(&w->out, r->id, u->chunk, i0, r->task,
                                     r->args, r->argoff, r->arglen, i0,
                                     (uint32_t)n);
  if (rc) return rc;
  u->ackf = r->ao.accept_callback || r->soft_ms || r->hard_ms;
  if (u->ackf) w->out.p[at + offsetof(bl__pw_hdr_t, flags)] = BL__PW_F_ACK;
  else if (r->kind == BL__JOB_MAP && !r->mj)
    w->out.p[at + offsetof(bl__pw_hdr_t, flags)] = BL__PW_F_BATCH;
  u->state = BL__U_SENT;
  u->early = 0;
  u->seq = ++w->seq;
  u->next = NULL;
  if (w->if_tail) w->if_tail->next = u;
  else w->if_head = u;
  w->if_tail = u;
  w->nif++;
  w->nsent++;
  /* bl_pool_apply will wait for this: claim the pipe before the frame is
   * written, or the answer may reach the supervisor first. */
  if (r == p->claim_want && w->nif == 1 && w->res_open && !w->claimed &&
      !p->claim_job && claim_take(p, w, r) == 0)
    return 0;
  /* Results will come: the pipe must be watched (see unclaim). */
  if (!w->res_in_ep && !w->claimed && w->res_open) res_watch(p, w);
  return 0;
}

static struct bl__unit *pop_queue(bl_pool_t *p) {
  for (;;) {
    struct bl__unit *u = p->q_head;
    if (!u) return NULL;
    p->q_head = u->next;
    if (!p->q_head) p->q_tail = NULL;
    p->qlen--;
    u->next = NULL;
    bl_result_t *r = u->job;
    /* A join of a shared map whose chunks are all claimed has nothing to
     * do (those who claimed them are still in, or the job failed). */
    if (!u->cancelled && !atomic_load_explicit(&r->ready, memory_order_relaxed) &&
        !(r->mj && atomic_load(&r->mj->next) >= r->nchunks))
      return u;
    /* terminate_job'd, or its map already failed: nothing to run. */
    testcase(u->cancelled);
    bl__pool_unit_done(p, u);
  }
}

void bl__pool_dispatch(bl_pool_t *p) {
  bl__pool_sub_drain(p, 0);
  if (!p->q_head || p->state == BL_POOL_TERMINATE) return;
  size_t ne = 0;
  for (size_t i = 0; i < p->nw; i++) ne += eligible(p, p->w[i]);
  if (!ne) return;
  /* Prefetch only as deep as the queue spreads evenly over the workers, so
   * a short queue never waits behind one busy worker (billiard's shared
   * queue gives a job to whichever worker is free). */
  size_t cap = (p->qlen + ne - 1) / ne;
  if (cap < 1) cap = 1;
  if (cap > p->o.prefetch) cap = p->o.prefetch ? p->o.prefetch : 1;
  int progress = 1;
  while (p->q_head && progress) {
    progress = 0;
    for (size_t i = 0; i < p->nw && p->q_head; i++) {
      struct bl__worker *w = p->w[i];
      if (!eligible(p, w) || w->nif >= cap) continue;
      struct bl__unit *u = pop_queue(p);
      if (!u) break;
      if (send_unit(p, w, u) != 0) {
        bl__pool_fail_unit(p, u, -ENOMEM, NULL, NULL);
        bl__pool_unit_done(p, u);
        continue;
      }
      progress = 1;
    }
  }
  for (size_t i = 0; i < p->nw; i++) {
    struct bl__worker *w = p->w[i];
    if (w->out.len > w->out.off && !w->out_armed && bl__pool_flush(p, w) == 1) {
      bl__sv_arm_out(p, w, 1);
    }
  }
}

void bl__pool_requeue_front(bl_pool_t *p, struct bl__unit *head,
                            struct bl__unit *tail, size_t n) {
  if (!head) return;
  for (struct bl__unit *u = head; u; u = u->next) u->state = BL__U_QUEUED;
  tail->next = p->q_head;
  p->q_head = head;
  if (!p->q_tail) p->q_tail = tail;
  p->qlen += n;
}

void bl__pool_fail_queue(bl_pool_t *p, int code, const char *msg) {
  struct bl__unit *u;
  while ((u = p->q_head)) {
    p->q_head = u->next;
    p->qlen--;
    if (!u->cancelled) bl__pool_fail_unit(p, u, code, NULL, msg);
    bl__pool_unit_done(p, u);
  }
  p->q_tail = NULL;
}

/* Any thread, with or without the lock: awake and kicked are atomic so
 * that a lock-free submitter and a driver going to sleep cannot both miss
 * (the driver clears awake, then looks at the submission stack; the
 * submitter pushes, then looks at awake). */
void bl__pool_kick(bl_pool_t *p) {
  if (atomic_load(&p->awake) || atomic_exchange(&p->kicked, 1)) return;
  uint64_t one = 1;
  ssize_t n = write(p->evfd, &one, sizeof one);
  (void)n; /* a full counter is already a pending wake-up */
}

/* ------------------------------------------------------------- submit */

static int copy_args(bl_result_t *r, const void *const *args,
                     const size_t *lens, size_t n, int borrow) {
  size_t total;
  int rc = args_check(args, lens, n, &total);
  if (rc) return rc;
  if (borrow && n) {
    r->argv = args;
    r->argvlen = lens;
    return 0;
  }
  r->args = malloc(total ? total : 1);
  r->argoff = malloc((n ? n : 1) * sizeof *r->argoff);
  r->arglen = malloc((n ? n : 1) * sizeof *r->arglen);
  if (!r->args || !r->argoff || !r->arglen) return -ENOMEM;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    r->argoff[i] = off;
    r->arglen[i] = lens[i];
    if (lens[i]) memcpy(r->args + off, args[i], lens[i]);
    off += lens[i];
  }
  return 0;
}

static bl_result_t *job_new(bl_pool_t *p, int kind, const char *task,
                            size_t extra) {
  size_t tl = strlen(task) + 1;
  bl_result_t *r = calloc(1, sizeof *r + tl + extra);
  if (!r) return NULL;
  char *name = (char *)(r + 1);
  memcpy(name, task, tl);
  r->task = name;
  r->kind = kind;
  r->pool = p;
  atomic_init(&r->refs, 1); /* the pool's, dropped when units_open hits 0 */
  atomic_init(&r->ready, 0);
  return r;
}

static void set_limits(bl_pool_t *p, bl_result_t *r, const bl_apply_options_t *ao) {
  if (ao)
    r->ao = (struct bl__job_opts){ao->callback, ao->error_callback,
                                  ao->accept_callback, ao->user, ao->chunksize};
  r->soft_ms = ao && ao->soft_time_limit_ms ? ao->soft_time_limit_ms
                                            : p->o.soft_time_limit_ms;
  r->hard_ms = ao && ao->time_limit_ms ? ao->time_limit_ms : p->o.time_limit_ms;
}

static int on_sv_thread(const bl_pool_t *p);
static int wait_locked(bl_pool_t *p, int (*done)(bl_pool_t *, void *),
                       void *arg, int timeout_ms);

static int putslot_free(bl_pool_t *p, void *arg) {
  (void)arg;
  unsigned slots = p->o.putlock_slots ? p->o.putlock_slots : p->target;
  return p->state != BL_POOL_RUN || p->putheld < slots;
}

/* putlocks: wait for a slot (lock held). A callback running inside a step
 * cannot wait for results only that step would deliver: it takes the slot
 * anyway, as billiard's lax semaphore would let it. */
static void putslot_take(bl_pool_t *p, bl_result_t *r) {
  if (!p->o.putlocks || r->kind != BL__JOB_APPLY) return;
  if (!(p->stepping && pthread_equal(p->stepper, pthread_self())))
    wait_locked(p, putslot_free, NULL, -1);
  if (p->state != BL_POOL_RUN) return;
  r->putslot = 1;
  p->putheld++;
}

/* Append an accepted job's units to the queue (the pool's reference is
 * r's first). Lock held. */
static void queue_job(bl_pool_t *p, bl_result_t *r) {
  p->unresolved++;
  if (r->mj) { /* shared map: one join per worker */
    size_t joins = p->target < r->nchunks ? p->target : r->nchunks;
    for (size_t i = 0; i < (joins ? joins : 1); i++) shared_join(p, r, 0);
    return;
  }
  r->nunits = r->nchunks;
  r->units_open = r->nchunks;
  for (size_t c = 0; c < r->nchunks; c++) {
    struct bl__unit *u = &r->units[c];
    u->job = r;
    u->chunk = (uint32_t)c;
    u->state = BL__U_QUEUED;
    queue_append(p, u);
  }
}

/* The submission stack's "closed" mark: no job lives at address 1. */
#define SUB_CLOSED ((bl_result_t *)(uintptr_t)1)

int bl__pool_sub_pending(bl_pool_t *p) {
  bl_result_t *h = atomic_load(&p->sub);
  return h && h != SUB_CLOSED;
}

void bl__pool_sub_drain(bl_pool_t *p, int close) {
  bl_result_t *h = atomic_load(&p->sub);
  for (;;) {
    if (h == SUB_CLOSED || (!h && !close)) return;
    if (atomic_compare_exchange_weak(&p->sub, &h, close ? SUB_CLOSED : NULL))
      break;
  }
  bl_result_t *fifo = NULL; /* the stack is newest first */
  while (h) {
    bl_result_t *n = h->subnext;
    h->subnext = fifo;
    fifo = h;
    h = n;
  }
  for (bl_result_t *n; fifo; fifo = n) {
    n = fifo->subnext;
    fifo->subnext = NULL;
    queue_job(p, fifo);
  }
}

/* Push r (its references taken) without the lock; BL_ENOTRUNNING once the
 * pool left RUN (the stack is closed under the lock when it does). */
static int sub_push(bl_pool_t *p, bl_result_t *r) {
  bl_result_t *h = atomic_load_explicit(&p->sub, memory_order_relaxed);
  do {
    if (h == SUB_CLOSED) return BL_ENOTRUNNING;
    r->subnext = h;
  } while (!atomic_compare_exchange_weak(&p->sub, &h, r));
  bl__pool_kick(p); /* no-op while a driver is awake: it drains first */
  return 0;
}

/* Enqueue r's units (or resolve an empty job). Frees r when refused. Lock
 * held. */
static int enqueue_locked(bl_pool_t *p, bl_result_t *r, bl_result_t **out,
                          int will_wait) {
  putslot_take(p, r);
  if (p->state != BL_POOL_RUN) {
    bl__job_unref(r);
    return BL_ENOTRUNNING;
  }
  bl__pool_sub_drain(p, 0); /* earlier lock-free submissions go first */
  r->id = atomic_fetch_add(&job_counter, 1);
  if (out) atomic_fetch_add(&r->refs, 1);
  if (r->nchunks == 0) {
    p->unresolved++;
    atomic_store(&r->accepted, 1);
    resolve(p, r, 0, NULL, NULL, NULL);
    if (out) *out = r;
    bl__job_unref(r); /* no units: the pool's reference goes now */
    return 0;
  }
  int was_empty = p->q_head == NULL;
  queue_job(p, r);
  /* Nothing queued before: hand the units to idle workers from this thread
   * (the bookkeeping is under the pool lock, which we hold), saving the hop
   * through the supervisor. With a backlog the driver batches (many frames
   * per write), and dispatches again after each result. */
  if (was_empty) {
    if (will_wait && p->have_thread && !p->claim_job && p->cwake >= 0 &&
        !on_sv_thread(p))
      p->claim_want = r;
    bl__pool_dispatch(p);
    p->claim_want = NULL;
  }
  if (p->q_head) bl__pool_kick(p);
  if (out) *out = r;
  return 0;
}

static int enqueue(bl_pool_t *p, bl_result_t *r, bl_result_t **out,
                   int will_wait) {
  pthread_mutex_lock(&p->mu);
  int rc = enqueue_locked(p, r, out, will_wait);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* NULL, or initialised (_init) with reserved left zero. */
static int ao_valid(const bl_apply_options_t *ao) {
  if (!ao) return 1;
  if (ao->size != sizeof *ao) return 0;
  for (size_t i = 0; i < BL__ARRAY_SIZE(ao->reserved); i++)
    if (ao->reserved[i]) return 0;
  return 1;
}

static int apply_submit(bl_pool_t *pool, const char *task, const void *arg,
                        size_t len, const bl_apply_options_t *ao,
                        bl_result_t **out, int will_wait) {
  BL_VALIDATE(pool && task && (arg || !len), -EINVAL);
  BL_VALIDATE(ao_valid(ao), -EINVAL);
  BL_VALIDATE(len <= BL__PW_MAX_BODY, -EMSGSIZE);
  bl_task_fn fn;
  if (bl_lookup_task(task, &fn) != 0) return BL_ENOTFOUND;
  bl_result_t *r = job_new(pool, BL__JOB_APPLY, task, len);
  if (!r) return -ENOMEM;
  uint8_t *a = (uint8_t *)(r + 1) + strlen(task) + 1;
  if (len) memcpy(a, arg, len);
  r->args = a;
  r->off1 = 0;
  r->len1 = len;
  r->argoff = &r->off1;
  r->arglen = &r->len1;
  r->nitems = r->chunksize = r->nchunks = 1;
  r->units = &r->unit1;
  set_limits(pool, r, ao);
  if (will_wait || pool->o.putlocks) return enqueue(pool, r, out, will_wait);
  /* A driver is busy (awake, or holding the lock), or jobs are already
   * waiting on the stack: push without the lock; the driver queues and
   * dispatches them in a batch before it sleeps. Otherwise take the lock
   * and hand the job to an idle worker from this thread (lowest latency). */
  if (!bl__pool_sub_pending(pool) && !atomic_load(&pool->awake) &&
      pthread_mutex_trylock(&pool->mu) == 0) {
    int rc = enqueue_locked(pool, r, out, 0);
    pthread_mutex_unlock(&pool->mu);
    return rc;
  }
  r->id = atomic_fetch_add(&job_counter, 1);
  if (out) atomic_fetch_add(&r->refs, 1); /* before the driver can drop its */
  if (sub_push(pool, r) != 0) {
    if (out) bl__job_unref(r);
    bl__job_unref(r);
    return BL_ENOTRUNNING;
  }
  if (out) *out = r;
  return 0;
}

BL_API int bl_pool_apply_async(bl_pool_t *pool, const char *task,
                               const void *arg, size_t len,
                               const bl_apply_options_t *ao, bl_result_t **out) {
  return apply_submit(pool, task, arg, len, ao, out, 0);
}

static int submit_many(bl_pool_t *p, int kind, const char *task,
                       const void *const *args, const size_t *lens, size_t n,
                       const bl_apply_options_t *ao, bl_result_t **out,
                       int borrow) {
  BL_VALIDATE(p && task && (n == 0 || (args && lens)), -EINVAL);
  BL_VALIDATE(ao_valid(ao), -EINVAL);
  bl_task_fn fn;
  if (bl_lookup_task(task, &fn) != 0) return BL_ENOTFOUND;
  bl_result_t *r = job_new(p, kind, task, 0);
  if (!r) return -ENOMEM;
  set_limits(p, r, ao);
  size_t cs = r->ao.chunksize;
  if (!cs) cs = kind == BL__JOB_MAP ? bl_pool_default_chunksize(n, bl_pool_size(p)) : 1;
  r->chunksize = cs;
  r->nitems = n;
  r->nchunks = (n + cs - 1) / cs;
  int rc = r->nchunks > UINT32_MAX ? -E2BIG : 0;
  /* The shared map path: fork workers, and nothing that needs a unit per
   * chunk (a limit, an accept callback). Else, or without room, pipes. */
  if (rc == 0 && p->arena && kind == BL__JOB_MAP && n && !r->soft_ms &&
      !r->hard_ms && !r->ao.accept_callback)
    rc = shared_gather(p, r, args, lens);
  if (rc >= 0 && !r->mj) rc = copy_args(r, args, lens, n, borrow);
  size_t nc = r->nchunks ? r->nchunks : 1;
  if (r->mj) {
    size_t extra = p->target + 16 < nc ? p->target + 16 : nc;
    r->capunits = nc + extra;
  } else {
    r->capunits = nc;
  }
  if (rc == 0) {
    r->units = calloc(r->capunits, sizeof *r->units);
    r->chunks = calloc(nc, sizeof *r->chunks);
    if (kind != BL__JOB_MAP) r->chcode = calloc(nc, sizeof *r->chcode);
    if (kind == BL__JOB_IMAPU) r->done_order = calloc(nc, sizeof *r->done_order);
    if (!r->units || !r->chunks ||
        (kind != BL__JOB_MAP && !r->chcode) ||
        (kind == BL__JOB_IMAPU && !r->done_order))
      rc = -ENOMEM;
  }
  if (rc) {
    bl__job_unref(r);
    return rc;
  }
  return enqueue(p, r, out, 0);
}

/* ------------------------------------------------------------- waiting */

static int on_sv_thread(const bl_pool_t *p) {
  return p->have_thread && pthread_equal(pthread_self(), p->th);
}

/* Wait until done(p, arg) with the lock held, driving the pool when no
 * supervisor thread does (threads = 0, or a callback on the supervisor).
 * Returns 0, or BL_ETIMEOUT. Called and returns with the lock held. */
static int wait_locked(bl_pool_t *p, int (*done)(bl_pool_t *, void *),
                       void *arg, int timeout_ms) {
  uint64_t end = timeout_ms < 0 ? UINT64_MAX
                                : bl_monotonic_ns() + (uint64_t)timeout_ms * BL__NS_PER_MS;
  while (!done(p, arg)) {
    uint64_t now = bl_monotonic_ns();
    if (now >= end) return BL_ETIMEOUT;
    int ms = end == UINT64_MAX ? -1 : (int)((end - now + BL__NS_PER_MS - 1) / BL__NS_PER_MS);
    int self_drive = (!p->have_thread || p->quit || on_sv_thread(p)) && !p->stepping;
    if (self_drive) {
      pthread_mutex_unlock(&p->mu);
      bl__sv_step(p, ms);
      pthread_mutex_lock(&p->mu);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wake = bl_monotonic_ns() + (ms < 0 || ms > 1000 ? 1000 : (uint64_t)ms) * BL__NS_PER_MS;
    ts.tv_sec = (time_t)(wake / BL__NS_PER_S);
    ts.tv_nsec = (long)(wake % BL__NS_PER_S);
    p->nwaiters++;
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    p->nwaiters--;
  }
  return 0;
}

static int job_ready(bl_pool_t *p, void *arg) {
  (void)p;
  return atomic_load(&((bl_result_t *)arg)->ready);
}

/* Leader/follower for the common blocking case: an apply job that is the
 * only unit in its worker's pipe is waited for by reading that pipe in the
 * waiting thread, with the pipe out of the supervisor's epoll set, so the
 * result does not hop through the supervisor thread (worker -> caller, as
 * the floor's ping-pong). Frames are applied under the lock by the same
 * code as the supervisor's; the supervisor keeps the worker's pidfd and
 * time limits, and a death seen there while the pipe is claimed is handed
 * back (cwake) rather than handled, so the exit path stays the
 * supervisor's. Lock held; returns the worker, or NULL. */
static struct bl__worker *claimable(bl_pool_t *p, bl_result_t *r) {
  if (!p->have_thread || p->quit || p->claim_job || p->cwake < 0 ||
      r->kind != BL__JOB_APPLY || on_sv_thread(p) ||
      (r->unit1.state != BL__U_SENT && r->unit1.state != BL__U_ACKED))
    return NULL;
  for (size_t i = 0; i < p->nw; i++) {
    struct bl__worker *w = p->w[i];
    if (w->if_head == &r->unit1)
      return w->nif == 1 && w->res_open && !w->claimed && w->pidfd >= 0 ? w
                                                                      : NULL;
  }
  return NULL;
}

static void unclaim(bl_pool_t *p, struct bl__worker *w) {
  w->claimed = 0;
  atomic_store_explicit(&p->claim_job->claimed, 0, memory_order_relaxed);
  p->claim_job = NULL;
  p->claim_w = NULL;
  /* Nothing in flight: nothing can come but EOF at its death, which the
   * pidfd reports. Leave the pipe out of the epoll set until send_unit
   * needs it, so back-to-back apply() calls need no epoll_ctl at all. */
  if (w->res_open && w->nif) res_watch(p, w);
  if (w->exit_parked) {
    /* Level-triggered and ready: the supervisor wakes and reaps it. */
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &w->tag_pid};
    w->exit_parked = 0;
    epoll_ctl(p->ep, EPOLL_CTL_ADD, w->pidfd, &e);
  }
}

static int claim_wait(bl_pool_t *p, bl_result_t *r, struct bl__worker *w,
                      int timeout_ms) {
  uint64_t end = timeout_ms < 0 ? UINT64_MAX
                                : bl_monotonic_ns() + (uint64_t)timeout_ms * BL__NS_PER_MS;
  int rc = 0;
  while (!atomic_load_explicit(&r->ready, memory_order_relaxed) &&
         w->res_open && !w->exit_parked) {
    uint64_t now = end == UINT64_MAX ? 0 : bl_monotonic_ns();
    if (now >= end) {
      rc = BL_ETIMEOUT;
      break;
    }
    int ms = end == UINT64_MAX ? -1 : (int)((end - now + BL__NS_PER_MS - 1) / BL__NS_PER_MS);
    int err = bl__buf_reserve(&w->in, 65536);
    pthread_mutex_unlock(&p->mu);
    /* Unlocked: w->in and the pipe are ours while claimed. */
    struct pollfd pf[2] = {{.fd = w->res_fd, .events = POLLIN},
                           {.fd = p->cwake, .events = POLLIN}};
    ssize_t n = -1;
    int pr = err ? -1 : poll(pf, 2, ms);
    if (pr < 0 && !err && errno != EINTR) err = -errno;
    if (pr > 0 && pf[1].revents) {
      uint64_t junk; /* re-checked below, under the lock */
      if (read(p->cwake, &junk, sizeof junk) < 0) junk = 0;
    }
    if (pr > 0 && pf[0].revents) {
      err = BL_FAULT("pool/result/read", EIO);
      if (!err) {
        n = read(w->res_fd, w->in.p + w->in.len, w->in.cap - w->in.len);
        if (n < 0) err = errno == EINTR || errno == EAGAIN ? 0 : -errno;
      }
    }
    pthread_mutex_lock(&p->mu);
    int handled = 0;
    if (n > 0) {
      w->in.len += (size_t)n;
      err = parse_frames(p, w, &handled);
      /* A worker got free: queued work must not wait for the driver. */
      if (handled) bl__pool_dispatch(p);
    }
    if (pr < 0 && err) break; /* cannot poll: wait the usual way */
    if (n == 0 || err) {
      /* As in bl__pool_on_readable: EOF, or a worker not to be trusted. */
      if (err) worker_protocol_error(p, w);
      w->res_open = 0;
    }
  }
  unclaim(p, w);
  if (rc == 0 && !atomic_load_explicit(&r->ready, memory_order_relaxed)) {
    uint64_t now = bl_monotonic_ns();
    int ms = end == UINT64_MAX ? -1
             : now >= end      ? 0
                               : (int)((end - now + BL__NS_PER_MS - 1) / BL__NS_PER_MS);
    rc = wait_locked(p, job_ready, r, ms);
  }
  return rc;
}

BL_API int bl_result_wait(bl_result_t *r, int timeout_ms) {
  BL_VALIDATE(r, -EINVAL);
  if (atomic_load_explicit(&r->ready, memory_order_acquire) &&
      !atomic_load_explicit(&r->claimed, memory_order_relaxed))
    return 0;
  bl_pool_t *p = r->pool;
  pthread_mutex_lock(&p->mu);
  struct bl__worker *w = NULL;
  if (p->claim_job == r && pthread_equal(p->claimer, pthread_self()))
    w = p->claim_w; /* taken at dispatch by bl_pool_apply */
  else if ((w = claimable(p, r)) && claim_take(p, w, r) != 0)
    w = NULL;
  int rc = w ? claim_wait(p, r, w, timeout_ms)
             : wait_locked(p, job_ready, r, timeout_ms);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

BL_API int bl_result_get(bl_result_t *r, int timeout_ms, const void **value,
                         size_t *len, bl_error_info_t *err) {
  BL_VALIDATE(r, -EINVAL);
  int rc = bl_result_wait(r, timeout_ms);
  if (rc) return rc;
  if (value) *value = NULL;
  if (len) *len = 0;
  if (r->code) {
    if (err) bl_error_info_set(err, r->err.code, r->err.type, r->err.message,
                               r->err.traceback);
    return r->code;
  }
  if (r->kind == BL__JOB_APPLY) {
    if (value) *value = r->item1.p;
    if (len) *len = r->item1.len;
  } else if (len) {
    *len = r->nitems;
  }
  return 0;
}

BL_API int bl_result_ready(const bl_result_t *r) {
  return r && atomic_load_explicit(&((bl_result_t *)r)->ready, memory_order_acquire);
}

BL_API int bl_result_successful(const bl_result_t *r) {
  BL_VALIDATE(r, -EINVAL);
  if (!bl_result_ready(r)) return BL_ESTATE;
  return r->code == 0;
}

/* A pending job may run without its ACK frame read yet (no accept
 * callback, no limit): look at the workers' shared pages. A ready job's
 * ACK was always read before its outcome (or it never started). */
static void catch_up_pending(const bl_result_t *cr) {
  bl_result_t *r = (bl_result_t *)cr;
  if (atomic_load(&r->accepted) || atomic_load(&r->ready)) return;
  pthread_mutex_lock(&r->pool->mu);
  catch_up_all(r->pool);
  pthread_mutex_unlock(&r->pool->mu);
}

BL_API int bl_result_accepted(const bl_result_t *r) {
  if (!r) return 0;
  catch_up_pending(r);
  /* A shared map job: every chunk claimed (it starts right away). */
  if (r->mj && !atomic_load(&r->accepted) && atomic_load(&r->mj->next) >= r->nchunks)
    atomic_store(&((bl_result_t *)r)->accepted, 1);
  return atomic_load(&((bl_result_t *)r)->accepted);
}

BL_API pid_t bl_result_worker_pid(const bl_result_t *r) {
  if (!r) return 0;
  catch_up_pending(r);
  return (pid_t)atomic_load(&((bl_result_t *)r)->pid);
}

BL_API uint64_t bl_result_job_id(const bl_result_t *r) { return r ? r->id : 0; }

BL_API size_t bl_result_count(const bl_result_t *r) { return r ? r->nitems : 0; }

/* Item i of a ready map job, or of an ended imap chunk. */
static void item_at(const bl_result_t *r, size_t i, const void **value,
                    size_t *len) {
  if (r->kind == BL__JOB_APPLY) {
    if (value) *value = r->item1.p;
    if (len) *len = r->item1.len;
    return;
  }
  const struct bl__chunk *ch = &r->chunks[i / r->chunksize];
  size_t k = i % r->chunksize;
  if (!ch->off) { /* packed: equal lengths */
    if (value) *value = ch->buf + k * ch->stride;
    if (len) *len = ch->stride;
    return;
  }
  uint32_t l;
  memcpy(&l, ch->buf + ch->off[k], 4);
  if (value) *value = ch->buf + ch->off[k] + 4;
  if (len) *len = l;
}

BL_API int bl_result_item(const bl_result_t *r, size_t i, const void **value,
                          size_t *len) {
  BL_VALIDATE(r, -EINVAL);
  if (!bl_result_ready(r) || r->code) return BL_ESTATE;
  if (i >= r->nitems) return -ERANGE;
  item_at(r, i, value, len);
  return 0;
}

/* ---------------------------------------------------------- public API */

BL_API int bl_pool_apply(bl_pool_t *pool, const char *task, const void *arg,
                         size_t len, const bl_apply_options_t *ao,
                         void **value, size_t *vlen, bl_error_info_t *err) {
  bl_result_t *r = NULL;
  int rc = apply_submit(pool, task, arg, len, ao, &r, 1);
  if (rc) return rc;
  const void *v;
  size_t l;
  rc = bl_result_get(r, -1, &v, &l, err);
  if (rc == 0 && value) {
    *value = l ? malloc(l) : NULL;
    if (l && !*value) rc = -ENOMEM;
    else if (l) memcpy(*value, v, l);
  }
  if (rc == 0 && vlen) *vlen = l;
  bl_result_free(&r);
  return rc;
}

BL_API int bl_pool_map_async(bl_pool_t *pool, const char *task,
                             const void *const *args, const size_t *lens,
                             size_t n, const bl_apply_options_t *ao,
                             bl_result_t **out) {
  return submit_many(pool, BL__JOB_MAP, task, args, lens, n, ao, out, 0);
}

BL_API int bl_pool_map(bl_pool_t *pool, const char *task,
                       const void *const *args, const size_t *lens, size_t n,
                       const bl_apply_options_t *ao, bl_result_t **out,
                       bl_error_info_t *err) {
  BL_VALIDATE(out, -EINVAL);
  *out = NULL;
  /* We wait until the job is ready, and no unit is encoded after that
   * (pop_queue drops units of a ready job): TASK frames are encoded straight
   * from the caller's arrays, without a copy of every item. */
  int rc = submit_many(pool, BL__JOB_MAP, task, args, lens, n, ao, out, 1);
  if (rc) return rc;
  return bl_result_get(*out, -1, NULL, NULL, err);
}

BL_API int bl_pool_starmap_async(bl_pool_t *pool, const char *task,
                                 const void *const *args, const size_t *lens,
                                 size_t n, const bl_apply_options_t *ao,
                                 bl_result_t **out) {
  return bl_pool_map_async(pool, task, args, lens, n, ao, out);
}

BL_API int bl_pool_starmap(bl_pool_t *pool, const char *task,
                           const void *const *args, const size_t *lens,
                           size_t n, const bl_apply_options_t *ao,
                           bl_result_t **out, bl_error_info_t *err) {
  return bl_pool_map(pool, task, args, lens, n, ao, out, err);
}

/* -------------------------------------------------------------- imap */

struct bl_imap {
  bl_result_t *r;
  size_t pos;   /* imap: next item; imap_unordered: next done_order slot */
  size_t sub;   /* imap_unordered: next item within that chunk */
};

static int imap_new(bl_pool_t *pool, int kind, const char *task,
                    const void *const *args, const size_t *lens, size_t n,
                    const bl_apply_options_t *ao, bl_imap_t **out) {
  BL_VALIDATE(out, -EINVAL);
  bl_imap_t *it = calloc(1, sizeof *it);
  if (!it) return -ENOMEM;
  int rc = submit_many(pool, kind, task, args, lens, n, ao, &it->r, 0);
  if (rc) {
    free(it);
    return rc;
  }
  *out = it;
  return 0;
}

BL_API int bl_pool_imap(bl_pool_t *pool, const char *task,
                        const void *const *args, const size_t *lens, size_t n,
                        const bl_apply_options_t *ao, bl_imap_t **out) {
  return imap_new(pool, BL__JOB_IMAP, task, args, lens, n, ao, out);
}

BL_API int bl_pool_imap_unordered(bl_pool_t *pool, const char *task,
                                  const void *const *args, const size_t *lens,
                                  size_t n, const bl_apply_options_t *ao,
                                  bl_imap_t **out) {
  return imap_new(pool, BL__JOB_IMAPU, task, args, lens, n, ao, out);
}

static int imap_avail(bl_pool_t *p, void *arg) {
  (void)p;
  bl_imap_t *it = arg;
  bl_result_t *r = it->r;
  if (r->kind == BL__JOB_IMAPU) return it->pos < r->ndone || it->pos >= r->nchunks;
  if (it->pos >= r->nitems) return 1;
  return r->chcode[it->pos / r->chunksize] != 0;
}

BL_API int bl_imap_next(bl_imap_t *it, int timeout_ms, const void **value,
                        size_t *len, bl_error_info_t *err) {
  BL_VALIDATE(it, -EINVAL);
  bl_result_t *r = it->r;
  if (r->nchunks == 0) return BL_EEOF;
  bl_pool_t *p = r->pool;
  int ready = bl_result_ready(r);
  if (!ready) pthread_mutex_lock(&p->mu);
  int rc = ready ? 0 : wait_locked(p, imap_avail, it, timeout_ms);
  size_t chunk = 0, item = 0;
  int code = 0;
  if (rc == 0) {
    if (r->kind == BL__JOB_IMAPU) {
      if (it->pos >= r->nchunks) rc = BL_EEOF;
      else chunk = r->done_order[it->pos];
    } else {
      if (it->pos >= r->nitems) rc = BL_EEOF;
      else chunk = it->pos / r->chunksize;
    }
  }
  if (rc == 0) {
    code = r->chcode[chunk];
    size_t first = chunk * r->chunksize;
    size_t cn = r->nitems - first < r->chunksize ? r->nitems - first : r->chunksize;
    if (code != 1) { /* a failed chunk yields one error, then is skipped */
      if (err && r->cherr)
        bl_error_info_set(err, r->cherr[chunk].code, r->cherr[chunk].type,
                          r->cherr[chunk].message, r->cherr[chunk].traceback);
      rc = code;
      if (r->kind == BL__JOB_IMAPU) it->pos++, it->sub = 0;
      else it->pos = first + cn;
    } else {
      item = r->kind == BL__JOB_IMAPU ? first + it->sub : it->pos;
      item_at(r, item, value, len);
      if (r->kind == BL__JOB_IMAPU) {
        if (++it->sub >= cn) it->pos++, it->sub = 0;
      } else {
        it->pos++;
      }
    }
  }
  if (!ready) pthread_mutex_unlock(&p->mu);
  return rc;
}

BL_API bl_result_t *bl_imap_result(bl_imap_t *it) { return it ? it->r : NULL; }

BL_API void bl_imap_free(bl_imap_t **it) {
  if (!it || !*it) return;
  bl_result_free(&(*it)->r);
  free(*it);
  *it = NULL;
}

/* ----------------------------------------------------------- lifecycle */

BL_API int bl_pool_state(const bl_pool_t *pool) {
  if (!pool) return -EINVAL;
  bl_pool_t *p = (bl_pool_t *)pool;
  pthread_mutex_lock(&p->mu);
  int s = p->state;
  pthread_mutex_unlock(&p->mu);
  return s;
}

BL_API int bl_pool_error(bl_pool_t *pool, bl_error_info_t *info) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  int code = pool->broken_code;
  if (code && info)
    bl_error_info_set(info, code, pool->broken.type, pool->broken.message, NULL);
  pthread_mutex_unlock(&pool->mu);
  return code;
}

BL_API int bl_pool_close(bl_pool_t *pool) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  if (pool->state == BL_POOL_RUN) pool->state = BL_POOL_CLOSE;
  bl__pool_sub_drain(pool, 1); /* what got in before still runs */
  bl__pool_notify(pool); /* putlocks waiters give up */
  bl__pool_kick(pool);
  pthread_mutex_unlock(&pool->mu);
  return 0;
}

static int no_workers(bl_pool_t *p, void *arg) {
  (void)arg;
  /* Callbacks still running elsewhere count as work; our own (a callback
   * calling terminate) cannot be waited for. */
  return p->nw == 0 && p->unresolved == 0 && p->ndefs == 0 &&
         p->in_defs <= bl__cb_depth;
}

/* Fail every unresolved job with code; signal every worker. Lock held. */
static void fail_all(bl_pool_t *p, int code, const char *msg) {
  bl__pool_fail_queue(p, code, msg);
  for (size_t i = 0; i < p->nw; i++)
    for (struct bl__unit *u = p->w[i]->if_head; u; u = u->next)
      bl__pool_fail_unit(p, u, code, NULL, msg);
}

BL_API int bl_pool_terminate(bl_pool_t *pool) {
  BL_VALIDATE(pool, -EINVAL);
  bl_pool_t *p = pool;
  pthread_mutex_lock(&p->mu);
  if (p->state != BL_POOL_TERMINATE) {
    p->state = BL_POOL_TERMINATE;
    bl__pool_sub_drain(p, 1);
    fail_all(p, BL_ETERMINATED, "Pool terminated");
    uint64_t now = bl__pool_now(p);
    for (size_t i = 0; i < p->nw; i++) {
      struct bl__worker *w = p->w[i];
      if (w->doomed && w->kill_at != BL__TL_NEVER) continue;
      w->doomed = 1;
      bl__sv_signal(p, w, SIGTERM);
      w->kill_at = now + (uint64_t)p->o.kill_grace_ms * BL__NS_PER_MS;
    }
    bl__pool_kick(p);
  }
  int rc = 0;
  if (!on_sv_thread(p) || !p->stepping) rc = wait_locked(p, no_workers, NULL, -1);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

BL_API int bl_pool_join(bl_pool_t *pool, int timeout_ms) {
  BL_VALIDATE(pool, -EINVAL);
  bl_pool_t *p = pool;
  pthread_mutex_lock(&p->mu);
  if (p->state == BL_POOL_RUN || on_sv_thread(p)) {
    pthread_mutex_unlock(&p->mu);
    return BL_ESTATE;
  }
  bl__pool_kick(p);
  int rc = wait_locked(p, no_workers, NULL, timeout_ms);
  if (rc == 0 && p->have_thread && !p->joined) {
    p->quit = 1;
    p->awake = 0;
    bl__pool_kick(p);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_lock(&p->mu);
    p->joined = 1;
  }
  if (rc == 0 && p->broken_code && !p->broken_reported_join) {
    p->broken_reported_join = 1;
    rc = p->broken_code;
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

BL_API int bl_pool_terminate_job(bl_pool_t *pool, bl_result_t *r, int sig) {
  BL_VALIDATE(pool && r && r->pool == pool, -EINVAL);
  if (sig == 0) sig = SIGTERM;
  BL_VALIDATE(sig > 0 && sig < NSIG, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  bl__pool_sub_drain(pool, 0); /* r may still be on the stack */
  catch_up_all(pool); /* a unit running without an ACK frame yet */
  if (!atomic_load(&r->ready)) {
    char msg[16];
    snprintf(msg, sizeof msg, "%d", sig);
    for (size_t c = 0; c < r->nunits; c++) {
      struct bl__unit *u = &r->units[c];
      if (u->state == BL__U_QUEUED || u->state == BL__U_SENT) {
        /* Not started. A unit already in a worker's pipe still runs there
         * (the worker cannot be told), but its outcome is discarded. */
        u->cancelled = 1;
        bl__pool_fail_unit(pool, u, BL_ETERMINATED, NULL, msg);
      } else if (u->state == BL__U_ACKED && !u->cancelled) {
        for (size_t i = 0; i < pool->nw; i++) {
          struct bl__worker *w = pool->w[i];
          if (w->running != u) continue;
          w->term_unit = u;
          w->term_sig = sig;
          bl__sv_signal(pool, w, sig);
        }
      }
    }
  }
  pthread_mutex_unlock(&pool->mu);
  return 0;
}

BL_API int bl_pool_terminate_job_pid(bl_pool_t *pool, pid_t pid, uint64_t job,
                                     int sig) {
  BL_VALIDATE(pool, -EINVAL);
  if (sig == 0) sig = SIGTERM;
  BL_VALIDATE(sig > 0 && sig < NSIG, -EINVAL);
  int rc = -ESRCH;
  pthread_mutex_lock(&pool->mu);
  catch_up_all(pool);
  for (size_t i = 0; i < pool->nw; i++) {
    struct bl__worker *w = pool->w[i];
    if (w->pid != pid || !w->running || w->running->job->id != job ||
        w->running_resolved)
      continue;
    w->term_unit = w->running;
    w->term_sig = sig;
    bl__sv_signal(pool, w, sig);
    rc = 0;
  }
  pthread_mutex_unlock(&pool->mu);
  return rc;
}

BL_API int bl_pool_grow(bl_pool_t *pool, unsigned n) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  int rc = pool->state == BL_POOL_RUN ? 0 : BL_ENOTRUNNING;
  /* The same cap as bl_pool_new's processes (no wrap, no fork storm). */
  if (rc == 0 && (pool->target > 4096 || n > 4096 - pool->target)) rc = -EINVAL;
  if (rc == 0) {
    pool->target += n;
    bl__pool_kick(pool);
  }
  pthread_mutex_unlock(&pool->mu);
  return rc;
}

BL_API int bl_pool_shrink(bl_pool_t *pool, unsigned n) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  unsigned done = 0;
  for (size_t i = 0; i < pool->nw && done < n; i++) {
    struct bl__worker *w = pool->w[i];
    if (w->nif || w->stop_sent || w->doomed) continue;
    w->retire = 1;
    w->stop_sent = 1;
    bl__pw_put_simple(&w->out, BL__PW_STOP, 0, 0);
    bl__pool_flush(pool, w);
    done++;
  }
  pool->target = pool->target > done ? pool->target - done : 0;
  pthread_mutex_unlock(&pool->mu);
  return done < n ? -EBUSY : 0;
}

BL_API int bl_pool_restart(bl_pool_t *pool) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  int rc = !pool->o.allow_restart ? BL_ESTATE
           : pool->state != BL_POOL_RUN ? BL_ENOTRUNNING : 0;
  for (size_t i = 0; rc == 0 && i < pool->nw; i++) {
    struct bl__worker *w = pool->w[i];
    if (w->stop_sent || w->doomed) continue;
    w->stop_sent = 1; /* replaced by maintenance when it exits */
    bl__pw_put_simple(&w->out, BL__PW_STOP, 0, 0);
    if (!w->out_armed && bl__pool_flush(pool, w) == 1) {
      bl__sv_arm_out(pool, w, 1);
    }
  }
  if (rc == 0) bl__pool_kick(pool);
  pthread_mutex_unlock(&pool->mu);
  return rc;
}

BL_API int bl_pool_maintain_pool(bl_pool_t *pool) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  int rc = pool->broken_code;
  bl__pool_kick(pool);
  pthread_mutex_unlock(&pool->mu);
  if (!pool->have_thread && rc == 0) bl__sv_step(pool, 0);
  return rc;
}

BL_API unsigned bl_pool_size(const bl_pool_t *pool) {
  return pool ? pool->target : 0;
}

BL_API int bl_pool_pids(bl_pool_t *pool, pid_t *pids, size_t cap) {
  BL_VALIDATE(pool && (pids || !cap), -EINVAL);
  pthread_mutex_lock(&pool->mu);
  size_t n = 0;
  for (size_t i = 0; i < pool->nw; i++) {
    if (n < cap) pids[n] = pool->w[i]->pid;
    n++;
  }
  pthread_mutex_unlock(&pool->mu);
  return (int)n;
}

BL_API int bl_pool_worker_name(bl_pool_t *pool, pid_t pid, char *buf,
                               size_t cap) {
  BL_VALIDATE(pool && buf && cap, -EINVAL);
  int rc = -ESRCH;
  pthread_mutex_lock(&pool->mu);
  for (size_t i = 0; i < pool->nw; i++) {
    if (pool->w[i]->pid != pid) continue;
    int n = snprintf(buf, cap, "%s-%u", bl__pool_worker_prefix(pool), pool->w[i]->no);
    rc = n >= 0 && (size_t)n < cap ? 0 : -ERANGE;
    break;
  }
  pthread_mutex_unlock(&pool->mu);
  return rc;
}

BL_API int bl_pool_fd(const bl_pool_t *pool) {
  BL_VALIDATE(pool && !pool->have_thread, -EINVAL);
  return pool->ep;
}

BL_API int bl_pool_step(bl_pool_t *pool, int timeout_ms) {
  BL_VALIDATE(pool && !pool->have_thread, -EINVAL);
  int n = bl__sv_step(pool, timeout_ms);
  pthread_mutex_lock(&pool->mu);
  if (pool->broken_code && !pool->broken_reported_step) {
    pool->broken_reported_step = 1;
    n = pool->broken_code;
  }
  pthread_mutex_unlock(&pool->mu);
  return n;
}

BL_API int bl_pool_wakeup(bl_pool_t *pool) {
  BL_VALIDATE(pool, -EINVAL);
  pthread_mutex_lock(&pool->mu);
  bl__pool_kick(pool);
  pthread_mutex_unlock(&pool->mu);
  return 0;
}

const char *bl__pool_worker_prefix(const bl_pool_t *p) {
  /* billiard: the context's Process class name with Process -> PoolWorker. */
  static const char *const prefix[] = {"ForkPoolWorker", "SpawnPoolWorker",
                                       "ForkServerPoolWorker"};
  return prefix[p->method >= 0 && p->method < 3 ? p->method : 0];
}

static int started(bl_pool_t *p, void *arg) {
  (void)arg;
  return p->started;
}

BL_API int bl_pool_new(bl_pool_t **out, const bl_pool_options_t *o) {
  BL_VALIDATE(out, -EINVAL);
  bl_pool_options_t def;
  if (!o) {
    bl_pool_options_init(&def);
    o = &def;
  }
  BL_VALIDATE(o->size == sizeof *o, -EINVAL);
  for (size_t i = 0; i < BL__ARRAY_SIZE(o->reserved); i++)
    BL_VALIDATE(o->reserved[i] == 0, -EINVAL);
  BL_VALIDATE(o->processes <= 4096, -EINVAL);
  BL_VALIDATE(!o->initarg_len || o->initarg, -EINVAL);
  /* NULL = the default method, which this fixes (billiard's context). */
  int method = bl__method_resolve(o->start_method);
  if (method < 0) return -EINVAL;
  /* A function pointer means nothing in a spawn/forkserver worker's image. */
  if (method != BL__M_FORK && o->on_process_exit) return BL_ENOTSUPPORTED;
  bl_task_fn fn;
  if (o->initializer && bl_lookup_task(o->initializer, &fn) != 0) return BL_ENOTFOUND;
  bl_pool_t *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  p->o = *o;
  p->method = method;
  p->o.start_method = bl__method_name(method);
  p->ep = p->evfd = p->tfd = p->cwake = -1;
  if (!p->o.prefetch) p->o.prefetch = 1;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  p->target = o->processes ? o->processes : (unsigned)(ncpu > 0 ? ncpu : 1);
  p->initializer = o->initializer ? bl__strdup(o->initializer) : NULL;
  p->o.initializer = p->initializer;
  if (o->initarg_len) {
    p->initarg = malloc(o->initarg_len);
    if (p->initarg) memcpy(p->initarg, o->initarg, o->initarg_len);
  }
  p->o.initarg = p->initarg;
  bl__restart_init(&p->rs, o->max_restarts,
                   (uint64_t)o->max_restart_freq_ms * BL__NS_PER_MS);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  /* Made before the first worker starts: fork workers inherit it, the
   * others map its memfd. Without one (no memory, no fd), maps go through
   * the pipes. */
  if (bl__arena_new(&p->arena, BL__ARENA_SIZE, method != BL__M_FORK) != 0)
    p->arena = NULL;
  int rc = (o->initializer && !p->initializer) || (o->initarg_len && !p->initarg)
               ? -ENOMEM
               : bl__sv_init(p);
  if (rc == 0 && o->threads) {
    /* Workers are forked by the supervisor thread, which outlives them:
     * PR_SET_PDEATHSIG follows the forking thread, not the process. */
    pthread_t th;
    pthread_mutex_lock(&p->mu);
    p->have_thread = 1;
    rc = -pthread_create(&th, NULL, bl__sv_thread, p);
    if (rc == 0) {
      wait_locked(p, started, NULL, -1);
      rc = p->init_rc;
    } else {
      p->have_thread = 0;
    }
    pthread_mutex_unlock(&p->mu);
  } else if (rc == 0) {
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->target && rc == 0; i++) rc = bl__sv_spawn(p);
    p->started = 1;
    pthread_mutex_unlock(&p->mu);
    if (rc == 0) bl__sv_step(p, 0); /* runs on_process_up */
  }
  if (rc) {
    bl_pool_t *q = p;
    bl_pool_free(&q);
    return rc;
  }
  *out = p;
  return 0;
}

BL_API void bl_pool_free(bl_pool_t **pool) {
  if (!pool || !*pool) return;
  bl_pool_t *p = *pool;
  *pool = NULL;
  pthread_mutex_lock(&p->mu);
  bl__pool_sub_drain(p, 0);
  int busy = p->nw || p->unresolved;
  pthread_mutex_unlock(&p->mu);
  if (busy) bl_pool_terminate(p);
  else bl_pool_close(p);
  if (!on_sv_thread(p)) bl_pool_join(p, -1);
  /* join ends when every job is resolved and no worker is alive, which
   * can leave units of resolved jobs queued (no worker was there to drop
   * them: a crash loop backing off). Each holds the pool's reference to
   * its job; failing them again is a no-op for the job itself. */
  pthread_mutex_lock(&p->mu);
  bl__pool_fail_queue(p, BL_ETERMINATED, "Pool terminated");
  pthread_mutex_unlock(&p->mu);
  bl__sv_fini(p);
  free(p->defs);
  free(p->w);
  free(p->initializer);
  free(p->initarg);
  bl_error_info_clear(&p->broken);
  bl__arena_unref(p->arena); /* results still held keep it mapped */
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
