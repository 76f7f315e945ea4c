/* test_cov_poolwire.c: the pool's frame codec on its own: buffers, every
 * frame kind round-tripped, and malformed or oversized frames refused. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "poolwire.h"

Test(cov_poolwire, buffer_grows_and_compacts) {
  bl__buf_t b = {0};
  cr_assert_eq(bl__buf_append(&b, "0123456789", 10), 0);
  cr_expect_eq(b.cap, 4096);
  cr_assert_eq(bl__buf_append(&b, NULL, 0), 0);
  /* Most of it consumed: reserving compacts before growing. */
  b.off = 8;
  cr_assert_eq(bl__buf_reserve(&b, 4090), 0);
  cr_expect_eq(b.off, 0);
  cr_expect_eq(b.len, 2);
  cr_expect_eq(memcmp(b.p, "89", 2), 0);
  cr_expect_eq(b.cap, 4096, "compaction made room");
  b.off = 1;
  cr_assert_eq(bl__buf_reserve(&b, 10000), 0);
  cr_expect_eq(b.off, 0);
  cr_expect_geq(b.cap, 10001);
  bl__buf_compact(&b); /* nothing consumed: no-op */
  cr_expect_eq(b.len, 1);
  bl__buf_free(&b);
  cr_expect_null(b.p);
}

Test(cov_poolwire, task_frames_round_trip) {
  bl__buf_t b = {0};
  const void *args[] = {"ab", "", "cde"};
  size_t lens[] = {2, 0, 3};
  cr_assert_eq(bl__pw_put_task_v(&b, 7, 1, 10, "sq", args, lens, 0, 3), 0);
  const uint8_t base[] = "xxhello";
  size_t off[] = {2}, l2[] = {5};
  cr_assert_eq(bl__pw_put_task(&b, 8, 0, 0, "t", base, off, l2, 0, 1), 0);
  cr_assert_eq(bl__pw_put_simple(&b, BL__PW_STOP, 0, 0), 0);
  bl__pw_hdr_t h;
  long n = bl__pw_peek(b.p, b.len, &h);
  cr_assert_gt(n, 0);
  cr_expect_eq(h.type, BL__PW_TASK);
  cr_expect_eq(h.nitems, 3);
  cr_expect_eq(h.first, 10);
  const uint8_t *body = b.p + sizeof h, *it;
  size_t cur = h.namelen, il;
  cr_expect_eq(memcmp(body, "sq", 2), 0);
  cr_assert_eq(bl__pw_next_item(body, h.len, &cur, &it, &il), 0);
  cr_expect(il == 2 && memcmp(it, "ab", 2) == 0);
  cr_assert_eq(bl__pw_next_item(body, h.len, &cur, &it, &il), 0);
  cr_expect_eq(il, 0);
  cr_assert_eq(bl__pw_next_item(body, h.len, &cur, &it, &il), 0);
  cr_expect(il == 3 && memcmp(it, "cde", 3) == 0);
  cr_expect_eq(bl__pw_next_item(body, h.len, &cur, &it, &il), BL_EPROTOCOL, "past the end");
  /* An item length running past the body. */
  uint8_t bad[8] = {0};
  uint32_t big = 100;
  memcpy(bad, &big, 4);
  cur = 0;
  cr_expect_eq(bl__pw_next_item(bad, sizeof bad, &cur, &it, &il), BL_EPROTOCOL);
  long n2 = bl__pw_peek(b.p + n, b.len - (size_t)n, &h);
  cr_assert_gt(n2, 0);
  cr_expect_eq(h.job, 8);
  cr_expect_eq(bl__pw_peek(b.p + n + n2, b.len - (size_t)(n + n2), &h), (long)sizeof h);
  cr_expect_eq(h.type, BL__PW_STOP);
  /* Incomplete: a partial header, a partial body. */
  cr_expect_eq(bl__pw_peek(b.p, sizeof h - 1, &h), 0);
  cr_expect_eq(bl__pw_peek(b.p, sizeof h + 1, &h), 0);
  bl__buf_free(&b);
}

