/* shm.h: shared mappings and the process-shared building blocks placed in
 * them (futex waits, robust mutexes with a rollback journal, owner identity
 * and liveness). Used by queue.c, synchronize.c and sharedctypes.c. */
#ifndef BL_SHM_H
#define BL_SHM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- mappings ---- */

/* Every mapping is a CLOEXEC memfd kept open while this process maps it
 * (so the object can be handed to a spawn/forkserver child) and ends with a
 * trailer naming what it holds: a process that receives the fd checks the
 * kind before it trusts the layout. Nothing in a mapping may be a pointer:
 * another process maps it at another address. */
#define BL__SHM_MAGIC 0x424c4f42u /* "BLOB" */
typedef struct bl__shm_tag {
  uint32_t magic;
  uint32_t kind;  /* bl_handle_kind_t */
  uint32_t flags; /* per kind, e.g. BL__TAG_EXT_LOCK */
  uint32_t pad;
} bl__shm_tag_t;
/* The object borrows a lock held in another mapping: passed along as the
 * next handle. */
#define BL__TAG_EXT_LOCK 1u

/* Map len zero-filled bytes (plus the trailer; *maplen gets the page-
 * rounded total) of memfd-backed MAP_SHARED memory: inherited by fork,
 * never visible in /dev/shm, freed by the kernel when the last process
 * unmaps it (or dies). The memfd stays registered with the mapping until
 * bl__shm_unmap. 0 or -errno. */
int bl__shm_map(size_t len, uint32_t kind, void **base, size_t *maplen);
/* Map a received memfd (the fd is duplicated; the caller keeps its own),
 * check that it holds kind. 0; -EINVAL (not a billiard mapping or another
 * kind); -errno. */
int bl__shm_attach(int fd, uint32_t kind, void **base, size_t *maplen);
/* Unmap and close the registered memfd. */
void bl__shm_unmap(void *base, size_t maplen);
/* The memfd behind a mapping made or attached by this process, or -ENOENT. */
int bl__shm_fd(const void *base);
/* The same, only if that mapping holds kind; else -EINVAL. A caller that
 * got obj as void * checks this before it reads anything else through it. */
int bl__shm_fd_of(const void *base, uint32_t kind);
bl__shm_tag_t *bl__shm_tag(void *base, size_t maplen);
/* Read the trailer of a memfd without mapping it. 0, -EINVAL, -errno. */
int bl__shm_peek(int fd, bl__shm_tag_t *tag);
/* Round up to the page size. */
size_t bl__shm_round(size_t len);

/* ---- futex waits on a shared 32-bit word ---- */

/* Sleep while *w == val, at most timeout_ns (< 0 = forever). The timeout is
 * relative, measured on CLOCK_MONOTONIC by the kernel, so libfaketime never
 * bends it. 0 (woken, value changed or spurious), -ETIMEDOUT, -EINTR. */
int bl__futex_wait(uint32_t *w, uint32_t val, int64_t timeout_ns);
void bl__futex_wake(uint32_t *w, int n);

/* Deadlines on the real monotonic clock. timeout_ms < 0 = forever. */
uint64_t bl__deadline(int timeout_ms);
/* Nanoseconds left (0 when past), or -1 for a forever deadline. */
int64_t bl__remaining(uint64_t deadline);
#define BL__FOREVER UINT64_MAX

/* One liveness-check period: how long a waiter sleeps before it looks for a
 * dead owner it is waiting on. */
#define BL__SLICE_NS (20 * 1000000ll)
/* min(remaining, slice); forever deadlines give the slice. */
int64_t bl__slice(uint64_t deadline);

/* ---- robust process-shared mutex with a rollback journal ----
 *
 * A glibc PTHREAD_MUTEX_ROBUST + PTHREAD_PROCESS_SHARED mutex guards short
 * critical sections only (never a blocking wait). The kernel hands a dead
 * holder's mutex to the next locker with EOWNERDEAD. To make that state
 * usable, every critical section that changes shared state journals it:
 * bl__robust_begin() copies the state into `saved` and raises `txn`;
 * bl__robust_end() lowers it. A locker that inherits a dead holder's mutex
 * with txn raised copies `saved` back: the dead holder's half-done change is
 * rolled back as a whole, never half-applied. */
typedef struct bl__robust {
  pthread_mutex_t mu;
  uint32_t txn;
  uint32_t recoveries; /* how many times a dead holder was cleaned up */
} bl__robust_t;

int bl__robust_init(bl__robust_t *r);
/* Lock. 0, or 1 when a dead holder was rolled back (state restored from
 * saved), or -errno (ENOTRECOVERABLE cannot happen: we always recover). */
int bl__robust_lock(bl__robust_t *r, void *state, const void *saved, size_t n);
void bl__robust_unlock(bl__robust_t *r);
void bl__robust_begin(bl__robust_t *r, const void *state, void *saved, size_t n);
void bl__robust_end(bl__robust_t *r);

/* ---- owner identity and liveness ----
 *
 * An owner is packed in 64 bits: low 32 = tid (or pid), high 32 = the
 * thread's start time in clock ticks from /proc/<id>/stat, so a recycled id
 * is told apart from the dead owner it replaced. Both are cached per thread
 * and reset in a forked child. */
#define BL__WHO_ID(w) ((pid_t)((w) & 0x3fffffffu))
uint64_t bl__self_thread(void); /* (start << 32) | tid */
uint64_t bl__self_process(void); /* (start << 32) | pid */
pid_t bl__self_tid(void);        /* fast: cached */
/* 1 when who (thread or process) still runs, 0 when it is gone, a zombie,
 * or its id now belongs to something started later. */
int bl__who_alive(uint64_t who);

#endif /* BL_SHM_H */
