/* poolwire.c: encoding and decoding of pool frames (see poolwire.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "poolwire.h"

int bl__buf_reserve(bl__buf_t *b, size_t extra) {
  if (b->len + extra <= b->cap) return 0;
  if (b->off > 0 && b->off >= b->len / 2) {
    bl__buf_compact(b);
    if (b->len + extra <= b->cap) return 0;
  }
  size_t ncap = b->cap ? b->cap : 4096;
  while (ncap < b->len + extra) ncap *= 2;
  uint8_t *n = realloc(b->p, ncap);
  if (!n) return -ENOMEM;
  b->p = n;
  b->cap = ncap;
  return 0;
}

int bl__buf_append(bl__buf_t *b, const void *d, size_t n) {
  int rc = bl__buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

void bl__buf_compact(bl__buf_t *b) {
  if (b->off == 0) return;
  memmove(b->p, b->p + b->off, b->len - b->off);
  b->len -= b->off;
  b->off = 0;
}

void bl__buf_free(bl__buf_t *b) {
  free(b->p);
  *b = (bl__buf_t){0};
}

static int put_hdr(bl__buf_t *b, uint8_t type, uint64_t job, uint32_t chunk,
                   size_t *at) {
  bl__pw_hdr_t h = {.type = type, .job = job, .chunk = chunk};
  *at = b->len;
  return bl__buf_append(b, &h, sizeof h);
}

/* One TASK frame of n items; item i is args[i] when args is given, else
 * base + off[i] (the pool's packed argument store). The size is checked
 * before any argument byte is read. */
static int put_task(bl__buf_t *b, uint64_t job, uint32_t chunk, uint64_t first,
                    const char *name, const void *const *args,
                    const uint8_t *base, const size_t *off, const size_t *lens,
                    size_t i0, uint32_t n) {
  const size_t *ln = lens + i0;
  size_t nl = strlen(name), body = nl + 4 * (size_t)n, big = 0;
  for (uint32_t i = 0; i < n; i++) { /* no early exit: vectorisable */
    body += ln[i];
    big |= ln[i] > BL__PW_MAX_BODY;
  }
  if (big || body > BL__PW_MAX_BODY) return -EMSGSIZE;
  int rc = bl__buf_reserve(b, sizeof(bl__pw_hdr_t) + body);
  if (rc) return rc;
  bl__pw_hdr_t h = {.len = (uint32_t)body, .type = BL__PW_TASK,
                    .namelen = (uint16_t)nl, .chunk = chunk, .nitems = n,
                    .job = job, .first = first};
  /* Locals, not b's fields: stores through p could alias them. */
  uint8_t *p = b->p + b->len;
  memcpy(p, &h, sizeof h);
  p += sizeof h;
  memcpy(p, name, nl);
  p += nl;
  if (args) {
    const void *const *av = args + i0;
    for (uint32_t i = 0; i < n; i++) {
      size_t l = ln[i];
      uint32_t l32 = (uint32_t)l;
      memcpy(p, &l32, 4);
      if (l == 8) memcpy(p + 4, av[i], 8); /* the usual small item: no call */
      else if (l) memcpy(p + 4, av[i], l);
      p += 4 + l;
    }
  } else {
    const size_t *ov = off + i0;
    for (uint32_t i = 0; i < n; i++) {
      size_t l = ln[i];
      uint32_t l32 = (uint32_t)l;
      memcpy(p, &l32, 4);
      if (l == 8) memcpy(p + 4, base + ov[i], 8);
      else if (l) memcpy(p + 4, base + ov[i], l);
      p += 4 + l;
    }
  }
  b->len += sizeof h + body;
  return 0;
}

int bl__pw_put_task_v(bl__buf_t *b, uint64_t job, uint32_t chunk,
                      uint64_t first, const char *name,
                      const void *const *args, const size_t *lens, size_t i0,
                      uint32_t n) {
  return put_task(b, job, chunk, first, name, args, NULL, NULL, lens, i0, n);
}

static bl__pw_hdr_t *hdr_at(bl__buf_t *b, size_t at) {
  return (bl__pw_hdr_t *)(void *)(b->p + at);
}

int bl__pw_put_task(bl__buf_t *b, uint64_t job, uint32_t chunk, uint64_t first,
                    const char *name, const uint8_t *base, const size_t *off,
                    const size_t *lens, size_t i0, uint32_t n) {
  return put_task(b, job, chunk, first, name, NULL, base, off, lens, i0, n);
}

int bl__pw_put_simple(bl__buf_t *b, uint8_t type, uint64_t job, uint32_t chunk) {
  size_t at;
  return put_hdr(b, type, job, chunk, &at);
}

int bl__pw_put_join(bl__buf_t *b, uint64_t job, uint32_t unit, uint64_t head,
                    const char *name) {
  size_t nl = strlen(name);
  bl__pw_hdr_t h = {.len = (uint32_t)nl, .type = BL__PW_TASK,
                    .flags = BL__PW_F_SHM, .namelen = (uint16_t)nl,
                    .chunk = unit, .job = job, .first = head};
  int rc = bl__buf_reserve(b, sizeof h + nl);
  if (rc) return rc;
  memcpy(b->p + b->len, &h, sizeof h);
  memcpy(b->p + b->len + sizeof h, name, nl);
  b->len += sizeof h + nl;
  return 0;
}

