/* pool.h: the process pool (billiard.pool.Pool).
 *
 * A pool runs registered tasks (see <billiard/task.h>) in worker processes
 * (started by fork, spawn or forkserver: options.start_method). Work is submitted by task NAME plus argument bytes; results come
 * back as bytes in a bl_result_t (see <billiard/result.h>). Every submitted
 * job is resolved exactly once, with a value or an error, whatever happens to
 * workers or to the pool.
 *
 * Threads: with options.threads = 1 (default) a supervisor thread drives the
 * pool. With threads = 0 nothing runs behind the caller's back: the caller
 * watches bl_pool_fd() (readable when work is due) and calls bl_pool_step();
 * blocking calls (get, join, map, ...) drive the pool themselves meanwhile.
 * All functions are thread-safe. Callbacks run without pool locks held, in
 * the thread that drives the pool; they may call any bl_pool_* / bl_result_*
 * function except bl_pool_join() (BL_ESTATE from the supervisor thread). */
#ifndef BILLIARD_POOL_H
#define BILLIARD_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <billiard/clock.h>
#include <billiard/errors.h>
#include <billiard/export.h>
#include <billiard/result.h>
#include <billiard/task.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_pool bl_pool_t;
typedef struct bl_imap bl_imap_t;

/* ---- pool-level callbacks (all optional; user = options.user) ---- */
/* A worker started (initial, replacement, grow). Runs in the parent. */
typedef void (*bl_process_up_cb)(bl_pool_t *pool, pid_t pid, void *user);
/* A worker exited and was reaped. status = exit code (>= 0) or -signal.
 * Runs in the parent; also for clean exits (close, recycling). */
typedef void (*bl_process_down_cb)(bl_pool_t *pool, pid_t pid, int status,
                                   void *user);
/* Runs IN THE WORKER just before it exits normally (not after a signal). */
typedef void (*bl_process_exit_cb)(pid_t pid, int exitcode, void *user);
/* A job with a time limit was accepted: its limits now run (ms, 0 = none).
 * billiard calls this for apply_async jobs only; so do we. */
typedef void (*bl_timeout_set_cb)(bl_pool_t *pool, uint64_t job,
                                  uint32_t soft_ms, uint32_t hard_ms,
                                  void *user);
/* A job whose on_timeout_set fired has resolved. */
typedef void (*bl_timeout_cancel_cb)(bl_pool_t *pool, uint64_t job,
                                     void *user);
/* The pool broke: the restart limiter tripped (code BL_ERESTARTFREQ,
 * message like "3 in 1s"). No more workers start; pending jobs fail. */
typedef void (*bl_pool_error_cb)(bl_pool_t *pool, int code,
                                 const char *message, void *user);

typedef struct bl_pool_options {
  size_t size;                 /* set by bl_pool_options_init() */
  unsigned processes;          /* 0 = online CPUs (default 0) */
  /* Registered TASK run once in each worker (replacements too) before its
   * first job; NULL = none. A failing initializer (non-zero return, crash)
   * makes the worker exit 1: a worker loss, counted by the limiter. */
  const char *initializer;
  const void *initarg;
  size_t initarg_len;
  unsigned maxtasksperchild;   /* 0 = unlimited (default) */
  uint64_t max_memory_per_child_kib; /* 0 = unlimited; current RSS after each task */
  uint32_t time_limit_ms;      /* hard limit per job, 0 = none */
  uint32_t soft_time_limit_ms; /* soft limit per job, 0 = none */
  /* Accepted for compatibility: lost jobs are failed as soon as the dead
   * worker's result pipe is drained, which is always sooner (default 10000). */
  uint32_t lost_worker_timeout_ms;
  /* Restart limiter: trips on the (max_restarts+1)-th counted restart within
   * a window of max_restart_freq_ms from the first, with no job accepted in
   * between. 0 = off. Defaults: 10 in 10000 ms (billiard: off; D4).
   * Consecutive counted restarts with no job accepted back off (25 ms
   * doubling to 250 ms); the first replacement is immediate. */
  unsigned max_restarts;
  uint32_t max_restart_freq_ms;
  /* Grace between SIGTERM and SIGKILL for hard limits, terminate_job and
   * terminate() (default 100 ms, billiard's 0.1 s). */
  uint32_t kill_grace_ms;
  /* Jobs queued in one worker's pipe ahead of the one it runs, when the
   * pool's queue is long (default 32; 1 = never more than one). */
  unsigned prefetch;
  int threads;                 /* 1 = supervisor thread (default), 0 = caller drives */
  int allow_restart;           /* needed by bl_pool_restart() (default 0) */
  int synack;                  /* accepted, no effect (as in billiard) */
  /* billiard's putlocks/semaphore: with putlocks set, apply_async (and
   * apply) waits while putlock_slots of the jobs it submitted are still
   * unresolved; close/terminate end the wait (BL_ENOTRUNNING). 0 slots =
   * the pool's size (following grow/shrink). map and imap never wait. */
  int putlocks;                /* default 0 */
  unsigned putlock_slots;      /* billiard's semaphore value; 0 = size */
  int enable_timeouts;         /* accepted: per-job limits always apply (D6) */
  const bl_clock_t *clock;     /* NULL = CLOCK_MONOTONIC */
  bl_process_up_cb on_process_up;
  bl_process_down_cb on_process_down;
  bl_process_exit_cb on_process_exit;
  bl_timeout_set_cb on_timeout_set;
  bl_timeout_cancel_cb on_timeout_cancel;
  bl_pool_error_cb on_pool_error;
  void *user;                  /* passed to the callbacks above */
  /* How workers start (billiard's ctx.Pool): "fork", "spawn",
   * "forkserver", or NULL = the default method (bl_set_start_method; using
   * it fixes it). Under spawn and forkserver each worker runs in a fresh
   * image of the program (<billiard/context.h>): the tasks and the
   * initializer must be registered there too, i.e. from a constructor, and
   * on_process_exit is refused (BL_ENOTSUPPORTED). Results, losses, time
   * limits, recycling and terminate behave the same under every method. */
  const char *start_method;
  uint64_t reserved[8];        /* must stay zero */
} bl_pool_options_t;

