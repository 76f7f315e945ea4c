/* poolint.h: the pool's internal state, shared by pool.c (API, jobs,
 * dispatch, results), supervisor.c (event loop, workers' lives) and
 * worker.c (child side). Never installed.
 *
 * Locking: one mutex per pool guards everything below except the fields
 * marked atomic. Callbacks never run under it: handlers queue "deferred"
 * entries, which the driving thread runs after unlocking. */
#ifndef BL_POOLINT_H
#define BL_POOLINT_H

#include <pthread.h>
#include <stdatomic.h>

#include <billiard/pool.h>

#include "arena.h"
#include "poolwire.h"
#include "restart.h"
#include "timelimits.h"

enum { BL__JOB_APPLY, BL__JOB_MAP, BL__JOB_IMAP, BL__JOB_IMAPU };
/* Unit = what one TASK frame carries: an apply job, or one map chunk.
 *   QUEUED (pool queue) -> SENT (in a worker's pipe) -> ACKED (running)
 *   -> DONE; SENT units of a dead worker go back to QUEUED. */
enum { BL__U_QUEUED, BL__U_SENT, BL__U_ACKED, BL__U_DONE };

struct bl__unit {
  struct bl__unit *next;
  bl_result_t *job;
  uint32_t chunk;
  uint8_t state;
  uint8_t cancelled;  /* terminate_job before it started: drop, don't run */
  uint8_t early;      /* ACKED from the shared page; its ACK frame is due */
  uint8_t ackf;       /* sent with BL__PW_F_ACK: an ACK frame will come */
  uint64_t seq;       /* the worker's frame number while SENT/ACKED */
};

struct bl__item {
  const uint8_t *p;
  size_t len;
};

/* A map chunk's results. When all its items have the same length (the
 * common case) they are stored packed, without their length prefixes:
 * item k is buf[k * stride, +stride), off is NULL. Otherwise the READY
 * body is kept as it came (items with their 4-byte length prefixes) and
 * item k's prefix is at buf + off[k]. */
struct bl__chunk {
  uint8_t *buf;
  uint32_t *off;
  uint32_t stride;
};

/* The head of a shared map job's extent in the pool's arena (arena.h),
 * read and written by the workers, so offsets (from the head), no
 * pointers. Arguments: packed (item i at args + i * astride) when all have
 * one length, else with 4-byte length prefixes, chunk k's from
 * args + choff[k]. Chunk k's results: cdesc[k], in the result area. The
 * counters sit on their own cache lines (both workers hit them). */
#define BL__MJ_PREFIXED UINT32_MAX
/* MADV_POPULATE_WRITE (Linux 5.14; older kernels say EINVAL, and the pages
 * then fault in one by one). */
#define BL__MADV_POPULATE_WRITE 23
struct bl__mjob {
  _Alignas(64) atomic_uint next;            /* next chunk to claim */
  _Alignas(64) atomic_uint_fast64_t rused;  /* result bytes handed out */
  _Alignas(64) atomic_uint abort;           /* the job ended: claim no more */
  uint32_t nchunks, astride;
  uint64_t nitems, chunksize;
  uint64_t args, choff, cdesc, res, rcap;
};
struct bl__mchunk {
  uint64_t off, len;  /* from the head: over its arguments, or in the
                       * result area */
  uint32_t stride;    /* packed item length, or BL__MJ_PREFIXED */
  atomic_uint state;  /* 1 once stored (release) */
};

/* What a job keeps of its bl_apply_options_t (the limits are in soft_ms /
 * hard_ms): a quarter of its size, for a smaller result per apply. */
struct bl__job_opts {
  bl_result_cb callback;
  bl_error_cb error_callback;
  bl_accept_cb accept_callback;
  void *user;
  size_t chunksize;
};

/* Chunk bodies are bump-allocated from a job's blocks: one allocation per
 * block, not per chunk. A block is sized for the chunks still to come (as
 * large as the one being stored); a large one is mmap'd with its pages
 * populated at once (mapped != 0), which costs a fraction of taking one
 * page fault per 4 KiB in the thread that stores results. */
struct bl__blk {
  struct bl__blk *next;
  size_t cap, used;
  size_t mapped;              /* bytes mmap'd (header included), or 0 */
  uint8_t data[];
};

