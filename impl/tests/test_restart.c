/* test_restart.c: the pure restart-frequency limiter (billiard's
 * restart_state semantics, behaviour §6). */
#include <criterion/criterion.h>
#include <string.h>

#include "internal.h"
#include "restart.h"

#define MS BL__NS_PER_MS
#define T0 (1000 * MS) /* T0 != 0: billiard reads a window start of 0 as "none" */

Test(restart, no_trip_at_exactly_max_restarts) {
  bl__restart_t st;
  bl__restart_init(&st, 3, 1000 * MS);
  for (uint64_t i = 0; i < 3; i++) cr_expect_eq(bl__restart_step(&st, T0 + i * MS), 0);
}

Test(restart, trips_on_max_plus_one_in_window) {
  bl__restart_t st;
  bl__restart_init(&st, 3, 1000 * MS);
  for (uint64_t i = 0; i < 3; i++) cr_expect_eq(bl__restart_step(&st, T0 + i * MS), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 3 * MS), BL_ERESTARTFREQ);
  /* A trip resets R: billiard lets the next max_r restarts through. */
  cr_expect_eq(bl__restart_step(&st, T0 + 4 * MS), 0);
}

Test(restart, fixed_window_from_first_restart) {
  bl__restart_t st;
  bl__restart_init(&st, 2, 1000 * MS);
  cr_expect_eq(bl__restart_step(&st, T0), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 900 * MS), 0);
  /* The window started at T0, not at the last restart: at T0+1000 ms it
   * has passed, so this starts a new window instead of tripping. */
  cr_expect_eq(bl__restart_step(&st, T0 + 1000 * MS), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 1001 * MS), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 1002 * MS), BL_ERESTARTFREQ);
}

Test(restart, window_boundary_minus_one_still_trips) {
  bl__restart_t st;
  bl__restart_init(&st, 1, 1000 * MS);
  cr_expect_eq(bl__restart_step(&st, T0), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 999 * MS), BL_ERESTARTFREQ);
}

Test(restart, accepted_job_resets_the_count) {
  bl__restart_t st;
  bl__restart_init(&st, 2, 1000 * MS);
  for (int round = 0; round < 5; round++) {
    cr_expect_eq(bl__restart_step(&st, T0 + (uint64_t)round * 2 * MS), 0);
    cr_expect_eq(bl__restart_step(&st, T0 + ((uint64_t)round * 2 + 1) * MS), 0);
    bl__restart_reset(&st); /* an ACK between crashes: never trips */
  }
  cr_expect_eq(bl__restart_step(&st, T0 + 20 * MS), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 21 * MS), 0);
  cr_expect_eq(bl__restart_step(&st, T0 + 22 * MS), BL_ERESTARTFREQ);
}

Test(restart, zero_max_is_off) {
  bl__restart_t st;
  bl__restart_init(&st, 0, 1000 * MS);
  for (uint64_t i = 0; i < 1000; i++) cr_expect_eq(bl__restart_step(&st, T0 + i), 0);
}

Test(restart, message_like_billiard) {
  bl__restart_t st;
  char buf[64];
  bl__restart_init(&st, 2, 10000 * MS);
  bl__restart_message(&st, 2, buf, sizeof buf);
  cr_expect_str_eq(buf, "2 in 10s");
  bl__restart_init(&st, 3, 500 * MS);
  bl__restart_message(&st, 3, buf, sizeof buf);
  cr_expect_str_eq(buf, "3 in 0.5s");
}