/* Zero *o, set the defaults above and o->size. */
BL_API void bl_pool_options_init(bl_pool_options_t *o);

/* Per-call options for apply_async/map/imap (NULL = all defaults). */
typedef struct bl_apply_options {
  size_t size;                 /* set by bl_apply_options_init() */
  /* Success: value/len are the result bytes (valid during the call; also
   * via bl_result_get). For map jobs value is NULL and len the item count:
   * read items with bl_result_item(). Runs after the result is ready. */
  bl_result_cb callback;
  /* Failure: err describes it (valid during the call). */
  bl_error_cb error_callback;
  /* A worker started the job (map: each chunk), pid = that worker. */
  bl_accept_cb accept_callback;
  void *user;                  /* passed to the three callbacks */
  uint32_t time_limit_ms;      /* 0 = the pool's */
  uint32_t soft_time_limit_ms; /* 0 = the pool's */
  uint32_t lost_worker_timeout_ms; /* accepted; see bl_pool_options_t */
  size_t chunksize;            /* map/imap; 0 = default (map: ceil(n/(4*workers)), imap: 1) */
  uint64_t reserved[8];        /* must stay zero */
} bl_apply_options_t;

BL_API void bl_apply_options_init(bl_apply_options_t *o);

/* Pool states (bl_pool_state()). BROKEN = the restart limiter tripped. */
enum { BL_POOL_RUN = 0, BL_POOL_CLOSE = 1, BL_POOL_TERMINATE = 2,
       BL_POOL_BROKEN = 3 };

/* Create a pool and start its workers. o may be NULL (defaults). 0 or
 * -EINVAL (bad options, unknown start method, skipped _init), BL_ENOTFOUND
 * (initializer not registered), BL_ENOTSUPPORTED (on_process_exit with
 * spawn/forkserver), BL_EPROCESS (a spawn/forkserver worker could not
 * start), -errno. */
BL_API int bl_pool_new(bl_pool_t **out, const bl_pool_options_t *o);
/* Terminate (if still running), join and free; *pool = NULL. Results the
 * caller still holds stay valid (all resolved) until bl_result_free(). */
BL_API void bl_pool_free(bl_pool_t **pool);

/* ---- submitting work ---- (BL_ENOTRUNNING after close/terminate/break,
 * BL_ENOTFOUND for an unregistered task name, -EINVAL, -ENOMEM) */

/* Submit one job. *out (may be NULL: fire and forget, callbacks only)
 * receives a result the caller frees with bl_result_free(). */
BL_API int bl_pool_apply_async(bl_pool_t *pool, const char *task,
                               const void *arg, size_t len,
                               const bl_apply_options_t *ao, bl_result_t **out);
