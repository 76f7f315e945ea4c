/* fuzz_wire.c: the Connection frame decoder (impl/src/wire.c) on any bytes.
 *
 * Parses frames back to back as a reader would, and checks what the decoder
 * promises: a parsed frame lies inside the input, its header re-encodes to
 * the same length, and the header helpers agree with bl__wire_parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  /* First byte picks the cap on payload length, as a recv maxlength would. */
  static const uint64_t caps[] = {0, 1, 16, 4096, BL__WIRE_SHORT_MAX, BL__WIRE_MAX_PAYLOAD,
                                  UINT64_MAX};
  uint64_t max = caps[data[0] % (sizeof caps / sizeof caps[0])];
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  while (n > 0) {
    const uint8_t *payload = NULL;
    uint64_t len = 0;
    long long used = bl__wire_parse(p, n, max, &payload, &len);
    if (n >= BL__WIRE_HDR_SHORT) {
      int hs = bl__wire_header_size(p);
      CHECK(hs == BL__WIRE_HDR_SHORT || hs == BL__WIRE_HDR_LONG || hs < 0);
      if (hs > 0 && (size_t)hs <= n) {
        uint64_t l2 = 0;
        int rc = bl__wire_decode_header(p, (size_t)hs, max, &l2);
        if (used > 0) CHECK(rc == 0 && l2 == len);
      }
    }
    if (used <= 0) break; /* need more, or malformed: a reader stops here */
    CHECK((unsigned long long)used <= n);
    CHECK(payload >= p && payload + len == p + used);
    CHECK(len <= max || max == 0 || len == 0);
    uint8_t hdr[BL__WIRE_HDR_MAX];
    size_t hl = bl__wire_encode_header(hdr, len);
    uint64_t back = 0;
    CHECK(bl__wire_decode_header(hdr, hl, BL__WIRE_MAX_PAYLOAD, &back) == 0 && back == len);
    p += used;
    n -= (size_t)used;
  }
  return 0;
}
