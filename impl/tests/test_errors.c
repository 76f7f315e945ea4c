/* test_errors.c: the error table, names, messages, exception names. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <billiard/billiard.h>

#include "internal.h"

struct row { int code; const char *name, *exc, *msg; };
static const struct row rows[] = {
#define BL__X(name, val, exc, msg) {val, "BL_E" #name, exc, msg},
    BL_ERROR_MAP(BL__X)
#undef BL__X
};

Test(errors, every_entry_has_name_exception_and_message) {
  for (size_t i = 0; i < BL__ARRAY_SIZE(rows); i++) {
    cr_expect_str_eq(bl_err_name(rows[i].code), rows[i].name);
    cr_expect_str_eq(bl_err_exception(rows[i].code), rows[i].exc);
    cr_expect_str_eq(bl_strerror(rows[i].code), rows[i].msg);
    cr_expect(bl_err_is_billiard(rows[i].code), "%s", rows[i].name);
  }
}

Test(errors, codes_are_unique_and_below_errno_space) {
  for (size_t i = 0; i < BL__ARRAY_SIZE(rows); i++) {
    cr_expect_lt(rows[i].code, -4095, "%s collides with errno space", rows[i].name);
    cr_expect_geq(rows[i].code, BL_ERROR_LAST);
    cr_expect_leq(rows[i].code, BL_ERROR_FIRST);
    for (size_t j = i + 1; j < BL__ARRAY_SIZE(rows); j++)
      cr_expect_neq(rows[i].code, rows[j].code);
  }
}

Test(errors, billiard_exception_names) {
  cr_expect_str_eq(bl_err_exception(BL_EWORKERLOST), "WorkerLostError");
  cr_expect_str_eq(bl_err_exception(BL_ERESTARTFREQ), "RestartFreqExceeded");
  cr_expect_str_eq(bl_err_exception(BL_ETIMELIMIT), "TimeLimitExceeded");
  cr_expect_str_eq(bl_err_exception(BL_ESOFTTIMELIMIT), "SoftTimeLimitExceeded");
  cr_expect_str_eq(bl_err_exception(BL_ETERMINATED), "Terminated");
  cr_expect_str_eq(bl_err_exception(BL_EBUFTOOSHORT), "BufferTooShort");
  cr_expect_str_eq(bl_err_exception(BL_EAUTH), "AuthenticationError");
  cr_expect_str_eq(bl_err_exception(BL_ETIMEOUT), "TimeoutError");
  cr_expect_str_eq(bl_err_exception(BL_EPROCESS), "ProcessError");
}

Test(errors, os_codes_map_to_errno) {
  cr_expect_str_eq(bl_strerror(-EPIPE), strerror(EPIPE));
  cr_expect_str_eq(bl_err_name(-EPIPE), "EPIPE");
  cr_expect_str_eq(bl_err_exception(-EPIPE), "BrokenPipeError");
  cr_expect_str_eq(bl_err_exception(-EIO), "OSError");
  cr_expect(!bl_err_is_billiard(-EPIPE));
  cr_expect_str_eq(bl_err_name(0), "OK");
}

Test(errors, unknown_codes_are_safe) {
  cr_expect_str_eq(bl_strerror(-99999), "unknown error");
  cr_expect_str_eq(bl_err_name(-99999), "UNKNOWN");
  cr_expect_str_eq(bl_strerror(12345), "unknown error");
  cr_expect_not_null(bl_err_exception(-99999));
}

Test(errors, info_carries_task_error_text) {
  bl_error_info_t info = {0};
  cr_assert_eq(bl_error_info_set(&info, BL_ETASK, "KeyError", "'x'", "Traceback:\n  f()"), 0);
  cr_expect_str_eq(bl_error_info_type(&info), "KeyError");
  cr_expect_str_eq(info.message, "'x'");
  cr_expect_str_eq(info.traceback, "Traceback:\n  f()");
  /* Setting again replaces (and frees) the old strings. */
  cr_assert_eq(bl_error_info_set(&info, BL_EWORKERLOST, NULL, "gone", NULL), 0);
  cr_expect_str_eq(bl_error_info_type(&info), "WorkerLostError");
  cr_expect_null(info.traceback);
  bl_error_info_clear(&info);
  cr_expect_null(info.message);
  cr_expect_eq(info.code, 0);
  bl_error_info_clear(&info); /* idempotent */
  bl_error_info_clear(NULL);
  cr_expect_eq(bl_error_info_set(NULL, 0, NULL, NULL, NULL), -EINVAL);
}

Test(errors, version_string) {
  cr_expect_str_eq(bl_version(), "0.1.0");
}