/* apply_async + get, no timeout. On success *value is malloc'd (caller
 * frees; may be NULL when len is 0). Returns the job's code; err (may be
 * NULL) receives details (caller clears with bl_error_info_clear). */
BL_API int bl_pool_apply(bl_pool_t *pool, const char *task, const void *arg,
                         size_t len, const bl_apply_options_t *ao,
                         void **value, size_t *vlen, bl_error_info_t *err);
/* Map task over n argument blobs (copied), in chunks (ao->chunksize, 0 =
 * ceil(n / (4 * workers))). Items keep input order. The first failing chunk
 * to arrive decides the job's error. n = 0 gives an empty, ready result. */
BL_API int bl_pool_map_async(bl_pool_t *pool, const char *task,
                             const void *const *args, const size_t *lens,
                             size_t n, const bl_apply_options_t *ao,
                             bl_result_t **out);
/* map_async + wait. Returns the job's code (0 = *out has every item);
 * *out is set even on failure (free it). err as in bl_pool_apply. */
BL_API int bl_pool_map(bl_pool_t *pool, const char *task,
                       const void *const *args, const size_t *lens, size_t n,
                       const bl_apply_options_t *ao, bl_result_t **out,
                       bl_error_info_t *err);
/* starmap: in C a task already receives one argument blob, so starmap is
 * map over argument blobs (the caller packs the tuple). */
BL_API int bl_pool_starmap_async(bl_pool_t *pool, const char *task,
                                 const void *const *args, const size_t *lens,
                                 size_t n, const bl_apply_options_t *ao,
                                 bl_result_t **out);
BL_API int bl_pool_starmap(bl_pool_t *pool, const char *task,
                           const void *const *args, const size_t *lens,
                           size_t n, const bl_apply_options_t *ao,
                           bl_result_t **out, bl_error_info_t *err);
/* Lazy iterators: imap yields in input order, imap_unordered in completion
 * order. chunksize 0 = 1. A failing chunk yields one error in place of its
 * items (with chunksize 1: exactly the failing item), then iteration goes on. */
BL_API int bl_pool_imap(bl_pool_t *pool, const char *task,
                        const void *const *args, const size_t *lens, size_t n,
                        const bl_apply_options_t *ao, bl_imap_t **out);
BL_API int bl_pool_imap_unordered(bl_pool_t *pool, const char *task,
                                  const void *const *args, const size_t *lens,
                                  size_t n, const bl_apply_options_t *ao,
                                  bl_imap_t **out);
/* Next item: 0 and *value, *len (owned by the iterator, valid until it is
 * freed); the item's error code (err filled if non-NULL); BL_ETIMEOUT (retry
 * later); BL_EEOF when exhausted (StopIteration). timeout_ms < 0 = forever. */
BL_API int bl_imap_next(bl_imap_t *it, int timeout_ms, const void **value,
                        size_t *len, bl_error_info_t *err);
/* The job behind the iterator (borrowed; for job id, terminate_job...). */
BL_API bl_result_t *bl_imap_result(bl_imap_t *it);
BL_API void bl_imap_free(bl_imap_t **it);

/* billiard's default map chunksize: ceil(n / (4 * workers)), at least 1. */
BL_API size_t bl_pool_default_chunksize(size_t n, unsigned workers);

/* ---- lifecycle ---- */
/* No more submissions; queued and running jobs still complete. Idempotent. */
BL_API int bl_pool_close(bl_pool_t *pool);
/* Stop now: every unresolved job fails with BL_ETERMINATED ("Pool
 * terminated"), workers get SIGTERM then SIGKILL after kill_grace_ms and
 * are reaped before this returns. Idempotent. */
BL_API int bl_pool_terminate(bl_pool_t *pool);
/* Wait for every job and worker after close/terminate (BL_ESTATE in RUN,
 * or from a callback on the supervisor thread). timeout_ms < 0 = forever;
 * BL_ETIMEOUT (retryable). Returns BL_ERESTARTFREQ once if the pool broke. */
BL_API int bl_pool_join(bl_pool_t *pool, int timeout_ms);
/* BL_POOL_RUN, _CLOSE, _TERMINATE or _BROKEN. */
BL_API int bl_pool_state(const bl_pool_t *pool);
/* Why the pool broke: 0, or the code (info filled if non-NULL). */
BL_API int bl_pool_error(bl_pool_t *pool, bl_error_info_t *info);

