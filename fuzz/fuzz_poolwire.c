/* fuzz_poolwire.c: the pool <-> worker frame decoder (impl/src/poolwire.c).
 *
 * Walks frames as the pool and the worker do (peek, then items of TASK and
 * READY bodies from the cursor each side uses, FAIL bodies decoded) and
 * checks that everything returned lies inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "poolwire.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define INSIDE(q, l, base, n) CHECK((q) >= (base) && (size_t)((q) - (base)) + (l) <= (n))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    bl__pw_hdr_t h;
    long n = bl__pw_peek(data + off, size - off, &h);
    if (n <= 0) break;
    CHECK((size_t)n == sizeof h + h.len && (size_t)n <= size - off);
    const uint8_t *body = data + off + sizeof h;
    if (h.type == BL__PW_TASK || h.type == BL__PW_READY) {
      size_t cur = h.type == BL__PW_TASK ? h.namelen : 0;
      CHECK(cur <= h.len);
      for (uint32_t i = 0; i < h.nitems && i < 100000; i++) {
        const uint8_t *it;
        size_t il;
        if (bl__pw_next_item(body, h.len, &cur, &it, &il) != 0) break;
        INSIDE(it, il, body, h.len);
        CHECK(cur <= h.len);
      }
    } else if (h.type == BL__PW_FAIL) {
      bl__pw_fail_t f;
      if (bl__pw_get_fail(body, h.len, &f) == 0) {
        if (f.typelen) INSIDE((const uint8_t *)f.type, f.typelen, body, h.len);
        if (f.msglen) INSIDE((const uint8_t *)f.msg, f.msglen, body, h.len);
        if (f.tblen) INSIDE((const uint8_t *)f.tb, f.tblen, body, h.len);
      }
    }
    off += (size_t)n;
  }
  /* The encoder and decoder agree on a frame built from the input. */
  if (size >= 2) {
    bl__buf_t b = {0};
    size_t half = size / 2, offs[2] = {0, half}, lens[2] = {half, size - half};
    char name[17];
    size_t nl = data[0] % 17;
    memset(name, 'a', nl);
    name[nl] = 0;
    if (bl__pw_put_task(&b, 7, 1, 3, name, data, offs, lens, 0, 2) == 0) {
      bl__pw_hdr_t h;
      long n = bl__pw_peek(b.p + b.off, b.len - b.off, &h);
      CHECK(n > 0 && h.type == BL__PW_TASK && h.nitems == 2 && h.namelen == nl);
      const uint8_t *body = b.p + b.off + sizeof h, *it;
      size_t cur = h.namelen, il;
      for (int i = 0; i < 2; i++) {
        CHECK(bl__pw_next_item(body, h.len, &cur, &it, &il) == 0);
        CHECK(il == lens[i] && memcmp(it, data + offs[i], il) == 0);
      }
    }
    bl__buf_free(&b);
  }
  return 0;
}