Test(cov_poolwire, oversized_frames_are_refused) {
  bl__buf_t b = {0};
  /* The size check comes before any byte is read from the arguments. */
  const void *args[] = {"", ""};
  size_t lens[] = {BL__PW_MAX_BODY / 2, BL__PW_MAX_BODY / 2};
  cr_expect_eq(bl__pw_put_task_v(&b, 1, 0, 0, "t", args, lens, 0, 2), -EMSGSIZE);
  cr_expect_eq(b.len, 0);
  size_t at;
  cr_assert_eq(bl__pw_ready_begin(&b, 1, 0, &at), 0);
  cr_expect_eq(bl__pw_ready_item(&b, at, "", (size_t)BL__PW_MAX_BODY + 1), -EMSGSIZE);
  cr_expect_null(bl__pw_ready_slot(&b, at, (size_t)BL__PW_MAX_BODY + 1));
  cr_expect_null(bl__pw_ready_slot(&b, at, BL__PW_MAX_BODY - 2), "with its prefix");
  bl__buf_free(&b);
}

Test(cov_poolwire, ready_frames_built_item_by_item) {
  bl__buf_t b = {0};
  size_t at;
  cr_assert_eq(bl__pw_put_simple(&b, BL__PW_ACK, 3, 0), 0); /* unaligned next */
  cr_assert_eq(bl__pw_ready_begin(&b, 3, 2, &at), 0);
  cr_assert_eq(bl__pw_ready_item(&b, at, "one", 3), 0);
  cr_assert_eq(bl__pw_ready_item(&b, at, NULL, 0), 0);
  uint8_t *slot = bl__pw_ready_slot(&b, at, 2);
  cr_assert_not_null(slot);
  memcpy(slot, "ok", 2);
  bl__pw_ready_commit(&b, 2);
  bl__pw_ready_end(&b, at, 3);
  bl__pw_hdr_t h;
  long n = bl__pw_peek(b.p + at, b.len - at, &h);
  cr_assert_gt(n, 0);
  cr_expect_eq(h.type, BL__PW_READY);
  cr_expect_eq(h.chunk, 2);
  cr_expect_eq(h.nitems, 3);
  cr_expect_eq(h.len, 4 + 3 + 4 + 0 + 4 + 2);
  bl__buf_free(&b);
}

Test(cov_poolwire, fail_frames_and_malformed_headers) {
  bl__buf_t b = {0};
  char *huge = malloc(70001);
  memset(huge, 'm', 70000);
  huge[70000] = 0;
  cr_assert_eq(bl__pw_put_fail(&b, 5, 1, BL_ETASK, "ValueError", huge, NULL), 0);
  free(huge);
  bl__pw_hdr_t h;
  long n = bl__pw_peek(b.p, b.len, &h);
  cr_assert_gt(n, 0);
  bl__pw_fail_t f;
  cr_assert_eq(bl__pw_get_fail(b.p + sizeof h, h.len, &f), 0);
  cr_expect_eq(f.code, BL_ETASK);
  cr_expect_eq(f.typelen, 10);
  cr_expect_eq(f.msglen, 65536, "messages are capped");
  cr_expect_eq(f.tblen, 0);
  cr_expect_eq(bl__pw_get_fail(b.p + sizeof h, 8, &f), BL_EPROTOCOL, "short");
  cr_expect_eq(bl__pw_get_fail(b.p + sizeof h, h.len - 1, &f), BL_EPROTOCOL,
               "lengths disagree");
  /* Headers: unknown types, an oversized body, a name longer than it. */
  bl__pw_hdr_t bad = {.len = 0, .type = 0};
  cr_expect_eq(bl__pw_peek((uint8_t *)&bad, sizeof bad, &h), BL_EPROTOCOL);
  bad.type = BL__PW_DONE + 1;
  cr_expect_eq(bl__pw_peek((uint8_t *)&bad, sizeof bad, &h), BL_EPROTOCOL);
  bad.type = BL__PW_ACK;
  bad.len = BL__PW_MAX_BODY + 1;
  cr_expect_eq(bl__pw_peek((uint8_t *)&bad, sizeof bad, &h), BL_EPROTOCOL);
  bad.type = BL__PW_TASK;
  bad.len = 2;
  bad.namelen = 3;
  cr_expect_eq(bl__pw_peek((uint8_t *)&bad, sizeof bad, &h), BL_EPROTOCOL);
  bl__buf_free(&b);
}
