/* wire.c: frame encode/decode for Pipe/Connection (see wire.h).
 * Pure: no I/O, no malloc, no globals. */
#include "wire.h"

#include <billiard/errors.h>

#include "internal.h"

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

size_t bl__wire_encode_header(uint8_t out[BL__WIRE_HDR_MAX], uint64_t len) {
  if (len <= BL__WIRE_SHORT_MAX) {
    put_be32(out, (uint32_t)len);
    return BL__WIRE_HDR_SHORT;
  }
  testcase(len == (uint64_t)BL__WIRE_SHORT_MAX + 1);
  put_be32(out, 0xffffffffu); /* -1: the 8-byte length follows */
  put_be32(out + 4, (uint32_t)(len >> 32));
  put_be32(out + 8, (uint32_t)len);
  return BL__WIRE_HDR_LONG;
}

int bl__wire_header_size(const uint8_t first[BL__WIRE_HDR_SHORT]) {
  uint32_t v = get_be32(first);
  if (v == 0xffffffffu) return BL__WIRE_HDR_LONG;
  /* billiard reads the length as a signed "!i": other negatives are junk. */
  if (v > BL__WIRE_SHORT_MAX) return BL_EPROTOCOL;
  return BL__WIRE_HDR_SHORT;
}

int bl__wire_decode_header(const uint8_t *hdr, size_t n, uint64_t max,
                           uint64_t *len) {
  if (!hdr || !len || n < BL__WIRE_HDR_SHORT) return BL_EPROTOCOL;
  int want = bl__wire_header_size(hdr);
  if (want < 0 || (size_t)want != n) return BL_EPROTOCOL;
  uint64_t v;
  if (n == BL__WIRE_HDR_SHORT)
    v = get_be32(hdr);
  else
    v = (uint64_t)get_be32(hdr + 4) << 32 | get_be32(hdr + 8);
  if (max > BL__WIRE_MAX_PAYLOAD) max = BL__WIRE_MAX_PAYLOAD;
  testcase(v == max);
  if (v > max) return BL_EPROTOCOL;
  *len = v;
  return 0;
}

long long bl__wire_parse(const void *buf, size_t n, uint64_t max,
                         const uint8_t **payload, uint64_t *len) {
  const uint8_t *p = buf;
  if (n < BL__WIRE_HDR_SHORT) return 0;
  int h = bl__wire_header_size(p);
  if (h < 0) return h;
  if (n < (size_t)h) return 0;
  uint64_t l;
  int rc = bl__wire_decode_header(p, (size_t)h, max, &l);
  if (rc < 0) return rc;
  /* l <= 2^40 and h <= 12: no overflow in the sum. */
  if ((uint64_t)(n - (size_t)h) < l) return 0;
  if (payload) *payload = p + h;
  if (len) *len = l;
  return (long long)((uint64_t)h + l);
}
