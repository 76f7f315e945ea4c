/* queue.h: Queue, JoinableQueue and SimpleQueue between processes
 * (billiard.queues).
 *
 * A queue is a byte ring in shared memory. A fork child created afterwards
 * shares it by address; a child of any start method (spawn and forkserver
 * included) gets it with bl_process_add_handle() + bl_queue_attach(). Items are byte strings of any length
 * (0 included); an item is delivered whole to exactly one getter or not at
 * all, never torn or interleaved with another producer's.
 *
 * put() copies the item into shared memory before it returns: there is no
 * feeder thread and nothing stays buffered in the putting process, so
 * join_thread() returns at once and cancel_join_thread() has nothing to
 * cancel. The flip side: put() can block when the ring is full (billiard's
 * put only blocks on maxsize). Timeouts are milliseconds: < 0 forever,
 * 0 = do not block (block=False). A process killed at any point, even inside
 * put/get, never wedges the others: docs/sync.md says what happens to the
 * item it was moving. */
#ifndef BILLIARD_QUEUE_H
#define BILLIARD_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_queue bl_queue_t;

typedef struct bl_queue_options {
  size_t size;            /* set by bl_queue_options_init() */
  size_t maxsize;         /* max items queued; 0 = unbounded (billiard's
                             maxsize <= 0) */
  size_t ring_bytes;      /* shared ring size; 0 = 1 MiB. Larger items
                             stream through it in chunks. */
  uint64_t reserved[8];   /* must stay zero */
} bl_queue_options_t;

BL_API void bl_queue_options_init(bl_queue_options_t *o);

/* o may be NULL (defaults). Free with bl_queue_free(). */
BL_API int bl_queue_new(bl_queue_t **out, const bl_queue_options_t *o);
/* A Queue with task_done() and join(). */
BL_API int bl_joinable_queue_new(bl_queue_t **out, const bl_queue_options_t *o);

/* Copy len bytes in. 0; BL_EFULL (maxsize reached or ring full, after the
 * timeout); BL_ESTATE after bl_queue_close() (billiard: AssertionError);
 * -EINVAL; -errno. */
BL_API int bl_queue_put(bl_queue_t *q, const void *buf, size_t len,
                        int timeout_ms);
BL_API int bl_queue_put_nowait(bl_queue_t *q, const void *buf, size_t len);
/* Take the oldest item: *buf is malloc'd (release with free(); a 0-byte
 * item still gives a non-NULL pointer), *len its size. 0; BL_EEMPTY after
 * the timeout; BL_ECLOSED after close (billiard: OSError 'handle is
 * closed'); -ENOMEM (the item stays queued). */
BL_API int bl_queue_get(bl_queue_t *q, void **buf, size_t *len, int timeout_ms);
BL_API int bl_queue_get_nowait(bl_queue_t *q, void **buf, size_t *len);

/* Items queued, counting ones still being written (approximate, as in
 * billiard), or a negative error. */
BL_API int bl_queue_qsize(bl_queue_t *q);
BL_API int bl_queue_empty(bl_queue_t *q);  /* 1 or 0 */
BL_API int bl_queue_full(bl_queue_t *q);   /* 1 or 0 */

/* Close this process's handle: later put → BL_ESTATE, get → BL_ECLOSED.
 * Other processes' handles are unaffected (billiard's close is local). */
BL_API int bl_queue_close(bl_queue_t *q);
/* billiard: joins the feeder thread; here put is synchronous, so it returns
 * 0 at once. BL_ESTATE before close() (billiard asserts the same). */
BL_API int bl_queue_join_thread(bl_queue_t *q);
/* No feeder thread, nothing buffered to abandon: a no-op. */
BL_API void bl_queue_cancel_join_thread(bl_queue_t *q);

/* JoinableQueue: mark one item done; BL_EOVERRELEASE when more task_done
 * than puts (billiard: ValueError 'task_done() called too many times');
 * BL_ENOTSUPPORTED on a plain Queue. */
BL_API int bl_queue_task_done(bl_queue_t *q);
/* Wait until every item put (by any process) got its task_done. 0 or
 * BL_ETIMEOUT. */
BL_API int bl_queue_join(bl_queue_t *q, int timeout_ms);

/* Unmap in this process (also closes). NULLs *q. */
BL_API void bl_queue_free(bl_queue_t **q);

/* In a child given the queue with bl_process_add_handle (<billiard/
 * process.h>): map it here as *out (any start method; free it with
 * bl_queue_free, or bl_simple_queue_free for a SimpleQueue). 0; -ERANGE
 * (no handle at index); -EINVAL (that handle is not a queue); -errno. */
BL_API int bl_queue_attach(bl_queue_t **out, size_t index);

/* ---- SimpleQueue: put/get block without timeout; empty(); close(). ---- */
typedef struct bl_queue bl_simple_queue_t;

BL_API int bl_simple_queue_new(bl_simple_queue_t **out);
BL_API int bl_simple_queue_put(bl_simple_queue_t *q, const void *buf, size_t len);
BL_API int bl_simple_queue_get(bl_simple_queue_t *q, void **buf, size_t *len);
BL_API int bl_simple_queue_empty(bl_simple_queue_t *q);
BL_API int bl_simple_queue_close(bl_simple_queue_t *q);
BL_API void bl_simple_queue_free(bl_simple_queue_t **q);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_QUEUE_H */
