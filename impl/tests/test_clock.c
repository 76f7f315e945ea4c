/* test_clock.c: monotonic and offset clocks. */
#include <criterion/criterion.h>

#include <billiard/clock.h>

#include "internal.h"

static uint64_t fixed(void *ud) { return *(uint64_t *)ud; }

Test(clock, null_clock_is_monotonic) {
  uint64_t a = bl_clock_now(NULL), b = bl_clock_now(NULL);
  cr_expect_leq(a, b);
  cr_expect_gt(a, 0);
}

Test(clock, injected_clock_is_used) {
  uint64_t t = 42;
  bl_clock_t c = {fixed, &t};
  cr_expect_eq(bl_clock_now(&c), 42);
  t = 7 * BL__NS_PER_S;
  cr_expect_eq(bl_clock_now(&c), 7 * BL__NS_PER_S);
}

Test(clock, offset_clock_jumps_forward) {
  bl_offset_clock_t oc;
  bl_offset_clock_init(&oc);
  uint64_t a = bl_clock_now(&oc.clock);
  bl_offset_clock_jump(&oc, 1000 * (int64_t)BL__NS_PER_S);
  uint64_t b = bl_clock_now(&oc.clock);
  cr_expect_geq(b - a, 1000 * BL__NS_PER_S);
}

Test(clock, offset_clock_never_goes_backwards) {
  bl_offset_clock_t oc;
  bl_offset_clock_init(&oc);
  uint64_t a = bl_clock_now(&oc.clock);
  bl_offset_clock_jump(&oc, -3600 * (int64_t)BL__NS_PER_S);
  uint64_t b = bl_clock_now(&oc.clock);
  cr_expect_geq(b, a);
}
