/* synchronize.c: process-shared Lock/RLock, Semaphore, Event, Condition and
 * Barrier, each surviving the death of a process that holds or waits on it.
 *
 * Lock/RLock are a futex word holding the owner's tid (one CAS to take, one
 * exchange to give back). A waiter sleeps in slices of BL__SLICE_NS; after a
 * slice it checks the owner's liveness in /proc and, if the owner is gone,
 * takes the lock over and reports BL_EOWNERDEAD. The other primitives keep
 * their state under a robust mutex (shm.h) and sleep on a futex sequence
 * word, never on a glibc condvar: a process killed inside
 * pthread_cond_wait() leaves the condvar's internal counters wrong for
 * everybody else, while a killed futex waiter leaves nothing behind. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/errors.h>
#include <billiard/synchronize.h>

#include "handle.h"
#include "internal.h"
#include "shm.h"
#include "sync.h"

/* Every object heads its own page-rounded mapping, whose memfd stays
 * registered (shm.c) so the object can be handed to a child. The mapping
 * size follows from the object's size alone, in every process. */
static size_t obj_len(size_t size) {
  return bl__shm_round(size + sizeof(bl__shm_tag_t));
}

static void *obj_map(size_t size, uint32_t kind, int *rc) {
  void *p = NULL;
  size_t len;
  *rc = bl__shm_map(size, kind, &p, &len);
  return *rc ? NULL : p;
}

static void obj_unmap(void *p, size_t size) { bl__shm_unmap(p, obj_len(size)); }

/* Map handle index of kind in a child; the mapping must be exactly what an
 * object of size makes. */
static void *obj_attach(size_t index, uint32_t kind, size_t size, int *rc) {
  int fd = bl__handle_fd(index, kind);
  if (fd < 0) {
    *rc = fd;
    return NULL;
  }
  void *p = NULL;
  size_t len;
  *rc = bl__shm_attach(fd, kind, &p, &len);
  if (*rc) return NULL;
  if (len != obj_len(size)) {
    bl__shm_unmap(p, len);
    *rc = -EINVAL;
    return NULL;
  }
  return p;
}

/* The one fd of an object that heads its own mapping. */
static int obj_export(const void *obj, uint32_t kind, int *fds) {
  int fd = bl__shm_fd_of(obj, kind);
  if (fd < 0) return fd;
  fds[0] = fd;
  return 1;
}

/* ===================== Lock / RLock ===================== */

void bl__lock_init(bl_lock_t *l, int recursive) {
  memset(l, 0, sizeof *l);
  l->recursive = recursive ? 1u : 0u;
}

static int lock_new(bl_lock_t **out, int recursive) {
  BL_VALIDATE(out != NULL, -EINVAL);
  int rc;
  bl_lock_t *l = obj_map(sizeof *l, BL_HANDLE_LOCK, &rc);
  if (!l) return rc;
  bl__lock_init(l, recursive);
  l->own_map = 1;
  *out = l;
  return 0;
}

int bl_lock_new(bl_lock_t **out) { return lock_new(out, 0); }
int bl_rlock_new(bl_lock_t **out) { return lock_new(out, 1); }

void bl_lock_free(bl_lock_t **l) {
  if (!l || !*l) return;
  if ((*l)->own_map) obj_unmap(*l, sizeof **l);
  *l = NULL;
}

/* A lock inside a Value or Condition has no mapping of its own: its owner
 * is what gets passed. */
int bl__lock_export(const void *obj, int *fds) {
  /* Checked first: obj may be anything (a lock embedded in a Value or
   * Condition is no mapping of its own and is refused here too). */
  return obj_export(obj, BL_HANDLE_LOCK, fds);
}

int bl_lock_attach(bl_lock_t **out, size_t index) {
  BL_VALIDATE(out != NULL, -EINVAL);
  *out = NULL;
  int rc;
  bl_lock_t *l = obj_attach(index, BL_HANDLE_LOCK, sizeof *l, &rc);
  if (!l) return rc;
  if (!l->own_map) { /* NEVER: only own-map locks are exported */
    obj_unmap(l, sizeof *l);
    return -EINVAL;
  }
  *out = l;
  return 0;
}

