/* queue.c: Queue, JoinableQueue and SimpleQueue over a shared byte ring.
 *
 * Layout: one memfd mapping = header (robust mutex, journal, futex words)
 * + ring. Committed data is [head, tail) (byte positions that only grow).
 * An item is one or more records {len, flags, item id, total} + payload:
 *
 *  - Small items (record <= ring/4) are one FIRST|LAST record, copied in or
 *    out under the mutex. A put commits by moving tail, a get by moving
 *    head, each inside a journal (shm.h): a process killed before the
 *    commit leaves no trace, after it the commit is whole.
 *  - Larger items stream through the ring in chunks. The producer holds
 *    the "writer" token, the consumer the "reader" token, for the whole
 *    item, so items never interleave; chunks are copied outside the mutex
 *    (the space past tail belongs to the writer, [head, tail) to the
 *    reader) and committed one by one.
 *
 * Death of a token holder is found by waiters that sleep in slices and then
 * check liveness. A dead (or timed-out) writer's item is aborted: its
 * committed chunks stay in the ring and are skipped by readers, since a
 * valid item is a FIRST..LAST run of one item id. A dead reader's item is
 * lost: later readers skip its remaining chunks as orphans.
 *
 * count = items started and not yet taken; it drops exactly once per item:
 * when its LAST record is consumed or skipped, or when its writer aborts
 * (an aborted item has no LAST record). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/errors.h>
#include <billiard/queue.h>

#include "fault.h"
#include "handle.h"
#include "internal.h"
#include "shm.h"

#define REC_FIRST 1u
#define REC_LAST 2u
#define DEFAULT_RING (1u << 20)
#define MIN_RING 4096u
#define HDR_SIZE sizeof(rec_hdr_t)
/* Spin this many times re-reading a futex word before sleeping on it: a
 * cross-CPU wake-up costs far more than a short spin. */
#define SPIN 200

typedef struct rec_hdr {
  uint32_t len;    /* payload bytes in this record */
  uint32_t flags;  /* REC_FIRST, REC_LAST */
  uint64_t item;   /* item id */
  uint64_t total;  /* whole item size */
} rec_hdr_t;

typedef struct q_state {
  uint64_t head, tail;
  uint64_t next_item;
  uint64_t writer, writer_item; /* streaming producer (bl__self_thread) */
  uint64_t writer_start;        /* tail when the stream began */
  uint64_t reader, reader_item; /* streaming consumer */
  uint64_t lost_item;           /* its reader died: the writer may stop */
  uint32_t count;               /* items started, not yet taken */
  uint32_t unfinished;          /* JoinableQueue */
  uint32_t put_waiters, get_waiters, join_waiters, pad;
} q_state_t;

typedef struct q_shared {
  bl__robust_t r;
  uint32_t data_seq, space_seq, join_seq, joinable;
  uint64_t cap;
  uint64_t maxsize; /* 0 = unbounded */
  q_state_t st, saved;
} q_shared_t;

#define RING_OFF ((sizeof(q_shared_t) + 63) & ~(size_t)63)

/* This process's view: where the ring is mapped here (the mapping's memfd
 * stays registered in shm.c, so the queue can be handed to a child). */
struct bl_queue {
  q_shared_t *sh;
  size_t maplen;
  int closed;
};

static unsigned char *ring(q_shared_t *sh) {
  return (unsigned char *)sh + RING_OFF;
}

static uint64_t rec_size(uint64_t len) { return (HDR_SIZE + len + 7) & ~7ull; }

static void ring_write(q_shared_t *sh, uint64_t pos, const void *src, size_t n) {
  size_t off = (size_t)(pos % sh->cap), first = sh->cap - off;
  if (first > n) first = n;
  memcpy(ring(sh) + off, src, first);
  if (n > first) memcpy(ring(sh), (const char *)src + first, n - first);
}

static void ring_read(q_shared_t *sh, uint64_t pos, void *dst, size_t n) {
  size_t off = (size_t)(pos % sh->cap), first = sh->cap - off;
  if (first > n) first = n;
  memcpy(dst, ring(sh) + off, first);
  if (n > first) memcpy((char *)dst + first, ring(sh), n - first);
}