int bl__pw_put_done(bl__buf_t *b, uint64_t job, uint32_t n) {
  bl__pw_hdr_t h = {.type = BL__PW_DONE, .nitems = n, .job = job};
  return bl__buf_append(b, &h, sizeof h);
}

void bl__pw_body_pack(uint8_t *dst, const uint8_t *body, size_t n, uint32_t l0) {
  const uint8_t *src = body + 4;
  size_t stride = 4 + (size_t)l0;
  if (l0 == 8) { /* the usual 8-byte item: fixed-size copies, no calls */
    for (size_t k = 0; k < n; k++) memcpy(dst + 8 * k, src + 12 * k, 8);
  } else if (l0 == 4) {
    for (size_t k = 0; k < n; k++) memcpy(dst + 4 * k, src + 8 * k, 4);
  } else if (l0) {
    for (size_t k = 0; k < n; k++) memcpy(dst + k * l0, src + k * stride, l0);
  }
}

int bl__pw_ready_begin(bl__buf_t *b, uint64_t job, uint32_t chunk, size_t *at) {
  return put_hdr(b, BL__PW_READY, job, chunk, at);
}

void bl__pw_ready_end(bl__buf_t *b, size_t at, uint32_t nitems) {
  /* memcpy, not a header pointer: frames are packed, at may be unaligned */
  uint32_t hl = (uint32_t)(b->len - at - sizeof(bl__pw_hdr_t));
  memcpy(b->p + at + offsetof(bl__pw_hdr_t, len), &hl, sizeof hl);
  memcpy(b->p + at + offsetof(bl__pw_hdr_t, nitems), &nitems, sizeof nitems);
}

int bl__pw_ready_item(bl__buf_t *b, size_t at, const void *d, size_t n) {
  uint32_t ni;
  if (n > BL__PW_MAX_BODY ||
      b->len - at - sizeof(bl__pw_hdr_t) + 4 + n > BL__PW_MAX_BODY)
    return -EMSGSIZE;
  uint8_t *slot = bl__pw_ready_slot(b, at, n);
  if (!slot) return -ENOMEM;
  if (n) memcpy(slot, d, n);
  bl__pw_ready_commit(b, n);
  memcpy(&ni, b->p + at + offsetof(bl__pw_hdr_t, nitems), sizeof ni);
  bl__pw_ready_end(b, at, ni + 1);
  return 0;
}

static size_t cap_str(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n > 65536 ? 65536 : n;  /* keep error frames bounded */
}

int bl__pw_put_fail(bl__buf_t *b, uint64_t job, uint32_t chunk, int code,
                    const char *type, const char *msg, const char *tb) {
  uint32_t l[3] = {(uint32_t)cap_str(type), (uint32_t)cap_str(msg),
                   (uint32_t)cap_str(tb)};
  size_t at, body = 4 + sizeof l + l[0] + l[1] + l[2];
  int rc = bl__buf_reserve(b, sizeof(bl__pw_hdr_t) + body);
  if (rc) return rc;
  put_hdr(b, BL__PW_FAIL, job, chunk, &at); /* room reserved: cannot fail */
  hdr_at(b, at)->len = (uint32_t)body;
  int32_t c = code;
  bl__buf_append(b, &c, 4);
  bl__buf_append(b, l, sizeof l);
  bl__buf_append(b, type, l[0]);
  bl__buf_append(b, msg, l[1]);
  bl__buf_append(b, tb, l[2]);
  return 0;
}

long bl__pw_peek(const uint8_t *p, size_t avail, bl__pw_hdr_t *h) {
  if (avail < sizeof *h) return 0;
  memcpy(h, p, sizeof *h);
  if (h->len > BL__PW_MAX_BODY || h->type < BL__PW_TASK || h->type > BL__PW_DONE)
    return BL_EPROTOCOL;
  if (h->type == BL__PW_TASK && h->namelen > h->len) return BL_EPROTOCOL;
  if (avail - sizeof *h < h->len) return 0;
  return (long)(sizeof *h + h->len);
}

int bl__pw_get_fail(const uint8_t *body, size_t blen, bl__pw_fail_t *f) {
  int32_t c;
  uint32_t l[3];
  if (blen < 4 + sizeof l) return BL_EPROTOCOL;
  memcpy(&c, body, 4);
  memcpy(l, body + 4, sizeof l);
  if ((uint64_t)l[0] + l[1] + l[2] != blen - 4 - sizeof l) return BL_EPROTOCOL;
  const char *s = (const char *)body + 4 + sizeof l;
  *f = (bl__pw_fail_t){.code = c, .type = s, .typelen = l[0], .msg = s + l[0],
                       .msglen = l[1], .tb = s + l[0] + l[1], .tblen = l[2]};
  return 0;
}