/* The word says w is held by a tid; if that thread is gone, take the lock
 * over. The owner field is written just after the CAS that took the word,
 * so it may still describe the previous holder: trust its start time only
 * when its tid matches the word. */
static int steal_if_dead(bl_lock_t *l, uint32_t w, pid_t me) {
  uint32_t tid = w & BL__LOCK_TID;
  uint64_t who = __atomic_load_n(&l->owner, __ATOMIC_ACQUIRE);
  if ((uint32_t)BL__WHO_ID(who) != tid) who = tid;
  if (bl__who_alive(who)) return 0;
  /* Keep the waiters bit: others may sleep on the word. */
  uint32_t nw = (uint32_t)me | BL__LOCK_WAITERS;
  return __atomic_compare_exchange_n(&l->word, &w, nw, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED);
}

static int lock_slow(bl_lock_t *l, pid_t me, int timeout_ms) {
  uint64_t dl = bl__deadline(timeout_ms);
  /* Liveness costs a /proc read: check after a slice of waiting, or when
   * about to give up, not on every contended acquire. */
  int check_dead = 0;
  for (;;) {
    uint32_t w = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
    if (w == 0) {
      /* Taken in the slow path: keep the waiters bit set, since other
       * sleepers may exist (Drepper's "mutex2"). */
      if (__atomic_compare_exchange_n(&l->word, &w,
                                      (uint32_t)me | BL__LOCK_WAITERS, 0,
                                      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
      continue;
    }
    int64_t rem = bl__remaining(dl);
    if ((check_dead || rem == 0) && steal_if_dead(l, w, me))
      return BL_EOWNERDEAD;
    if (rem == 0) return BL_ETIMEOUT;
    if (!(w & BL__LOCK_WAITERS)) {
      uint32_t ww = w | BL__LOCK_WAITERS;
      if (!__atomic_compare_exchange_n(&l->word, &w, ww, 0, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED))
        continue;
      w = ww;
    }
    int r = bl__futex_wait(&l->word, w, bl__slice(dl));
    check_dead = (r == -ETIMEDOUT);
  }
}

int bl_lock_acquire(bl_lock_t *l, int timeout_ms) {
  BL_VALIDATE(l != NULL, -EINVAL);
  pid_t me = bl__self_tid();
  uint32_t w = 0;
  /* Re-entry: the word names this tid and the owner record names this very
   * thread (not an earlier, dead holder of a recycled tid). */
  if (l->recursive &&
      (__atomic_load_n(&l->word, __ATOMIC_RELAXED) & BL__LOCK_TID) ==
          (uint32_t)me &&
      __atomic_load_n(&l->owner, __ATOMIC_RELAXED) == bl__self_thread()) {
    l->count++;
    return 0;
  }
  int rc = 0;
  if (!__atomic_compare_exchange_n(&l->word, &w, (uint32_t)me, 0,
                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
    rc = lock_slow(l, me, timeout_ms);
    if (rc != 0 && rc != BL_EOWNERDEAD) return rc;
  }
  __atomic_store_n(&l->owner, bl__self_thread(), __ATOMIC_RELEASE);
  l->count = 1;
  return rc;
}

int bl_lock_release(bl_lock_t *l) {
  BL_VALIDATE(l != NULL, -EINVAL);
  uint32_t w = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
  if (l->recursive) {
    /* billiard: AssertionError('attempt to release recursive lock not owned
     * by thread'). */
    if ((w & BL__LOCK_TID) != (uint32_t)bl__self_tid()) return BL_ESTATE;
    if (--l->count > 0) return 0;
  } else if ((w & BL__LOCK_TID) == 0) {
    return BL_EOVERRELEASE;
  }
  /* Any thread may release a Lock, as in billiard. */
  l->count = 0;
  uint32_t old = __atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE);
  if (old == 0) return BL_EOVERRELEASE; /* a racing release won */
  if (old & BL__LOCK_WAITERS) bl__futex_wake(&l->word, 1);
  return 0;
}

int bl_lock_is_mine(const bl_lock_t *l) {
  if (!l) return 0;
  uint32_t w = __atomic_load_n(&l->word, __ATOMIC_RELAXED) & BL__LOCK_TID;
  return w != 0 && w == (uint32_t)bl__self_tid();
}

int bl_lock_count(const bl_lock_t *l) {
  if (!l) return 0;
  if (!(__atomic_load_n(&l->word, __ATOMIC_RELAXED) & BL__LOCK_TID)) return 0;
  return l->recursive ? (int)l->count : 1;
}

int bl_lock_is_recursive(const bl_lock_t *l) { return l && l->recursive; }

/* ===================== Semaphore ===================== */

#define SEM_SLOTS 32

typedef struct sem_holder {
  uint64_t who;    /* bl__self_process() */
  uint32_t units;
  uint32_t stamp;  /* order of first acquire, for "oldest holder" */
} sem_holder_t;

typedef struct sem_state {
  int32_t value;
  int32_t bound;       /* initial value for Bounded, else -1 */
  uint32_t recovered;  /* units returned from dead holders, not yet taken */
  uint32_t waiters;
  uint32_t stamp;
  uint32_t pad;
  sem_holder_t h[SEM_SLOTS];
} sem_state_t;

struct bl_semaphore {
  bl__robust_t r;
  uint32_t seq;
  uint32_t pad;
  sem_state_t st, saved;
};

static int sem_new(bl_semaphore_t **out, int value, int bounded) {
  BL_VALIDATE(out != NULL, -EINVAL);
  BL_VALIDATE(value >= 0, -EINVAL);
  int rc;
  bl_semaphore_t *s = obj_map(sizeof *s, BL_HANDLE_SEMAPHORE, &rc);
  if (!s) return rc;
  rc = bl__robust_init(&s->r);
  if (rc) {
    obj_unmap(s, sizeof *s);
    return rc;
  }
  s->st.value = value;
  s->st.bound = bounded ? value : -1;
  *out = s;
  return 0;
}

int bl_semaphore_new(bl_semaphore_t **out, int value) {
  return sem_new(out, value, 0);
}
int bl_bounded_semaphore_new(bl_semaphore_t **out, int value) {
  return sem_new(out, value, 1);
}

void bl_semaphore_free(bl_semaphore_t **s) {
  if (!s || !*s) return;
  obj_unmap(*s, sizeof **s);
  *s = NULL;
}

int bl__semaphore_export(const void *obj, int *fds) {
  return obj_export(obj, BL_HANDLE_SEMAPHORE, fds);
}

int bl_semaphore_attach(bl_semaphore_t **out, size_t index) {
  BL_VALIDATE(out != NULL, -EINVAL);
  int rc;
  *out = obj_attach(index, BL_HANDLE_SEMAPHORE, sizeof **out, &rc);
  return *out ? 0 : rc;
}

static int sem_lock(bl_semaphore_t *s) {
  int rc = bl__robust_lock(&s->r, &s->st, &s->saved, sizeof s->st);
  return rc < 0 ? rc : 0;
}
static void sem_begin(bl_semaphore_t *s) {
  bl__robust_begin(&s->r, &s->st, &s->saved, sizeof s->st);
}

/* Under the mutex: give the units of dead holders back to the count.
 * Returns how many came back. */
static int sem_reclaim(bl_semaphore_t *s) {
  int got = 0;
  for (int i = 0; i < SEM_SLOTS; i++) {
    sem_holder_t *h = &s->st.h[i];
    if (!h->units || bl__who_alive(h->who)) continue;
    sem_begin(s);
    s->st.value += (int32_t)h->units;
    s->st.recovered += h->units;
    got += (int)h->units;
    memset(h, 0, sizeof *h);
    bl__robust_end(&s->r);
  }
  return got;
}

int bl_semaphore_acquire(bl_semaphore_t *s, int timeout_ms) {
  BL_VALIDATE(s != NULL, -EINVAL);
  uint64_t dl = bl__deadline(timeout_ms);
  uint64_t me = bl__self_process();
  int rc = sem_lock(s);
  if (rc) return rc;
  int check_dead = 0;
  for (;;) {
    if (s->st.value > 0) {
      sem_begin(s);
      s->st.value--;
      int dead = 0;
      if (s->st.recovered) {
        s->st.recovered--;
        dead = 1;
      }
      /* Record the unit against this process, for owner-death recovery.
       * With every slot taken the unit goes untracked (docs/sync.md). */
      int slot = -1;
      for (int i = 0; i < SEM_SLOTS; i++) {
        if (s->st.h[i].units && s->st.h[i].who == me) { slot = i; break; }
        if (!s->st.h[i].units && slot < 0) slot = i;
      }
      if (slot >= 0) {
        sem_holder_t *h = &s->st.h[slot];
        if (!h->units) {
          h->who = me;
          h->stamp = ++s->st.stamp;
        }
        h->units++;
      }
      bl__robust_end(&s->r);
      bl__robust_unlock(&s->r);
      return dead ? BL_EOWNERDEAD : 0;
    }
    if ((check_dead || bl__remaining(dl) == 0) && sem_reclaim(s)) continue;
    int64_t rem = bl__remaining(dl);
    if (rem == 0) {
      bl__robust_unlock(&s->r);
      return BL_ETIMEOUT;
    }
    sem_begin(s);
    s->st.waiters++;
    bl__robust_end(&s->r);
    uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    bl__robust_unlock(&s->r);
    int r = bl__futex_wait(&s->seq, seq, bl__slice(dl));
    check_dead = (r == -ETIMEDOUT);
    rc = sem_lock(s);
    if (rc) return rc;
    sem_begin(s);
    if (s->st.waiters) s->st.waiters--;
    bl__robust_end(&s->r);
  }
}

int bl_semaphore_release(bl_semaphore_t *s) {
  BL_VALIDATE(s != NULL, -EINVAL);
  int rc = sem_lock(s);
  if (rc) return rc;
  if (s->st.bound >= 0 && s->st.value >= s->st.bound) {
    bl__robust_unlock(&s->r);
    return BL_EOVERRELEASE;
  }
  uint64_t me = bl__self_process();
  sem_begin(s);
  s->st.value++;
  /* Discharge this process's unit, or else the oldest holder's: a unit
   * taken here and given back there is a hand-off, not a leak. */
  int mine = -1, oldest = -1;
  for (int i = 0; i < SEM_SLOTS; i++) {
    sem_holder_t *h = &s->st.h[i];
    if (!h->units) continue;
    if (h->who == me) mine = i;
    if (oldest < 0 || h->stamp < s->st.h[oldest].stamp) oldest = i;
  }
  int slot = mine >= 0 ? mine : oldest;
  if (slot >= 0 && --s->st.h[slot].units == 0)
    memset(&s->st.h[slot], 0, sizeof s->st.h[slot]);
  int wake = s->st.waiters > 0;
  if (wake) __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
  bl__robust_end(&s->r);
  bl__robust_unlock(&s->r);
  if (wake) bl__futex_wake(&s->seq, 1);
  return 0;
}

int bl_semaphore_value(bl_semaphore_t *s) {
  BL_VALIDATE(s != NULL, -EINVAL);
  return (int)__atomic_load_n(&s->st.value, __ATOMIC_RELAXED);
}

/* ===================== Event ===================== */

struct bl_event {
  uint32_t flag;
};

int bl_event_new(bl_event_t **out) {
  BL_VALIDATE(out != NULL, -EINVAL);
  int rc;
  bl_event_t *e = obj_map(sizeof *e, BL_HANDLE_EVENT, &rc);
  if (!e) return rc;
  *out = e;
  return 0;
}

void bl_event_free(bl_event_t **e) {
  if (!e || !*e) return;
  obj_unmap(*e, sizeof **e);
  *e = NULL;
}

int bl__event_export(const void *obj, int *fds) {
  return obj_export(obj, BL_HANDLE_EVENT, fds);
}

int bl_event_attach(bl_event_t **out, size_t index) {
  BL_VALIDATE(out != NULL, -EINVAL);
  int rc;
  *out = obj_attach(index, BL_HANDLE_EVENT, sizeof **out, &rc);
  return *out ? 0 : rc;
}

/* The flag word is its own futex: no lock at all, so nothing to recover. */
void bl_event_set(bl_event_t *e) {
  if (!e) return;
  __atomic_store_n(&e->flag, 1, __ATOMIC_RELEASE);
  bl__futex_wake(&e->flag, INT_MAX);
}

void bl_event_clear(bl_event_t *e) {
  if (!e) return;
  __atomic_store_n(&e->flag, 0, __ATOMIC_RELEASE);
}

int bl_event_is_set(const bl_event_t *e) {
  return e && __atomic_load_n(&e->flag, __ATOMIC_ACQUIRE) != 0;
}

int bl_event_wait(bl_event_t *e, int timeout_ms) {
  BL_VALIDATE(e != NULL, -EINVAL);
  uint64_t dl = bl__deadline(timeout_ms);
  for (;;) {
    if (__atomic_load_n(&e->flag, __ATOMIC_ACQUIRE)) return 1;
    int64_t rem = bl__remaining(dl);
    if (rem == 0) return 0;
    bl__futex_wait(&e->flag, 0, rem);
  }
}

/* ===================== Condition ===================== */

/* Shared: the notify sequence, the waiter count and, unless a lock is
 * borrowed, the condition's own RLock (in the same mapping, so a child
 * that maps the condition has it at the right place). */
typedef struct cond_shared {
  uint32_t seq;
  uint32_t waiters;
  struct bl_lock own;
} cond_shared_t;

/* This process's view. */
struct bl_condition {
  cond_shared_t *sh;
  bl_lock_t *lock;     /* &sh->own, the borrowed lock, or an attached one */
  bl_lock_t *attached; /* a borrowed lock this view mapped itself */
};

int bl_condition_new(bl_condition_t **out, bl_lock_t *lock) {
  BL_VALIDATE(out != NULL, -EINVAL);
  bl_condition_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  int rc;
  c->sh = obj_map(sizeof *c->sh, BL_HANDLE_CONDITION, &rc);
  if (!c->sh) {
    free(c);
    return rc;
  }
  if (lock) {
    bl__shm_tag(c->sh, obj_len(sizeof *c->sh))->flags |= BL__TAG_EXT_LOCK;
    c->lock = lock;
  } else {
    bl__lock_init(&c->sh->own, 1);
    c->lock = &c->sh->own;
  }
  *out = c;
  return 0;
}

void bl_condition_free(bl_condition_t **c) {
  if (!c || !*c) return;
  bl_lock_free(&(*c)->attached);
  obj_unmap((*c)->sh, sizeof *(*c)->sh);
  free(*c);
  *c = NULL;
}

int bl__condition_export(const void *obj, int *fds) {
  const bl_condition_t *c = obj;
  int n = obj_export(c->sh, BL_HANDLE_CONDITION, fds);
  if (n < 0 || c->lock == &c->sh->own) return n;
  int rc = bl__lock_export(c->lock, fds + 1);
  return rc < 0 ? rc : 2;
}

int bl_condition_attach(bl_condition_t **out, size_t index) {
  BL_VALIDATE(out != NULL, -EINVAL);
  *out = NULL;
  bl_condition_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  int rc;
  c->sh = obj_attach(index, BL_HANDLE_CONDITION, sizeof *c->sh, &rc);
  if (!c->sh) {
    free(c);
    return rc;
  }
  if (bl__shm_tag(c->sh, obj_len(sizeof *c->sh))->flags & BL__TAG_EXT_LOCK) {
    /* The borrowed lock was passed right after the condition. */
    rc = bl_lock_attach(&c->attached, index + 1);
    if (rc) {
      bl_condition_free(&c);
      return rc == -ERANGE ? -EINVAL : rc;
    }
    c->lock = c->attached;
  } else {
    c->lock = &c->sh->own;
  }
  *out = c;
  return 0;
}

bl_lock_t *bl_condition_lock(bl_condition_t *c) { return c ? c->lock : NULL; }

int bl_condition_acquire(bl_condition_t *c, int timeout_ms) {
  BL_VALIDATE(c != NULL, -EINVAL);
  return bl_lock_acquire(c->lock, timeout_ms);
}

int bl_condition_release(bl_condition_t *c) {
  BL_VALIDATE(c != NULL, -EINVAL);
  return bl_lock_release(c->lock);
}

int bl_condition_wait(bl_condition_t *c, int timeout_ms) {
  BL_VALIDATE(c != NULL, -EINVAL);
  if (!bl_lock_is_mine(c->lock)) return BL_ESTATE;
  uint64_t dl = bl__deadline(timeout_ms);
  /* Register and read the sequence while still holding the lock: a notify
   * can only come after we release it, so it always changes seq after our
   * read and cannot be missed. */
  __atomic_add_fetch(&c->sh->waiters, 1, __ATOMIC_SEQ_CST);
  uint32_t seq = __atomic_load_n(&c->sh->seq, __ATOMIC_SEQ_CST);
  uint32_t depth = c->lock->count;
  c->lock->count = 1;
  bl_lock_release(c->lock);
  int notified = 0;
  for (;;) {
    if (__atomic_load_n(&c->sh->seq, __ATOMIC_ACQUIRE) != seq) {
      notified = 1;
      break;
    }
    int64_t rem = bl__remaining(dl);
    if (rem == 0) break;
    bl__futex_wait(&c->sh->seq, seq, rem);
  }
  __atomic_sub_fetch(&c->sh->waiters, 1, __ATOMIC_SEQ_CST);
  int rc = bl_lock_acquire(c->lock, -1);
  if (!BL_ACQUIRED(rc)) return rc;
  c->lock->count = depth;
  return rc == BL_EOWNERDEAD ? rc : notified;
}

int bl_condition_wait_for(bl_condition_t *c, bl_predicate_fn pred, void *arg,
                          int timeout_ms) {
  BL_VALIDATE(c != NULL && pred != NULL, -EINVAL);
  if (!bl_lock_is_mine(c->lock)) return BL_ESTATE;
  uint64_t dl = bl__deadline(timeout_ms);
  int r = pred(arg);
  while (!r) {
    int64_t rem = bl__remaining(dl);
    if (rem == 0) break;
    int w = bl_condition_wait(
        c, rem < 0 ? -1 : (int)((rem + (int64_t)BL__NS_PER_MS - 1) /
                                (int64_t)BL__NS_PER_MS));
    if (w < 0 && w != BL_EOWNERDEAD) return w;
    r = pred(arg);
  }
  return r;
}

static int cond_notify(bl_condition_t *c, int n) {
  BL_VALIDATE(c != NULL, -EINVAL);
  if (!bl_lock_is_mine(c->lock)) return BL_ESTATE;
  if (n <= 0) return 0;
  if (__atomic_load_n(&c->sh->waiters, __ATOMIC_SEQ_CST) == 0) return 0;
  __atomic_add_fetch(&c->sh->seq, 1, __ATOMIC_SEQ_CST);
  bl__futex_wake(&c->sh->seq, n);
  return 0;
}

int bl_condition_notify(bl_condition_t *c, int n) { return cond_notify(c, n); }
int bl_condition_notify_all(bl_condition_t *c) {
  return cond_notify(c, INT_MAX);
}

/* ===================== Barrier ===================== */

#define BAR_SLOTS 64
enum { BAR_FILLING = 0, BAR_DRAINING = 1, BAR_ACTION = 2, BAR_RESETTING = -1,
       BAR_BROKEN = -2 };

typedef struct bar_state {
  int32_t count;
  int32_t state;
  uint64_t in[BAR_SLOTS]; /* processes inside wait(), for death detection */
} bar_state_t;

/* Shared: no pointers. */
typedef struct bar_shared {
  bl__robust_t r;
  uint32_t seq;
  int32_t parties;
  bar_state_t st, saved;
} bar_shared_t;

/* This process's view. The action is a function of this program image, so
 * it stays here: a spawn child has it at another address (or not at all,
 * bl_barrier_attach). */
struct bl_barrier {
  bar_shared_t *sh;
  bl_barrier_action_fn action;
  void *arg;
};

int bl_barrier_new(bl_barrier_t **out, int parties, bl_barrier_action_fn action,
                   void *arg) {
  BL_VALIDATE(out != NULL, -EINVAL);
  BL_VALIDATE(parties >= 1, -EINVAL);
  bl_barrier_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  int rc;
  b->sh = obj_map(sizeof *b->sh, BL_HANDLE_BARRIER, &rc);
  if (!b->sh) {
    free(b);
    return rc;
  }
  rc = bl__robust_init(&b->sh->r);
  if (rc) {
    obj_unmap(b->sh, sizeof *b->sh);
    free(b);
    return rc;
  }
  b->sh->parties = parties;
  b->action = action;
  b->arg = arg;
  *out = b;
  return 0;
}

void bl_barrier_free(bl_barrier_t **b) {
  if (!b || !*b) return;
  obj_unmap((*b)->sh, sizeof *(*b)->sh);
  free(*b);
  *b = NULL;
}

int bl__barrier_export(const void *obj, int *fds) {
  return obj_export(((const bl_barrier_t *)obj)->sh, BL_HANDLE_BARRIER, fds);
}

int bl_barrier_attach(bl_barrier_t **out, size_t index,
                      bl_barrier_action_fn action, void *arg) {
  BL_VALIDATE(out != NULL, -EINVAL);
  *out = NULL;
  bl_barrier_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  int rc;
  b->sh = obj_attach(index, BL_HANDLE_BARRIER, sizeof *b->sh, &rc);
  if (!b->sh || b->sh->parties < 1) {
    if (b->sh) {
      obj_unmap(b->sh, sizeof *b->sh);
      rc = -EINVAL;
    }
    free(b);
    return rc;
  }
  b->action = action;
  b->arg = arg;
  *out = b;
  return 0;
}

static int bar_lock(bl_barrier_t *b) {
  int rc = bl__robust_lock(&b->sh->r, &b->sh->st, &b->sh->saved, sizeof b->sh->st);
  return rc < 0 ? rc : 0;
}
static void bar_begin(bl_barrier_t *b) {
  bl__robust_begin(&b->sh->r, &b->sh->st, &b->sh->saved, sizeof b->sh->st);
}
/* Under the mutex and inside a journal: state changed, wake everybody. */
static void bar_notify(bl_barrier_t *b) {
  __atomic_add_fetch(&b->sh->seq, 1, __ATOMIC_RELEASE);
  bl__futex_wake(&b->sh->seq, INT_MAX);
}

/* Sleep one slice (or until deadline) with the mutex released. 0 when woken
 * or -ETIMEDOUT; re-locks before returning. */
static int bar_sleep(bl_barrier_t *b, uint64_t dl) {
  uint32_t seq = __atomic_load_n(&b->sh->seq, __ATOMIC_ACQUIRE);
  bl__robust_unlock(&b->sh->r);
  int r = bl__futex_wait(&b->sh->seq, seq, bl__slice(dl));
  int rc = bar_lock(b);
  return rc ? rc : r;
}

/* A party died inside wait(): its arrival will never be undone by itself,
 * and the cycle can never complete. Break the barrier and drop it. */
static void bar_reap(bl_barrier_t *b) {
  for (int i = 0; i < BAR_SLOTS; i++) {
    if (!b->sh->st.in[i] || bl__who_alive(b->sh->st.in[i])) continue;
    bar_begin(b);
    b->sh->st.in[i] = 0;
    b->sh->st.count--;
    /* Dying while the cycle fills (or in the action) breaks it; dying on
     * the way out of a completed cycle only ends that party's exit. */
    if (b->sh->st.state == BAR_FILLING || b->sh->st.state == BAR_ACTION)
      b->sh->st.state = BAR_BROKEN;
    else if (b->sh->st.count == 0 &&
             (b->sh->st.state == BAR_DRAINING || b->sh->st.state == BAR_RESETTING))
      b->sh->st.state = BAR_FILLING;
    bar_notify(b);
    bl__robust_end(&b->sh->r);
  }
}

static void bar_exit(bl_barrier_t *b, int slot) {
  bar_begin(b);
  if (slot >= 0) b->sh->st.in[slot] = 0;
  b->sh->st.count--;
  if (b->sh->st.count == 0 &&
      (b->sh->st.state == BAR_RESETTING || b->sh->st.state == BAR_DRAINING)) {
    b->sh->st.state = BAR_FILLING;
    bar_notify(b);
  }
  bl__robust_end(&b->sh->r);
}

int bl_barrier_wait(bl_barrier_t *b, int timeout_ms) {
  BL_VALIDATE(b != NULL, -EINVAL);
  uint64_t dl = bl__deadline(timeout_ms);
  int rc = bar_lock(b);
  if (rc) return rc;
  /* Wait while a previous cycle drains or resets (as threading.Barrier). */
  while (b->sh->st.state == BAR_DRAINING || b->sh->st.state == BAR_RESETTING ||
         b->sh->st.state == BAR_ACTION) {
    rc = bar_sleep(b, BL__FOREVER);
    if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR) return rc;
    if (rc == -ETIMEDOUT) bar_reap(b);
  }
  if (b->sh->st.state < 0) {
    bl__robust_unlock(&b->sh->r);
    return BL_EBROKENBARRIER;
  }
  bar_begin(b);
  int index = b->sh->st.count++;
  int slot = -1;
  for (int i = 0; i < BAR_SLOTS && slot < 0; i++)
    if (!b->sh->st.in[i]) slot = i;
  if (slot >= 0) b->sh->st.in[slot] = bl__self_process();
  bl__robust_end(&b->sh->r);
  int result = index;
  if (index + 1 == b->sh->parties) {
    if (b->action) {
      bar_begin(b);
      b->sh->st.state = BAR_ACTION;
      bl__robust_end(&b->sh->r);
      /* Run the action without the mutex: it may block for long. */
      bl__robust_unlock(&b->sh->r);
      int arc = b->action(b->arg);
      rc = bar_lock(b);
      if (rc) return rc;
      bar_begin(b);
      if (b->sh->st.state == BAR_ACTION) b->sh->st.state = arc ? BAR_BROKEN : BAR_DRAINING;
      if (arc) result = BL_EBROKENBARRIER;
      bar_notify(b);
      bl__robust_end(&b->sh->r);
    } else {
      bar_begin(b);
      b->sh->st.state = BAR_DRAINING;
      bar_notify(b);
      bl__robust_end(&b->sh->r);
    }
    if (b->sh->st.state < 0) result = BL_EBROKENBARRIER;
  } else {
    while (b->sh->st.state == BAR_FILLING || b->sh->st.state == BAR_ACTION) {
      if (bl__remaining(dl) == 0) {
        bar_begin(b);
        b->sh->st.state = BAR_BROKEN;
        bar_notify(b);
        bl__robust_end(&b->sh->r);
        break;
      }
      rc = bar_sleep(b, dl);
      if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR) return rc;
      if (rc == -ETIMEDOUT) bar_reap(b);
    }
    if (b->sh->st.state < 0) result = BL_EBROKENBARRIER;
  }
  bar_exit(b, slot);
  bl__robust_unlock(&b->sh->r);
  return result;
}