/* ---- jobs and workers ---- */
/* Terminate the job behind r with signal sig (0 = SIGTERM). Not yet started:
 * it resolves at once with BL_ETERMINATED (if it already sits in a worker's
 * pipe it still runs there, its outcome discarded). Running: its worker gets sig and
 * the job fails with BL_ETERMINATED (message: the signal number, as
 * billiard's str(Terminated(9)) = '9') when the worker is reaped; the
 * worker is replaced. Already resolved: 0, nothing happens. */
BL_API int bl_pool_terminate_job(bl_pool_t *pool, bl_result_t *r, int sig);
/* billiard's terminate_job(pid, sig), fenced on (pid, job) (D8): acts only
 * while worker pid is running job `job`; else -ESRCH and nothing is sent. */
BL_API int bl_pool_terminate_job_pid(bl_pool_t *pool, pid_t pid,
                                     uint64_t job, int sig);
/* Add n workers now. -EINVAL when the pool would exceed 4096 workers (the
 * same cap as bl_pool_new). */
BL_API int bl_pool_grow(bl_pool_t *pool, unsigned n);
/* Retire up to n idle workers (they exit 0 cleanly). Fewer idle than n:
 * retires those and returns -EBUSY (billiard's ValueError "Can't shrink
 * pool. All processes busy!"). */
BL_API int bl_pool_shrink(bl_pool_t *pool, unsigned n);
/* Replace every worker once its current jobs are done (BL_ESTATE unless
 * options.allow_restart). */
BL_API int bl_pool_restart(bl_pool_t *pool);
/* Start workers missing from the target size now (normally automatic).
 * BL_ERESTARTFREQ if the pool broke. */
BL_API int bl_pool_maintain_pool(bl_pool_t *pool);
/* Target number of workers, and the pids of live workers (up to cap;
 * returns how many are live). */
BL_API unsigned bl_pool_size(const bl_pool_t *pool);
BL_API int bl_pool_pids(bl_pool_t *pool, pid_t *pids, size_t cap);
/* billiard's name of a live worker, "ForkPoolWorker-N" ("SpawnPoolWorker-N",
 * "ForkServerPoolWorker-N" under those start methods; N counts the pool
 * workers this process started, across pools, from 1). 0, -ESRCH (not a
 * live worker of this pool), -ERANGE (buf too short), -EINVAL. */
BL_API int bl_pool_worker_name(bl_pool_t *pool, pid_t pid, char *buf,
                               size_t cap);

/* ---- driving the pool yourself (threads = 0) ---- */
/* An epoll fd, readable when bl_pool_step() has work to do. -EINVAL when
 * the pool has a supervisor thread. Owned by the pool. */
BL_API int bl_pool_fd(const bl_pool_t *pool);
/* Handle due events, waiting up to timeout_ms (0 = poll, < 0 = forever).
 * Returns the number of events handled (>= 0), or BL_ERESTARTFREQ once when
 * the pool has just broken, or -EINVAL with a supervisor thread. */
BL_API int bl_pool_step(bl_pool_t *pool, int timeout_ms);
/* Wake the driver so it re-reads the (injected) clock now. */
BL_API int bl_pool_wakeup(bl_pool_t *pool);

/* ---- inside a task (worker side) ---- */
/* Set the job's result bytes (copied). Last call wins. 0 or -ENOMEM. */
BL_API int bl_task_return(bl_task_ctx_t *ctx, const void *buf, size_t len);
/* Fail the job like a raised exception: type name (NULL = "Exception"),
 * message, traceback (any may be NULL). Return its value from the task:
 * it is BL_ETASK. The job's error is BL_ETASK with these strings. */
BL_API int bl_task_fail(bl_task_ctx_t *ctx, const char *type,
                        const char *message, const char *traceback);
/* Non-zero once this job's soft time limit has fired. Observing it means
 * the task handles it: it may then still return a result. A task that
 * returns after the soft limit without ever observing it fails with
 * BL_ESOFTTIMELIMIT (C has no asynchronous exceptions). */
BL_API int bl_task_soft_limit_exceeded(bl_task_ctx_t *ctx);
/* Sleep ms, returning BL_ESOFTTIMELIMIT early (observed) when the soft
 * limit fires; 0 after the full sleep. */
BL_API int bl_task_sleep(bl_task_ctx_t *ctx, uint32_t ms);
/* The job id, the item's index in a map (0 for apply), this worker's pid. */
BL_API uint64_t bl_task_job_id(const bl_task_ctx_t *ctx);
BL_API size_t bl_task_index(const bl_task_ctx_t *ctx);
BL_API pid_t bl_task_pid(const bl_task_ctx_t *ctx);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_POOL_H */
