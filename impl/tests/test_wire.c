/* test_wire.c: frame encode/decode (pure, no I/O). */
#include <criterion/criterion.h>
#include <string.h>

#include <billiard/errors.h>

#include "wire.h"

Test(wire, short_header_is_big_endian_like_billiard) {
  uint8_t h[BL__WIRE_HDR_MAX];
  cr_assert_eq(bl__wire_encode_header(h, 0x01020304), 4);
  cr_expect_eq(h[0], 1);
  cr_expect_eq(h[3], 4);
  uint64_t len = 0;
  cr_expect_eq(bl__wire_header_size(h), 4);
  cr_expect_eq(bl__wire_decode_header(h, 4, BL__WIRE_MAX_PAYLOAD, &len), 0);
  cr_expect_eq(len, 0x01020304);
  cr_assert_eq(bl__wire_encode_header(h, 0), 4);
  cr_expect_eq(bl__wire_decode_header(h, 4, 0, &len), 0);
  cr_expect_eq(len, 0);
}

Test(wire, long_header_uses_minus_one_escape_at_2gib) {
  uint8_t h[BL__WIRE_HDR_MAX];
  cr_expect_eq(bl__wire_encode_header(h, BL__WIRE_SHORT_MAX), 4);
  uint64_t big = (uint64_t)BL__WIRE_SHORT_MAX + 1;
  cr_assert_eq(bl__wire_encode_header(h, big), 12);
  cr_expect_eq(memcmp(h, "\xff\xff\xff\xff", 4), 0);
  cr_expect_eq(bl__wire_header_size(h), 12);
  uint64_t len = 0;
  cr_expect_eq(bl__wire_decode_header(h, 12, BL__WIRE_MAX_PAYLOAD, &len), 0);
  cr_expect_eq(len, big);
  /* The size given must match the form. */
  cr_expect_eq(bl__wire_decode_header(h, 4, BL__WIRE_MAX_PAYLOAD, &len), BL_EPROTOCOL);
}

Test(wire, negative_length_is_protocol_error) {
  const uint8_t h[4] = {0x80, 0, 0, 5};
  uint64_t len;
  cr_expect_eq(bl__wire_header_size(h), BL_EPROTOCOL);
  cr_expect_eq(bl__wire_decode_header(h, 4, BL__WIRE_MAX_PAYLOAD, &len), BL_EPROTOCOL);
  const uint8_t m2[4] = {0xff, 0xff, 0xff, 0xfe}; /* -2 */
  cr_expect_eq(bl__wire_header_size(m2), BL_EPROTOCOL);
}

Test(wire, length_above_max_or_sanity_cap_is_rejected) {
  uint8_t h[BL__WIRE_HDR_MAX];
  uint64_t len;
  bl__wire_encode_header(h, 100);
  cr_expect_eq(bl__wire_decode_header(h, 4, 100, &len), 0);
  cr_expect_eq(bl__wire_decode_header(h, 4, 99, &len), BL_EPROTOCOL);
  /* A forged 8-byte length beyond 1 TiB, even with no caller limit. */
  const uint8_t huge[12] = {0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff};
  cr_expect_eq(bl__wire_decode_header(huge, 12, UINT64_MAX, &len), BL_EPROTOCOL);
}

Test(wire, parse_needs_whole_frame_and_never_overreads) {
  uint8_t buf[BL__WIRE_HDR_MAX];
  bl__wire_encode_header(buf, 5);
  memcpy(buf + 4, "hello", 5);
  const uint8_t *pl = NULL;
  uint64_t len = 0;
  /* Every proper prefix is "need more" (0); each is checked in a buffer of
   * exactly that size, so ASan/valgrind would catch an over-read. */
  for (size_t n = 0; n < 9; n++) {
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    cr_expect_eq(bl__wire_parse(exact, n, BL__WIRE_MAX_PAYLOAD, &pl, &len), 0, "n=%zu", n);
    free(exact);
  }
  cr_expect_eq(bl__wire_parse(buf, 9, BL__WIRE_MAX_PAYLOAD, &pl, &len), 9);
  cr_expect_eq(len, 5);
  cr_expect_eq(memcmp(pl, "hello", 5), 0);
}

Test(wire, parse_rejects_malformed_and_oversized) {
  const uint8_t bad[6] = {0xff, 0xff, 0xff, 0x00, 'x', 'y'};
  cr_expect_eq(bl__wire_parse(bad, sizeof bad, BL__WIRE_MAX_PAYLOAD, NULL, NULL), BL_EPROTOCOL);
  uint8_t f[BL__WIRE_HDR_MAX];
  bl__wire_encode_header(f, 3);
  cr_expect_eq(bl__wire_parse(f, 7, 2, NULL, NULL), BL_EPROTOCOL);
  /* A partial escape header is "need more", not an error. */
  const uint8_t esc[7] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0};
  cr_expect_eq(bl__wire_parse(esc, sizeof esc, BL__WIRE_MAX_PAYLOAD, NULL, NULL), 0);
}

Test(wire, parse_pseudo_random_bytes_never_crashes) {
  /* A tiny deterministic fuzz: results are always -proto, 0 or in range. */
  uint32_t x = 12345;
  uint8_t buf[32];
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(i % 33);
    for (size_t k = 0; k < n; k++) {
      x = x * 1103515245u + 12345u;
      buf[k] = (uint8_t)(x >> 16);
    }
    if (n >= 4 && (i & 1)) buf[0] = 0; /* bias toward valid short headers */
    long long r = bl__wire_parse(buf, n, BL__WIRE_MAX_PAYLOAD, NULL, NULL);
    cr_assert(r == BL_EPROTOCOL || (r >= 0 && (size_t)r <= n), "r=%lld n=%zu", r, n);
  }
}