struct bl_result {
  atomic_int refs;
  atomic_int ready;           /* 1 once resolved; read without the lock */
  bl_pool_t *pool;
  uint64_t id;
  int kind;
  const char *task;           /* points into this allocation */
  /* inputs: item i is args[argoff[i], +arglen[i]) */
  uint8_t *args;
  size_t *argoff, *arglen;
  /* blocking map: the caller's own arrays, read until the job is ready
   * (the caller waits that long); args is then NULL */
  const void *const *argv;
  const size_t *argvlen;
  size_t nitems, chunksize, nchunks;
  struct bl__unit *units;
  size_t nunits, capunits;    /* units handed out (shared map: joins) */
  /* shared map path: the job's extent in the pool's arena (a reference) */
  bl__arena_t *arena;
  size_t ext_off, ext_len;
  struct bl__mjob *mj;
  size_t units_open;          /* units not DONE; the pool's reference */
  size_t nacked, ndone;
  /* outputs */
  struct bl__chunk *chunks;   /* map/imap: nchunks READY bodies */
  struct bl__blk *blk;        /* ...stored in these (newest first) */
  int *chcode;                /* imap: per-chunk outcome */
  bl_error_info_t *cherr;     /* imap: per-chunk error (NULL until needed) */
  size_t *done_order;         /* imap_unordered: chunks by completion */
  int code;
  bl_error_info_t err;
  atomic_int pid;              /* read without the lock */
  atomic_int accepted;
  atomic_int claimed;          /* a caller holds its worker's pipe */
  int timeout_set;            /* on_timeout_set fired: cancel due */
  int putslot;                /* holds a putlocks slot until resolved */
  uint32_t soft_ms, hard_ms;  /* effective limits */
  struct bl__job_opts ao;
  /* apply jobs keep their one unit/item/buffers inline (one malloc) */
  struct bl__unit unit1;
  struct bl__item item1;
  struct bl_result *subnext;  /* on the pool's submission stack */
  uint8_t *buf1;              /* malloc'd result, NULL when in small */
  size_t off1, len1;
  uint8_t small[32];          /* small apply results live here */
};

/* Shared page between the parent and one worker. */
struct bl__wshm {
  atomic_uint_fast64_t soft_seq;    /* frame whose soft limit fired */
  atomic_uint_fast64_t started_seq; /* last frame the worker started */
};

enum { BL__TAG_RES = 1, BL__TAG_PID, BL__TAG_TASK, BL__TAG_EVENT, BL__TAG_TIMER };
struct bl__tag {
  int kind;
  struct bl__worker *w;
};

struct bl__worker {
  pid_t pid;
  unsigned no;                /* N of its name, ForkPoolWorker-N */
  int pidfd, task_fd, res_fd;
  int st_fd;                  /* spawn/forkserver start status, read end */
  int task_rd;                /* our copy of the task pipe's read end: a
                               * write to a dead worker never raises
                               * SIGPIPE (its pidfd reports the death) */
  struct bl__wshm *shm;
  struct bl__unit *if_head, *if_tail; /* in flight, in pipe order */
  unsigned nif;
  unsigned nsent;             /* units ever sent (maxtasksperchild) */
  uint64_t seq;               /* last TASK frame number sent */
  bl__buf_t out, in;
  int out_armed;              /* EPOLLOUT registered */
  int res_open;               /* result pipe still open for reading */
  int res_in_ep;              /* ...and in the epoll set: not while
                               * claimed, nor while nothing is in flight
                               * after a claim (re-added by send_unit) */
  int claimed;                /* a waiting caller reads the result pipe
                               * itself (out of the epoll set, w->in is
                               * the caller's until it lets go) */
  int exit_parked;            /* pidfd fired while claimed: out of the
                               * epoll set until the claim ends */
  int stop_sent;              /* STOP queued: takes no more work */
  int retire;                 /* do not replace (shrink) */
  int doomed;                 /* signalled to die: takes no more work */
  struct bl__unit *running;   /* ACKed, not yet READY */
  int running_resolved;       /* ...but already failed by the hard limit */
  struct bl__unit *term_unit; /* terminate_job target (fence, D8) */
  int term_sig;
  bl__tl_t tl;
  uint64_t kill_at;           /* SIGKILL escalation, BL__TL_NEVER = none */
  struct bl__tag tag_res, tag_pid, tag_task;
  struct bl__worker *next_dead;
};

enum { BL__DEF_RESOLVED = 1, BL__DEF_ACCEPT, BL__DEF_TSET, BL__DEF_UP,
       BL__DEF_DOWN, BL__DEF_BROKEN };
struct bl__defer {
  int kind;
  bl_result_t *job;           /* holds a reference */
  pid_t pid;
  int status;
};

struct bl_pool {
  pthread_mutex_t mu;
  bl__arena_t *arena;         /* the shared map path (NULL: pipes only) */
  pthread_cond_t cv;
  bl_pool_options_t o;
  int method;                 /* BL__M_* of startmethod.h */
  char *initializer;
  void *initarg;
  int state;
  int broken_code;
  bl_error_info_t broken;
  int broken_reported_step, broken_reported_join;
  unsigned target;            /* wanted number of workers */
  struct bl__worker **w;
  size_t nw, capw;
  struct bl__worker *dead;    /* freed at the end of a step */
  struct bl__unit *q_head, *q_tail;
  size_t qlen;
  size_t unresolved;          /* jobs not yet resolved */
  size_t putheld;             /* putlocks: slots held by unresolved jobs */
  int ep, evfd, tfd;
  int cwake;                  /* eventfd: wakes the claiming caller */
  bl_result_t *claim_job;     /* the job a caller waits for by reading its
                               * worker's pipe itself (one at a time) */
  pthread_t claimer;
  struct bl__worker *claim_w;
  bl_result_t *claim_want;    /* bl_pool_apply: claim when dispatching */
  struct bl__tag tag_ev, tag_timer;
  atomic_int awake;           /* a driver is between wake-up and sleep */
  atomic_int kicked;          /* the eventfd has been written */
  /* apply_async jobs pushed without the lock (newest first), moved to the
   * queue by bl__pool_sub_drain; BL__SUB_CLOSED once not running. */
  _Atomic(bl_result_t *) sub;
  int stepping;               /* a thread is inside a step */
  pthread_t stepper;
  int have_thread, quit, started, joined, init_rc;
  pthread_t th;
  int nwaiters;
  int bcast;                  /* the step made progress waiters may need */
  uint64_t spawn_retry_at;     /* no spawn before (fork failure, backoff) */
  unsigned crash_streak;       /* counted exits since the last accepted job */
  bl__restart_t rs;
  struct bl__defer *defs;
  size_t ndefs, capdefs;
  int in_defs;                /* drivers running callbacks right now */
};

