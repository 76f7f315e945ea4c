/* poolwire.h: frames between the pool (parent) and its workers.
 *
 * Both ends are the same program on the same machine (fork), so fields are
 * in host byte order. Every frame is a fixed header followed by len body
 * bytes; frames are batched into one write/read where possible.
 *   parent -> worker: TASK (job, chunk, first item index, task name, items),
 *                     STOP (finish what you have, then exit 0)
 *   worker -> parent: ACK (started job/chunk), READY (n result items),
 *                     FAIL (code, type, message, traceback),
 *                     DONE (left a shared map job after n chunks)
 * A shared map job (BL__PW_F_SHM, docs/pool.md "Shared map path") moves
 * its items through the pool's arena instead: its TASK only names the job's
 * head there, and the worker claims chunks from it until none is left. */
#ifndef BL_POOLWIRE_H
#define BL_POOLWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <billiard/errors.h>

enum { BL__PW_TASK = 1, BL__PW_STOP, BL__PW_ACK, BL__PW_READY, BL__PW_FAIL,
       BL__PW_DONE };

typedef struct bl__pw_hdr {
  uint32_t len;      /* body bytes after this header */
  uint8_t type;
  uint8_t flags;     /* TASK: BL__PW_F_* */
  uint16_t namelen;  /* TASK: task name bytes at the start of the body */
  uint32_t chunk;    /* chunk index within the job (0 for apply) */
  uint32_t nitems;   /* TASK/READY: items in the body */
  uint64_t job;
  uint64_t first;    /* TASK: index of the first item in the job */
} bl__pw_hdr_t;

#define BL__PW_MAX_BODY (1u << 30)
/* TASK flag: write the ACK frame before running (a time limit or an accept
 * callback needs it at once). Without it the worker records the start in
 * its shared page and the ACK travels with the next write; such a unit has
 * no time limit, so the worker never looks for a soft limit while it runs. */
#define BL__PW_F_ACK 1u
/* TASK flag: a chunk of a blocking-style map (no limit, no accept callback,
 * nothing consumes a chunk before the whole job is done). Its READY may be
 * held while the worker runs the next unit if that one is a chunk of the
 * same job with this flag too, so results travel in batches (one write per
 * batch, not per chunk). The worker still flushes before it blocks, at a
 * size threshold, before a recycle, and a FAIL at once. */
#define BL__PW_F_BATCH 2u
/* TASK flag: join a shared map job whose head is at arena offset `first`
 * (nitems 0, the body is the task name). The worker answers with DONE
 * (nitems = chunks it ran), or FAIL for the chunk that failed; before that,
 * READY frames with this flag carry chunks whose results did not fit in
 * the job's result area. */
#define BL__PW_F_SHM 4u

/* A growable byte buffer; data is p[off, len). */
typedef struct bl__buf {
  uint8_t *p;
  size_t off, len, cap;
} bl__buf_t;

int bl__buf_reserve(bl__buf_t *b, size_t extra);   /* 0 or -ENOMEM */
int bl__buf_append(bl__buf_t *b, const void *d, size_t n);
void bl__buf_compact(bl__buf_t *b);                 /* drop consumed bytes */
void bl__buf_free(bl__buf_t *b);

/* TASK carrying items [i0, i0+n) of an argument table (base + off/len). */
int bl__pw_put_task(bl__buf_t *b, uint64_t job, uint32_t chunk, uint64_t first,
                    const char *name, const uint8_t *base, const size_t *off,
                    const size_t *lens, size_t i0, uint32_t n);
/* The same from an array of argument pointers (items [i0, i0+n)). */
int bl__pw_put_task_v(bl__buf_t *b, uint64_t job, uint32_t chunk,
                      uint64_t first, const char *name,
                      const void *const *args, const size_t *lens, size_t i0,
                      uint32_t n);
int bl__pw_put_simple(bl__buf_t *b, uint8_t type, uint64_t job, uint32_t chunk);
/* TASK with BL__PW_F_SHM: join the shared map job whose head is at `head`. */
int bl__pw_put_join(bl__buf_t *b, uint64_t job, uint32_t unit, uint64_t head,
                    const char *name);
