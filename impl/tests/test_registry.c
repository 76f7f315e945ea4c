/* test_registry.c: named targets and tasks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <billiard/errors.h>
#include <billiard/task.h>

static int t1(const void *a, size_t n) { (void)a; return (int)n; }
static int t2(const void *a, size_t n) { (void)a; (void)n; return 2; }
static int k1(bl_task_ctx_t *c, const void *a, size_t n) { (void)c; (void)a; (void)n; return 0; }

Test(registry, register_and_lookup) {
  bl_target_fn f = NULL;
  cr_assert_eq(bl_register_target("reg.t1", t1), 0);
  cr_assert_eq(bl_lookup_target("reg.t1", &f), 0);
  cr_expect_eq(f("abc", 3), 3);
}

Test(registry, same_pair_twice_is_ok_other_fn_is_eexist) {
  cr_expect_eq(bl_register_target("reg.dup", t1), 0);
  cr_expect_eq(bl_register_target("reg.dup", t1), 0);
  cr_expect_eq(bl_register_target("reg.dup", t2), -EEXIST);
}

Test(registry, targets_and_tasks_are_separate_namespaces) {
  bl_task_fn k = NULL;
  bl_target_fn f = NULL;
  cr_assert_eq(bl_register_task("reg.both", k1), 0);
  cr_expect_eq(bl_lookup_target("reg.both", &f), BL_ENOTFOUND);
  cr_expect_eq(bl_lookup_task("reg.both", &k), 0);
  cr_expect_eq(k, k1);
}

Test(registry, bad_input) {
  bl_target_fn f;
  char longname[BL_TASK_NAME_MAX + 2];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  cr_expect_eq(bl_register_target(NULL, t1), -EINVAL);
  cr_expect_eq(bl_register_target("", t1), -EINVAL);
  cr_expect_eq(bl_register_target("x", NULL), -EINVAL);
  cr_expect_eq(bl_register_target(longname, t1), -ENAMETOOLONG);
  cr_expect_eq(bl_lookup_target("reg.none", &f), BL_ENOTFOUND);
  cr_expect_eq(bl_lookup_target("reg.none", NULL), -EINVAL);
}

Test(registry, many_names_grow_the_table) {
  char name[32];
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof name, "reg.many.%d", i);
    cr_assert_eq(bl_register_target(name, i % 2 ? t1 : t2), 0);
  }
  bl_target_fn f;
  cr_assert_eq(bl_lookup_target("reg.many.37", &f), 0);
  cr_expect_eq(f, t1);
}