/* ---- locking ---- */

static int q_lock(q_shared_t *sh) {
  int rc = bl__robust_lock(&sh->r, &sh->st, &sh->saved, sizeof sh->st);
  return rc < 0 ? rc : 0;
}
static void q_unlock(q_shared_t *sh) { bl__robust_unlock(&sh->r); }
static void q_begin(q_shared_t *sh) {
  bl__robust_begin(&sh->r, &sh->st, &sh->saved, sizeof sh->st);
}
static void q_end(q_shared_t *sh) { bl__robust_end(&sh->r); }

static void bump(uint32_t *seq) { __atomic_add_fetch(seq, 1, __ATOMIC_RELEASE); }

/* Called locked. Sleep on *seq (one slice at most) with the mutex
 * released, counted in *waiters. Returns 0 woken, -ETIMEDOUT, or a lock
 * error (then unlocked). */
static int q_sleep(q_shared_t *sh, uint32_t *seq, uint32_t *waiters,
                   uint64_t dl) {
  q_begin(sh);
  (*waiters)++;
  q_end(sh);
  uint32_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
  q_unlock(sh);
  int r = 0, i;
  for (i = 0; i < SPIN; i++) {
    if (__atomic_load_n(seq, __ATOMIC_ACQUIRE) != s) break;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  if (i == SPIN) r = bl__futex_wait(seq, s, bl__slice(dl));
  int rc = q_lock(sh);
  if (rc) return rc;
  q_begin(sh);
  if (*waiters) (*waiters)--;
  q_end(sh);
  return r == -ETIMEDOUT ? r : 0;
}

static void wake_all(q_shared_t *sh) {
  bump(&sh->data_seq);
  bump(&sh->space_seq);
  bl__futex_wake(&sh->data_seq, INT_MAX);
  bl__futex_wake(&sh->space_seq, INT_MAX);
}

/* Locked: end the current stream without its LAST record (the writer died
 * or gave up). Its item no longer counts. Its records are the newest in the
 * ring ([writer_start, tail), nothing else is written while the token is
 * held), so unless a reader is busy with them they are simply cut off: a
 * full ring of an aborted item must not block the next put. */
static void abort_writer(q_shared_t *sh) {
  q_begin(sh);
  if (sh->st.reader_item != sh->st.writer_item)
    sh->st.tail = sh->st.writer_start > sh->st.head ? sh->st.writer_start
                                                    : sh->st.head;
  sh->st.writer = 0;
  sh->st.writer_item = 0;
  sh->st.lost_item = 0;
  if (sh->st.count) sh->st.count--;
  q_end(sh);
}

/* Locked: the reader of item x died. Drop x's records at head (all the
 * ring holds of x; the dead reader had consumed everything before them).
 * If x's LAST record was not there yet, x is still being written: tell its
 * writer that nobody will ever read the rest. */
static void drop_dead_reader(q_shared_t *sh) {
  uint64_t x = sh->st.reader_item;
  q_begin(sh);
  sh->st.reader = 0;
  sh->st.reader_item = 0;
  int done = 0;
  while (!done && sh->st.head < sh->st.tail) {
    rec_hdr_t h;
    ring_read(sh, sh->st.head, &h, HDR_SIZE);
    if (h.item != x) break;
    sh->st.head += rec_size(h.len);
    if (h.flags & REC_LAST) {
      if (sh->st.count) sh->st.count--;
      done = 1;
    }
  }
  if (!done && sh->st.writer_item == x) sh->st.lost_item = x;
  q_end(sh);
}

/* Locked: look for dead token holders and release their tokens. Returns
 * 1 when something changed. */
static int reap_tokens(q_shared_t *sh) {
  int changed = 0;
  if (sh->st.writer && !bl__who_alive(sh->st.writer)) {
    abort_writer(sh);
    changed = 1;
  }
  if (sh->st.reader && !bl__who_alive(sh->st.reader)) {
    drop_dead_reader(sh);
    changed = 1;
  }
  if (changed) wake_all(sh);
  return changed;
}

/* ---- construction ---- */

void bl_queue_options_init(bl_queue_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static int queue_new(bl_queue_t **out, const bl_queue_options_t *o,
                     int joinable) {
  BL_VALIDATE(out != NULL, -EINVAL);
  bl_queue_options_t def;
  if (!o) {
    bl_queue_options_init(&def);
    o = &def;
  }
  BL_VALIDATE(o->size == sizeof *o, -EINVAL);
  for (size_t i = 0; i < BL__ARRAY_SIZE(o->reserved); i++)
    BL_VALIDATE(o->reserved[i] == 0, -EINVAL);
  size_t cap = o->ring_bytes ? o->ring_bytes : DEFAULT_RING;
  /* <= 4 GiB keeps every record length (<= ring/4) within 32 bits. */
  BL_VALIDATE(cap >= MIN_RING && cap <= (1ull << 32), -EINVAL);
  cap = (cap + 7) & ~(size_t)7;
  bl_queue_t *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  void *base;
  int rc = bl__shm_map(RING_OFF + cap, BL_HANDLE_QUEUE, &base, &q->maplen);
  if (rc) {
    free(q);
    return rc;
  }
  q->sh = base;
  rc = bl__robust_init(&q->sh->r);
  if (rc) {
    bl__shm_unmap(base, q->maplen);
    free(q);
    return rc;
  }
  q->sh->cap = cap;
  q->sh->maxsize = o->maxsize;
  q->sh->joinable = joinable ? 1u : 0u;
  q->sh->st.next_item = 1;
  *out = q;
  return 0;
}

int bl_queue_new(bl_queue_t **out, const bl_queue_options_t *o) {
  return queue_new(out, o, 0);
}
int bl_joinable_queue_new(bl_queue_t **out, const bl_queue_options_t *o) {
  return queue_new(out, o, 1);
}

void bl_queue_free(bl_queue_t **q) {
  if (!q || !*q) return;
  bl__shm_unmap((*q)->sh, (*q)->maplen);
  free(*q);
  *q = NULL;
}

int bl__queue_export(const void *obj, int *fds) {
  const bl_queue_t *q = obj;
  int fd = bl__shm_fd_of(q->sh, BL_HANDLE_QUEUE);
  if (fd < 0) return fd;
  if (q->closed) return BL_ECLOSED;
  fds[0] = fd;
  return 1;
}

int bl_queue_attach(bl_queue_t **out, size_t index) {
  BL_VALIDATE(out != NULL, -EINVAL);
  *out = NULL;
  int fd = bl__handle_fd(index, BL_HANDLE_QUEUE);
  if (fd < 0) return fd;
  bl_queue_t *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  void *base;
  int rc = bl__shm_attach(fd, BL_HANDLE_QUEUE, &base, &q->maplen);
  size_t room = RING_OFF + sizeof(bl__shm_tag_t);
  if (rc == 0) {
    q_shared_t *sh = base;
    /* Trust nothing the mapping says about its own size: the ring must end
     * before the trailer. */
    if (q->maplen < room + MIN_RING || sh->cap < MIN_RING ||
        sh->cap > q->maplen - room)
      rc = -EINVAL;
    if (rc) bl__shm_unmap(base, q->maplen);
  }
  if (rc) {
    free(q);
    return rc;
  }
  q->sh = base;
  *out = q;
  return 0;
}

/* ---- put ---- */

static int room_for_item(q_shared_t *sh) {
  return !sh->maxsize || sh->st.count < sh->maxsize;
}
static uint64_t space(q_shared_t *sh) {
  return sh->cap - (sh->st.tail - sh->st.head);
}

/* Locked: wait until a put may start (no stream in progress, below
 * maxsize, and need bytes free). 0 or BL_EFULL (still locked), or a lock
 * error (unlocked). */
static int wait_put_slot(q_shared_t *sh, uint64_t need, uint64_t dl) {
  int check_dead = 0;
  for (;;) {
    if (!sh->st.writer && room_for_item(sh) && space(sh) >= need) return 0;
    if (check_dead || bl__remaining(dl) == 0) {
      if (reap_tokens(sh)) continue;
    }
    if (bl__remaining(dl) == 0) return BL_EFULL;
    int r = q_sleep(sh, &sh->space_seq, &sh->st.put_waiters, dl);
    if (r < 0 && r != -ETIMEDOUT) return r;
    check_dead = (r == -ETIMEDOUT);
  }
}

static void wake_getters(q_shared_t *sh, int any) {
  if (any) bl__futex_wake(&sh->data_seq, INT_MAX);
}

static int put_small(bl_queue_t *q, const void *buf, size_t len, uint64_t dl) {
  q_shared_t *sh = q->sh;
  uint64_t rs = rec_size(len);
  int rc = q_lock(sh);
  if (rc) return rc;
  rc = wait_put_slot(sh, rs, dl);
  if (rc) {
    if (rc == BL_EFULL) q_unlock(sh);
    return rc;
  }
  rc = BL_FAULT("queue/put/write", EIO);
  if (rc) {
    q_unlock(sh);
    return rc;
  }
  rec_hdr_t h = {(uint32_t)len, REC_FIRST | REC_LAST, sh->st.next_item, len};
  ring_write(sh, sh->st.tail, &h, HDR_SIZE);
  ring_write(sh, sh->st.tail + HDR_SIZE, buf, len);
  BL_FAULT_CRASH("queue/put/crash"); /* dies holding the mutex, uncommitted */
  q_begin(sh);
  sh->st.tail += rs;
  sh->st.next_item++;
  sh->st.count++;
  if (sh->joinable) sh->st.unfinished++;
  int wake = sh->st.get_waiters > 0;
  if (wake) bump(&sh->data_seq);
  q_end(sh);
  q_unlock(sh);
  wake_getters(sh, wake);
  return 0;
}

static int put_stream(bl_queue_t *q, const void *buf, size_t len, uint64_t dl) {
  q_shared_t *sh = q->sh;
  uint64_t me = bl__self_thread();
  int rc = q_lock(sh);
  if (rc) return rc;
  rc = wait_put_slot(sh, 0, dl);
  if (rc) {
    if (rc == BL_EFULL) q_unlock(sh);
    return rc;
  }
  q_begin(sh);
  uint64_t item = sh->st.next_item++;
  sh->st.writer = me;
  sh->st.writer_item = item;
  sh->st.writer_start = sh->st.tail;
  sh->st.count++;
  q_end(sh);
  /* Chunks: at most a quarter ring each, so a reader can drain one while
   * the next is written. */
  uint64_t chunk_max = sh->cap / 4 - HDR_SIZE;
  size_t off = 0;
  uint32_t flags = REC_FIRST;
  int check_dead = 0;
  while (off < len || (flags & REC_FIRST)) {
    size_t n = len - off;
    if (n > chunk_max) n = (size_t)chunk_max;
    uint64_t rs = rec_size(n);
    if (sh->st.lost_item == item) {
      /* Our reader died mid-item: the item was taken (and lost with it);
       * nobody will read the rest, so stop streaming it. */
      q_begin(sh);
      sh->st.writer = 0;
      sh->st.writer_item = 0;
      sh->st.lost_item = 0;
      if (sh->st.count) sh->st.count--;
      q_end(sh);
      q_unlock(sh);
      wake_all(sh);
      return 0;
    }
    if (space(sh) < rs) {
      if (check_dead) reap_tokens(sh);
      if (bl__remaining(dl) == 0) {
        /* Give up: abort the item as if this writer had died. */
        abort_writer(sh);
        q_unlock(sh);
        wake_all(sh);
        return BL_EFULL;
      }
      int r = q_sleep(sh, &sh->space_seq, &sh->st.put_waiters, dl);
      if (r < 0 && r != -ETIMEDOUT) return r;
      check_dead = (r == -ETIMEDOUT);
      continue;
    }
    rc = BL_FAULT("queue/put/write", EIO);
    if (rc) {
      abort_writer(sh);
      q_unlock(sh);
      wake_all(sh);
      return rc;
    }
    uint64_t pos = sh->st.tail;
    if (off + n == len) flags |= REC_LAST;
    /* The bytes past tail are this writer's alone: copy unlocked. */
    q_unlock(sh);
    rec_hdr_t h = {(uint32_t)n, flags, item, len};
    ring_write(sh, pos, &h, HDR_SIZE);
    ring_write(sh, pos + HDR_SIZE, (const char *)buf + off, n);
    rc = q_lock(sh);
    if (rc) return rc;
    q_begin(sh);
    sh->st.tail += rs;
    /* Giving the writer token back lets waiting puts start. */
    int wake_puts = 0;
    if (flags & REC_LAST) {
      sh->st.writer = 0;
      sh->st.writer_item = 0;
      if (sh->joinable) sh->st.unfinished++;
      wake_puts = sh->st.put_waiters > 0;
      if (wake_puts) bump(&sh->space_seq);
    }
    int wake = sh->st.get_waiters > 0;
    if (wake) bump(&sh->data_seq);
    q_end(sh);
    wake_getters(sh, wake);
    if (wake_puts) bl__futex_wake(&sh->space_seq, INT_MAX);
    off += n;
    if (flags & REC_LAST) break;
    flags = 0;
    BL_FAULT_CRASH("queue/put/mid-stream"); /* dies holding the writer token */
  }
  q_unlock(sh);
  return 0;
}

int bl_queue_put(bl_queue_t *q, const void *buf, size_t len, int timeout_ms) {
  BL_VALIDATE(q != NULL, -EINVAL);
  BL_VALIDATE(buf != NULL || len == 0, -EINVAL);
  BL_VALIDATE(len <= SIZE_MAX / 2, -EINVAL); /* record sizes cannot wrap */
  if (q->closed) return BL_ESTATE;
  if (!buf) buf = "";
  uint64_t dl = bl__deadline(timeout_ms);
  if (rec_size(len) <= q->sh->cap / 4) return put_small(q, buf, len, dl);
  return put_stream(q, buf, len, dl);
}

int bl_queue_put_nowait(bl_queue_t *q, const void *buf, size_t len) {
  return bl_queue_put(q, buf, len, 0);
}

/* ---- get ---- */

/* Locked, as the reader of item `item` with `got` bytes so far: wait for
 * its next record. 1 = next record is ours (in *h), 0 = the item was
 * aborted (token dropped), < 0 lock error (unlocked). The caller's timeout
 * does not apply here: once an item has started arriving, get() waits for
 * it to complete or for its writer to die or give up. */
static int next_chunk(q_shared_t *sh, uint64_t item, rec_hdr_t *h) {
  int check_dead = 0;
  for (;;) {
    if (sh->st.tail > sh->st.head) {
      ring_read(sh, sh->st.head, h, HDR_SIZE);
      if (h->item == item && !(h->flags & REC_FIRST)) return 1;
      return 0; /* another item starts: ours was aborted */
    }
    if (sh->st.writer_item != item) return 0; /* writer gone, no more data */
    if (check_dead) reap_tokens(sh);
    int r = q_sleep(sh, &sh->data_seq, &sh->st.get_waiters, BL__FOREVER);
    if (r < 0 && r != -ETIMEDOUT) return r;
    check_dead = (r == -ETIMEDOUT);
  }
}

static void drop_reader(q_shared_t *sh) {
  q_begin(sh);
  sh->st.reader = 0;
  sh->st.reader_item = 0;
  q_end(sh);
  wake_all(sh);
}

/* Locked, head is the FIRST record of a multi-record item: assemble it.
 * 1 = done (*out filled), 0 = aborted (skipped), -ENOMEM (nothing taken);
 * all three return locked. Other errors come back unlocked. */
static int get_stream(q_shared_t *sh, const rec_hdr_t *first, void **out,
                      size_t *outlen) {
  if (first->total > SIZE_MAX) return -ENOMEM;
  char *buf = malloc(first->total ? (size_t)first->total : 1);
  if (!buf) return -ENOMEM;
  uint64_t item = first->item;
  q_begin(sh);
  sh->st.reader = bl__self_thread();
  sh->st.reader_item = item;
  q_end(sh);
  rec_hdr_t h = *first;
  size_t got = 0;
  for (;;) {
    if (got + h.len > first->total) break; /* corrupt: treat as aborted */
    uint64_t pos = sh->st.head;
    /* [head, tail) is the reader's to copy from: unlocked. */
    q_unlock(sh);
    ring_read(sh, pos + HDR_SIZE, buf + got, h.len);
    int rc = q_lock(sh);
    if (rc) {
      free(buf);
      return rc;
    }
    got += h.len;
    q_begin(sh);
    sh->st.head += rec_size(h.len);
    int last = (h.flags & REC_LAST) != 0;
    /* Giving the reader token back lets waiting gets start. */
    int wake_gets = 0;
    if (last) {
      if (sh->st.count) sh->st.count--;
      sh->st.reader = 0;
      sh->st.reader_item = 0;
      wake_gets = sh->st.get_waiters > 0;
      if (wake_gets) bump(&sh->data_seq);
    }
    int wake = sh->st.put_waiters > 0;
    if (wake) bump(&sh->space_seq);
    q_end(sh);
    if (wake) bl__futex_wake(&sh->space_seq, INT_MAX);
    if (wake_gets) bl__futex_wake(&sh->data_seq, INT_MAX);
    if (last) {
      *out = buf;
      *outlen = got;
      return 1;
    }
    BL_FAULT_CRASH("queue/get/mid-stream"); /* dies holding the reader token */
    rc = next_chunk(sh, item, &h);
    if (rc < 0) {
      free(buf);
      return rc;
    }
    if (rc == 0) break;
  }
  free(buf);
  drop_reader(sh);
  return 0;
}

int bl_queue_get(bl_queue_t *q, void **out, size_t *outlen, int timeout_ms) {
  BL_VALIDATE(q != NULL && out != NULL && outlen != NULL, -EINVAL);
  if (q->closed) return BL_ECLOSED;
  q_shared_t *sh = q->sh;
  uint64_t dl = bl__deadline(timeout_ms);
  int rc = q_lock(sh);
  if (rc) return rc;
  int check_dead = 0;
  for (;;) {
    if (!sh->st.reader && sh->st.tail > sh->st.head) {
      rec_hdr_t h;
      ring_read(sh, sh->st.head, &h, HDR_SIZE);
      if (!(h.flags & REC_FIRST)) {
        /* An orphan: the rest of an item whose reader died. */
        q_begin(sh);
        sh->st.head += rec_size(h.len);
        if ((h.flags & REC_LAST) && sh->st.count) sh->st.count--;
        int wake = sh->st.put_waiters > 0;
        if (wake) bump(&sh->space_seq);
        q_end(sh);
        if (wake) bl__futex_wake(&sh->space_seq, INT_MAX);
        continue;
      }
      if (!(h.flags & REC_LAST)) {
        rc = get_stream(sh, &h, out, outlen);
        if (rc < 0) {
          if (rc == -ENOMEM) q_unlock(sh);
          return rc;
        }
        if (rc == 1) break;
        continue; /* aborted: look for the next item */
      }
      void *buf = malloc(h.len ? h.len : 1);
      if (!buf) {
        q_unlock(sh);
        return -ENOMEM;
      }
      ring_read(sh, sh->st.head + HDR_SIZE, buf, h.len);
      BL_FAULT_CRASH("queue/get/crash"); /* dies holding the mutex */
      q_begin(sh);
      sh->st.head += rec_size(h.len);
      sh->st.count--;
      int wake = sh->st.put_waiters > 0;
      if (wake) bump(&sh->space_seq);
      q_end(sh);
      q_unlock(sh);
      if (wake) bl__futex_wake(&sh->space_seq, INT_MAX);
      *out = buf;
      *outlen = h.len;
      return 0;
    }
    if (check_dead || bl__remaining(dl) == 0) {
      if (reap_tokens(sh)) continue;
    }
    if (bl__remaining(dl) == 0) {
      q_unlock(sh);
      return BL_EEMPTY;
    }
    int r = q_sleep(sh, &sh->data_seq, &sh->st.get_waiters, dl);
    if (r < 0 && r != -ETIMEDOUT) return r;
    check_dead = (r == -ETIMEDOUT);
  }
  q_unlock(sh);
  return 0;
}

int bl_queue_get_nowait(bl_queue_t *q, void **out, size_t *len) {
  return bl_queue_get(q, out, len, 0);
}

/* ---- state ---- */

int bl_queue_qsize(bl_queue_t *q) {
  BL_VALIDATE(q != NULL, -EINVAL);
  uint32_t n = __atomic_load_n(&q->sh->st.count, __ATOMIC_RELAXED);
  return n > INT_MAX ? INT_MAX : (int)n;
}

int bl_queue_empty(bl_queue_t *q) {
  BL_VALIDATE(q != NULL, -EINVAL);
  return bl_queue_qsize(q) == 0;
}

int bl_queue_full(bl_queue_t *q) {
  BL_VALIDATE(q != NULL, -EINVAL);
  return q->sh->maxsize && (uint64_t)bl_queue_qsize(q) >= q->sh->maxsize;
}

int bl_queue_close(bl_queue_t *q) {
  BL_VALIDATE(q != NULL, -EINVAL);
  q->closed = 1;
  return 0;
}

int bl_queue_join_thread(bl_queue_t *q) {
  BL_VALIDATE(q != NULL, -EINVAL);
  return q->closed ? 0 : BL_ESTATE;
}

void bl_queue_cancel_join_thread(bl_queue_t *q) { (void)q; }

int bl_queue_task_done(bl_queue_t *q) {
  BL_VALIDATE(q != NULL, -EINVAL);
  q_shared_t *sh = q->sh;
  if (!sh->joinable) return BL_ENOTSUPPORTED;
  int rc = q_lock(sh);
  if (rc) return rc;
  if (sh->st.unfinished == 0) {
    q_unlock(sh);
    return BL_EOVERRELEASE;
  }
  q_begin(sh);
  sh->st.unfinished--;
  int wake = sh->st.unfinished == 0 && sh->st.join_waiters;
  if (wake) bump(&sh->join_seq);
  q_end(sh);
  q_unlock(sh);
  if (wake) bl__futex_wake(&sh->join_seq, INT_MAX);
  return 0;
}

int bl_queue_join(bl_queue_t *q, int timeout_ms) {
  BL_VALIDATE(q != NULL, -EINVAL);
  q_shared_t *sh = q->sh;
  if (!sh->joinable) return BL_ENOTSUPPORTED;
  uint64_t dl = bl__deadline(timeout_ms);
  int rc = q_lock(sh);
  if (rc) return rc;
  while (sh->st.unfinished) {
    if (bl__remaining(dl) == 0) {
      q_unlock(sh);
      return BL_ETIMEOUT;
    }
    int r = q_sleep(sh, &sh->join_seq, &sh->st.join_waiters, dl);
    if (r < 0 && r != -ETIMEDOUT) return r;
  }
  q_unlock(sh);
  return 0;
}

/* ---- SimpleQueue ---- */

int bl_simple_queue_new(bl_simple_queue_t **out) { return bl_queue_new(out, NULL); }
int bl_simple_queue_put(bl_simple_queue_t *q, const void *buf, size_t len) {
  return bl_queue_put(q, buf, len, -1);
}
int bl_simple_queue_get(bl_simple_queue_t *q, void **buf, size_t *len) {
  return bl_queue_get(q, buf, len, -1);
}
int bl_simple_queue_empty(bl_simple_queue_t *q) { return bl_queue_empty(q); }
int bl_simple_queue_close(bl_simple_queue_t *q) { return bl_queue_close(q); }
void bl_simple_queue_free(bl_simple_queue_t **q) { bl_queue_free(q); }