void bl_barrier_abort(bl_barrier_t *b) {
  if (!b || bar_lock(b)) return;
  bar_begin(b);
  b->sh->st.state = BAR_BROKEN;
  bar_notify(b);
  bl__robust_end(&b->sh->r);
  bl__robust_unlock(&b->sh->r);
}

void bl_barrier_reset(bl_barrier_t *b) {
  if (!b || bar_lock(b)) return;
  bar_begin(b);
  if (b->sh->st.count > 0) {
    if (b->sh->st.state == BAR_FILLING || b->sh->st.state == BAR_BROKEN)
      b->sh->st.state = BAR_RESETTING;
  } else {
    b->sh->st.state = BAR_FILLING;
  }
  bar_notify(b);
  bl__robust_end(&b->sh->r);
  bl__robust_unlock(&b->sh->r);
}

int bl_barrier_parties(const bl_barrier_t *b) { return b ? b->sh->parties : 0; }

int bl_barrier_n_waiting(bl_barrier_t *b) {
  BL_VALIDATE(b != NULL, -EINVAL);
  int rc = bar_lock(b);
  if (rc) return rc;
  int n = b->sh->st.state == BAR_FILLING ? b->sh->st.count : 0;
  bl__robust_unlock(&b->sh->r);
  return n;
}

int bl_barrier_broken(bl_barrier_t *b) {
  BL_VALIDATE(b != NULL, -EINVAL);
  int rc = bar_lock(b);
  if (rc) return rc;
  int br = b->sh->st.state == BAR_BROKEN;
  bl__robust_unlock(&b->sh->r);
  return br;
}
