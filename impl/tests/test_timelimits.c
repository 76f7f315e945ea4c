/* test_timelimits.c: the pure soft/hard deadline state. */
#include <criterion/criterion.h>

#include "internal.h"
#include "timelimits.h"

#define MS BL__NS_PER_MS
#define T0 (5000 * MS)

Test(timelimits, soft_then_hard_each_once) {
  bl__tl_t tl;
  bl__tl_start(&tl, T0, 100, 300);
  cr_expect_eq(bl__tl_next(&tl), T0 + 100 * MS);
  cr_expect_eq(bl__tl_due(&tl, T0 + 99 * MS), BL__TL_NONE);
  cr_expect_eq(bl__tl_due(&tl, T0 + 100 * MS), BL__TL_SOFT);
  cr_expect_eq(bl__tl_due(&tl, T0 + 101 * MS), BL__TL_NONE);
  cr_expect_eq(bl__tl_next(&tl), T0 + 300 * MS);
  cr_expect_eq(bl__tl_due(&tl, T0 + 300 * MS), BL__TL_HARD);
  cr_expect_eq(bl__tl_due(&tl, T0 + 999 * MS), BL__TL_NONE);
  cr_expect_eq(bl__tl_next(&tl), BL__TL_NEVER);
}

Test(timelimits, equal_limits_send_no_soft) {
  bl__tl_t tl;
  bl__tl_start(&tl, T0, 200, 200);
  cr_expect_eq(bl__tl_due(&tl, T0 + 200 * MS), BL__TL_HARD);
  cr_expect_eq(bl__tl_due(&tl, T0 + 201 * MS), BL__TL_NONE);
}

Test(timelimits, late_check_gives_hard_not_soft) {
  bl__tl_t tl;
  bl__tl_start(&tl, T0, 100, 200);
  /* Both are due: hard is checked first and swallows the soft one. */
  cr_expect_eq(bl__tl_due(&tl, T0 + 500 * MS), BL__TL_HARD);
  cr_expect_eq(bl__tl_due(&tl, T0 + 501 * MS), BL__TL_NONE);
}

Test(timelimits, soft_only_and_none) {
  bl__tl_t tl;
  bl__tl_start(&tl, T0, 50, 0);
  cr_expect_eq(bl__tl_due(&tl, T0 + 49 * MS), BL__TL_NONE);
  cr_expect_eq(bl__tl_due(&tl, T0 + 50 * MS), BL__TL_SOFT);
  cr_expect_eq(bl__tl_next(&tl), BL__TL_NEVER);
  bl__tl_start(&tl, T0, 0, 0);
  cr_expect_eq(bl__tl_next(&tl), BL__TL_NEVER);
  cr_expect_eq(bl__tl_due(&tl, UINT64_MAX - 1), BL__TL_NONE);
}

Test(timelimits, stop_clears) {
  bl__tl_t tl;
  bl__tl_start(&tl, T0, 10, 20);
  bl__tl_stop(&tl);
  cr_expect_eq(bl__tl_next(&tl), BL__TL_NEVER);
  cr_expect_eq(bl__tl_due(&tl, T0 + 1000 * MS), BL__TL_NONE);
}

Test(timelimits, timeout_ms_rounds_up_and_caps) {
  cr_expect_eq(bl__tl_timeout_ms(BL__TL_NEVER, T0, -1), -1);
  cr_expect_eq(bl__tl_timeout_ms(BL__TL_NEVER, T0, 250), 250);
  cr_expect_eq(bl__tl_timeout_ms(T0, T0, -1), 0);
  cr_expect_eq(bl__tl_timeout_ms(T0 - 1, T0, -1), 0);
  cr_expect_eq(bl__tl_timeout_ms(T0 + 1, T0, -1), 1);  /* never early */
  cr_expect_eq(bl__tl_timeout_ms(T0 + MS, T0, -1), 1);
  cr_expect_eq(bl__tl_timeout_ms(T0 + MS + 1, T0, -1), 2);
  cr_expect_eq(bl__tl_timeout_ms(T0 + 10000 * MS, T0, 250), 250);
}