/* DONE: left shared job `job` after running n chunks. */
int bl__pw_put_done(bl__buf_t *b, uint64_t job, uint32_t n);
/* READY built incrementally: begin, add items, end (patches the header). */
int bl__pw_ready_begin(bl__buf_t *b, uint64_t job, uint32_t chunk, size_t *at);
int bl__pw_ready_item(bl__buf_t *b, size_t at, const void *d, size_t n);
/* A READY frame being built at the end of b (header at `at`) can also take
 * items written in place: bl__pw_ready_slot gives room for n bytes after
 * the length prefix (NULL if too big for the frame or out of memory; b may
 * move), bl__pw_ready_commit adds the item; bl__pw_ready_end then sets the
 * header's length and item count once. */
static inline uint8_t *bl__pw_ready_slot(bl__buf_t *b, size_t at, size_t n) {
  size_t body = b->len - at - sizeof(bl__pw_hdr_t);
  if (n > BL__PW_MAX_BODY || body + 4 + n > BL__PW_MAX_BODY) return NULL;
  if (b->len + 4 + n > b->cap && bl__buf_reserve(b, 4 + n)) return NULL;
  return b->p + b->len + 4;
}
static inline void bl__pw_ready_commit(bl__buf_t *b, size_t n) {
  uint32_t l = (uint32_t)n;
  memcpy(b->p + b->len, &l, 4);
  b->len += 4 + n;
}
void bl__pw_ready_end(bl__buf_t *b, size_t at, uint32_t nitems);
int bl__pw_put_fail(bl__buf_t *b, uint64_t job, uint32_t chunk, int code,
                    const char *type, const char *msg, const char *tb);

/* Look at the next whole frame in p[0, avail): its size (header + body), 0
 * if incomplete, BL_EPROTOCOL if malformed. *h is filled when > 0. */
long bl__pw_peek(const uint8_t *p, size_t avail, bl__pw_hdr_t *h);
/* Walk the items of a TASK/READY body: *cursor starts at the first item
 * (after the name for TASK). 0 and the item, or BL_EPROTOCOL. */
static inline int bl__pw_next_item(const uint8_t *body, size_t blen,
                                   size_t *cursor, const uint8_t **item,
                                   size_t *ilen) {
  uint32_t l;
  if (*cursor + 4 > blen) return BL_EPROTOCOL;
  memcpy(&l, body + *cursor, 4);
  if (l > blen - *cursor - 4) return BL_EPROTOCOL;
  *item = body + *cursor + 4;
  *ilen = l;
  *cursor += 4 + (size_t)l;
  return 0;
}
/* A READY body of n items that all have the first one's length (*l0):
 * body[k * (4 + l0)] holds l0 for every k. Independent loads, no walk. */
static inline int bl__pw_body_uniform(const uint8_t *body, size_t blen,
                                      size_t n, uint32_t *l0) {
  if (blen < 4) return 0;
  memcpy(l0, body, 4);
  size_t stride = 4 + (size_t)*l0;
  if (*l0 > blen || blen / stride != n || blen % stride) return 0;
  uint32_t diff = 0;
  for (size_t k = 1; k < n; k++) {
    uint32_t l;
    memcpy(&l, body + k * stride, 4);
    diff |= l ^ *l0;
  }
  return diff == 0;
}
/* The items of a uniform body, packed without their prefixes. */
void bl__pw_body_pack(uint8_t *dst, const uint8_t *body, size_t n, uint32_t l0);
/* Decode a FAIL body; strings point into body (not NUL-terminated: lengths). */
typedef struct bl__pw_fail {
  int code;
  const char *type, *msg, *tb;
  uint32_t typelen, msglen, tblen;
} bl__pw_fail_t;
int bl__pw_get_fail(const uint8_t *body, size_t blen, bl__pw_fail_t *f);

#endif /* BL_POOLWIRE_H */
