/* synchronize.h: process-shared Lock, RLock, Semaphore, BoundedSemaphore,
 * Event, Condition and Barrier (billiard.synchronize).
 *
 * Every object lives in its own MAP_SHARED memory (a memfd, kept open by
 * each process that maps it). A fork child created afterwards shares it by
 * address; a child of any start method gets it with bl_process_add_handle()
 * (<billiard/process.h>) and the *_attach() function of its kind, which
 * maps it anew. *_attach() returns 0, -ERANGE (no handle at that index),
 * -EINVAL (the handle is another kind) or -errno. *_free() unmaps it in
 * the calling process only; the memory goes away when the last process
 * that maps it frees it or exits. Timeouts are in milliseconds on the monotonic
 * clock: < 0 waits forever, 0 does not block.
 *
 * Acquire results: 0 = acquired; BL_EOWNERDEAD = acquired, but the previous
 * owner died while holding it (the protected data may be inconsistent);
 * BL_ETIMEOUT = not acquired in time (billiard returns False); other
 * negative codes = error, not acquired. See docs/sync.md. */
#ifndef BILLIARD_SYNCHRONIZE_H
#define BILLIARD_SYNCHRONIZE_H

#include <stddef.h>
#include <billiard/export.h>
#include <billiard/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Non-zero when an acquire result means "now held". */
#define BL_ACQUIRED(rc) ((rc) == 0 || (rc) == BL_EOWNERDEAD)

/* ---- Lock and RLock ----
 * One type: bl_lock_new() makes a Lock (any thread of any process may
 * release it, as in billiard), bl_rlock_new() an RLock (owned by one thread
 * of one process, re-entrant; release by another thread → BL_ESTATE). */
typedef struct bl_lock bl_lock_t;

BL_API int bl_lock_new(bl_lock_t **out);
BL_API int bl_rlock_new(bl_lock_t **out);
BL_API int bl_lock_acquire(bl_lock_t *l, int timeout_ms);
/* Lock: BL_EOVERRELEASE when not held. RLock: BL_ESTATE unless the caller
 * owns it. */
BL_API int bl_lock_release(bl_lock_t *l);
/* 1 when the calling thread holds it, else 0. */
BL_API int bl_lock_is_mine(const bl_lock_t *l);
/* RLock recursion depth held by the owner (0 when free); Lock: 0 or 1. */
BL_API int bl_lock_count(const bl_lock_t *l);
BL_API int bl_lock_is_recursive(const bl_lock_t *l);
BL_API void bl_lock_free(bl_lock_t **l);
/* A Lock/RLock handed to this process: see the top of this file. */
BL_API int bl_lock_attach(bl_lock_t **out, size_t index);

/* ---- Semaphore and BoundedSemaphore ----
 * Units taken by a process that dies without releasing them return to the
 * count when a waiter notices the death; the acquire that takes such a unit
 * returns BL_EOWNERDEAD. A release by a process that holds no unit
 * discharges the oldest holder's unit (hand-off pattern). docs/sync.md. */
typedef struct bl_semaphore bl_semaphore_t;

/* value < 0 → -EINVAL (billiard: OSError). */
BL_API int bl_semaphore_new(bl_semaphore_t **out, int value);
/* release beyond the initial value → BL_EOVERRELEASE. */
BL_API int bl_bounded_semaphore_new(bl_semaphore_t **out, int value);
BL_API int bl_semaphore_acquire(bl_semaphore_t *s, int timeout_ms);
BL_API int bl_semaphore_release(bl_semaphore_t *s);
/* Current count (>= 0), or a negative error. */
BL_API int bl_semaphore_value(bl_semaphore_t *s);
BL_API void bl_semaphore_free(bl_semaphore_t **s);
BL_API int bl_semaphore_attach(bl_semaphore_t **out, size_t index);

/* ---- Event ---- */
typedef struct bl_event bl_event_t;

BL_API int bl_event_new(bl_event_t **out);
BL_API void bl_event_set(bl_event_t *e);
BL_API void bl_event_clear(bl_event_t *e);
BL_API int bl_event_is_set(const bl_event_t *e);
/* 1 when set, 0 on timeout (billiard's True/False). */
BL_API int bl_event_wait(bl_event_t *e, int timeout_ms);
BL_API void bl_event_free(bl_event_t **e);
BL_API int bl_event_attach(bl_event_t **out, size_t index);

/* ---- Condition ----
 * lock NULL: the condition makes and owns an RLock (billiard's default),
 * which lives in the condition's memory (not passable on its own).
 * Otherwise lock is borrowed and must outlive the condition; handed to a
 * child, the borrowed lock travels along as the next handle. */
typedef struct bl_condition bl_condition_t;
typedef int (*bl_predicate_fn)(void *arg);

BL_API int bl_condition_new(bl_condition_t **out, bl_lock_t *lock);
BL_API bl_lock_t *bl_condition_lock(bl_condition_t *c);
BL_API int bl_condition_acquire(bl_condition_t *c, int timeout_ms);
BL_API int bl_condition_release(bl_condition_t *c);
/* Release the lock (fully, for an RLock), wait for a notify, re-acquire.
 * 1 notified, 0 timed out, BL_ESTATE when the caller does not hold the
 * lock, BL_EOWNERDEAD when re-acquiring found the lock's owner dead.
 * Wake-ups may be spurious: use wait_for or re-check the condition. */
BL_API int bl_condition_wait(bl_condition_t *c, int timeout_ms);
/* Wait until pred(arg) returns non-zero; returns pred's last result (0 on
 * timeout), or a negative error. */
BL_API int bl_condition_wait_for(bl_condition_t *c, bl_predicate_fn pred,
                                 void *arg, int timeout_ms);
/* Wake up to n waiters (at least min(n, waiting)). BL_ESTATE without the
 * lock. */
BL_API int bl_condition_notify(bl_condition_t *c, int n);
BL_API int bl_condition_notify_all(bl_condition_t *c);
BL_API void bl_condition_free(bl_condition_t **c);
BL_API int bl_condition_attach(bl_condition_t **out, size_t index);

/* ---- Barrier ----
 * action (may be NULL) runs once per cycle in the last process to arrive,
 * before any party is released; a non-zero return breaks the barrier. */
typedef struct bl_barrier bl_barrier_t;
typedef int (*bl_barrier_action_fn)(void *arg);

/* parties < 1 → -EINVAL. The action belongs to this process's view: a
 * child that attaches the barrier names its own (or NULL); whichever
 * process arrives last runs the action it has (fork children inherit the
 * creator's view, action included). */
BL_API int bl_barrier_new(bl_barrier_t **out, int parties,
                          bl_barrier_action_fn action, void *arg);
/* Arrival index 0..parties-1, or BL_EBROKENBARRIER (broken, aborted, reset
 * while waiting, timed out, action failed, or a waiting party died). */
BL_API int bl_barrier_wait(bl_barrier_t *b, int timeout_ms);
BL_API void bl_barrier_abort(bl_barrier_t *b);
BL_API void bl_barrier_reset(bl_barrier_t *b);
BL_API int bl_barrier_parties(const bl_barrier_t *b);
BL_API int bl_barrier_n_waiting(bl_barrier_t *b);
BL_API int bl_barrier_broken(bl_barrier_t *b);
BL_API void bl_barrier_free(bl_barrier_t **b);
BL_API int bl_barrier_attach(bl_barrier_t **out, size_t index,
                             bl_barrier_action_fn action, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_SYNCHRONIZE_H */