/* pool.c */
extern _Thread_local int bl__cb_depth;        /* callbacks running on this thread */
uint64_t bl__pool_now(const bl_pool_t *p);
void bl__pool_kick(bl_pool_t *p);
int bl__pool_defer(bl_pool_t *p, int kind, bl_result_t *job, pid_t pid,
                   int status);
void bl__job_unref(bl_result_t *r);
void bl__pool_dispatch(bl_pool_t *p);
int bl__pool_flush(bl_pool_t *p, struct bl__worker *w);
/* "ForkPoolWorker", "SpawnPoolWorker" or "ForkServerPoolWorker". */
const char *bl__pool_worker_prefix(const bl_pool_t *p);
int bl__pool_on_readable(bl_pool_t *p, struct bl__worker *w);
/* A caller reading w's pipe itself must see the worker's exit (or its job
 * resolved by another thread). Lock held. */
void bl__pool_wake_claimer(bl_pool_t *p);
/* Fail the unit's job (map: the job; imap: that chunk) with code/message. */
void bl__pool_fail_unit(bl_pool_t *p, struct bl__unit *u, int code,
                        const char *type, const char *msg);
void bl__pool_unit_done(bl_pool_t *p, struct bl__unit *u);
/* Take the units w started whose ACK frame is not read yet from its shared
 * page (loss, terminate_job, accepted()). Lock held. */
void bl__pool_catch_up(bl_pool_t *p, struct bl__worker *w);
/* Waiters may have something to see: wake them now, or at the end of the
 * step when this thread is stepping (after unlocking). Lock held. */
void bl__pool_notify(bl_pool_t *p);
void bl__pool_requeue_front(bl_pool_t *p, struct bl__unit *head,
                            struct bl__unit *tail, size_t n);
void bl__pool_fail_queue(bl_pool_t *p, int code, const char *msg);
/* Queue the lock-free submissions (oldest first); with close, refuse any
 * more (the pool leaves RUN). Lock held. */
void bl__pool_sub_drain(bl_pool_t *p, int close);
/* Submissions are waiting to be drained (any thread, no lock). */
int bl__pool_sub_pending(bl_pool_t *p);

/* supervisor.c */
int bl__sv_init(bl_pool_t *p);
void bl__sv_fini(bl_pool_t *p);
int bl__sv_step(bl_pool_t *p, int timeout_ms);
void bl__sv_maintain(bl_pool_t *p);
int bl__sv_spawn(bl_pool_t *p);
void bl__sv_signal(bl_pool_t *p, struct bl__worker *w, int sig);
void bl__sv_close_res(bl_pool_t *p, struct bl__worker *w);
void bl__sv_arm_out(bl_pool_t *p, struct bl__worker *w, int on);
void bl__sv_break(bl_pool_t *p, int code, const char *msg);
void *bl__sv_thread(void *arg);
size_t bl__sv_live(const bl_pool_t *p);

/* worker.c: runs in the child; never returns. */
struct bl__worker_cfg {
  int task_fd, res_fd;
  struct bl__wshm *shm;
  uint8_t *arena;             /* the pool's arena (NULL: none) */
  size_t arena_size;
  const char *initializer;
  const void *initarg;
  size_t initarg_len;
  unsigned maxtasks;
  uint64_t max_mem_kib;
  bl_process_exit_cb on_exit;
  void *user;
};
_Noreturn void bl__worker_main(const struct bl__worker_cfg *cfg);
/* What a spawn/forkserver worker gets as its boot argument (the
 * BL__POOL_WORKER_TARGET of startmethod.h), followed by the initializer's
 * name (init_len bytes) and initarg. The fds are at the same numbers in
 * the worker; shm_fd is a memfd holding its struct bl__wshm, arena_fd the
 * pool's arena (mapped at any address: jobs are found by offset). There is no
 * on_process_exit there: a function pointer means nothing in a new image. */
struct bl__worker_boot {
  int32_t task_fd, res_fd, shm_fd;
  int32_t arena_fd;           /* the pool's arena memfd, or -1 */
  uint64_t arena_size;
  uint32_t maxtasks;
  uint64_t max_mem_kib;
  uint32_t init_len, pad;
  uint64_t initarg_len;
};
/* Current resident set size of this process in KiB (0 if unknown). */
uint64_t bl__rss_kib(void);

#endif /* BL_POOLINT_H */
