/* test_cov_shared.c: Value/Array conversions for every typecode (C
 * conversions, as ctypes does), range refusals, and NULL outputs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

#include <billiard/billiard.h>

Test(cov_shared, every_typecode_round_trips_integers_and_doubles) {
  const char *codes = "cbBhHiIlLqQufd";
  for (const char *tc = codes; *tc; tc++) {
    bl_value_t *v = NULL;
    cr_assert_eq(bl_value_new(&v, *tc, NULL), 0, "typecode %c", *tc);
    cr_expect_eq(bl_value_itemsize(v), (size_t)bl_typecode_size(*tc));
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    cr_expect_eq(bl_value_set_i64(v, 0, 65), 0, "%c", *tc);
    cr_expect_eq(bl_value_get_i64(v, 0, &i), 0);
    cr_expect_eq(i, 65, "%c", *tc);
    cr_expect_eq(bl_value_set_u64(v, 0, 66), 0);
    cr_expect_eq(bl_value_get_u64(v, 0, &u), 0);
    cr_expect_eq(u, 66, "%c", *tc);
    cr_expect_eq(bl_value_set_f64(v, 0, 67.0), 0);
    cr_expect_eq(bl_value_get_f64(v, 0, &d), 0);
    cr_expect(fabs(d - 67.0) < 1e-9, "%c: %g", *tc, d);
    cr_expect_eq(bl_value_set_f64(v, 0, -3.0), 0);
    cr_expect_eq(bl_value_get_f64(v, 0, &d), 0);
    cr_expect_eq(bl_value_get_i64(v, 1, &i), -ERANGE, "past the end");
    cr_expect_eq(bl_value_get_i64(v, 0, NULL), -EINVAL);
    cr_expect_eq(bl_value_get_u64(v, 0, NULL), -EINVAL);
    cr_expect_eq(bl_value_get_f64(v, 0, NULL), -EINVAL);
    bl_value_free(&v);
  }
}

Test(cov_shared, doubles_out_of_integer_range_are_refused) {
  bl_value_t *iv = NULL, *dv = NULL;
  cr_assert_eq(bl_value_new(&iv, 'q', NULL), 0);
  cr_assert_eq(bl_raw_value_new(&dv, 'd'), 0);
  cr_expect_eq(bl_value_set_f64(iv, 0, 1e30), -ERANGE);
  cr_expect_eq(bl_value_set_f64(iv, 0, NAN), -ERANGE);
  int64_t i;
  uint64_t u;
  cr_expect_eq(bl_value_set_f64(dv, 0, 1e30), 0);
  cr_expect_eq(bl_value_get_i64(dv, 0, &i), -ERANGE);
  cr_expect_eq(bl_value_get_u64(dv, 0, &u), -ERANGE);
  cr_expect_eq(bl_value_set_f64(dv, 0, -2.0), 0);
  cr_expect_eq(bl_value_get_u64(dv, 0, &u), -ERANGE, "negative to unsigned");
  cr_expect_eq(bl_value_set_f64(dv, 0, 42.5), 0);
  cr_expect_eq(bl_value_get_u64(dv, 0, &u), 0);
  cr_expect_eq(u, 42);
  cr_expect_eq(bl_value_set_u64(dv, 0, 7), 0);
  double d;
  cr_expect_eq(bl_value_get_f64(dv, 0, &d), 0);
  cr_expect_eq(d, 7.0);
  cr_expect_eq(bl_value_set_i64(NULL, 0, 1), -EINVAL);
  cr_expect_eq(bl_value_set_u64(NULL, 0, 1), -EINVAL);
  bl_value_free(&dv);
  bl_value_free(&iv);
}
