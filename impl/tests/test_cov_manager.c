/* test_cov_manager.c: every proxy entry point refuses a NULL proxy, a
 * proxy of another kind and missing arguments with -EINVAL, before any
 * request reaches the server (which stays usable afterwards). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include <billiard/billiard.h>

#include "helpers.h"

static bl_manager_t *m;
static void start(void) {
  cr_assert_eq(bl_manager_new(&m, NULL), 0);
  cr_assert_eq(bl_manager_start(m), 0);
}
static void stop(void) {
  if (m) (void)bl_manager_shutdown(m);
  bl_manager_free(&m);
}
TestSuite(cov_manager, .init = start, .fini = stop, .timeout = 60);

#define EINV(call) cr_expect_eq((call), -EINVAL, "%s", #call)

Test(cov_manager, proxies_refuse_wrong_kinds_and_missing_arguments) {
  bl_proxy_t *d = NULL, *l = NULL;
  cr_assert_eq(bl_manager_dict(m, &d), 0);
  cr_assert_eq(bl_manager_list(m, &l), 0);
  void *v = NULL;
  size_t n = 0;
  int a, b, c;
  /* x is a proxy of the wrong kind for each family. */
  bl_proxy_t *fams[2] = {NULL, l};
  for (int i = 0; i < 2; i++) {
    bl_proxy_t *x = fams[i];
    EINV(bl_dict_set(x, "k", "v", 1));
    EINV(bl_dict_get(x, "k", &v, &n));
    EINV(bl_dict_del(x, "k"));
    EINV(bl_dict_len(x, &n));
    EINV(bl_namespace_set(x, "a", "v", 1));
    EINV(bl_namespace_get(x, "a", &v, &n));
    EINV(bl_mqueue_put(x, "v", 1));
    EINV(bl_mqueue_get(x, &v, &n, 0));
    EINV(bl_mqueue_size(x, &n));
    EINV(bl_mqueue_task_done(x));
    EINV(bl_mqueue_join(x, 0));
    EINV(bl_mlock_acquire(x, 0));
    EINV(bl_mlock_release(x));
    EINV(bl_macquire(x, 0));
    EINV(bl_mrelease(x));
    EINV(bl_mevent_set(x));
    EINV(bl_mevent_clear(x));
    EINV(bl_mevent_is_set(x));
    EINV(bl_mevent_wait(x, 0));
    EINV(bl_mvalue_set(x, "v", 1));
    EINV(bl_mvalue_get(x, &v, &n));
    EINV(bl_mcond_wait(x, 0));
    EINV(bl_mcond_notify(x, 1));
    EINV(bl_mbarrier_wait(x, 0));
    EINV(bl_mbarrier_abort(x));
    EINV(bl_mbarrier_reset(x));
    EINV(bl_mbarrier_info(x, &a, &b, &c));
    EINV(bl_marray_get(x, 0, &v, &n));
    EINV(bl_marray_set(x, 0, "v", 1));
    EINV(bl_marray_len(x, &n));
  }
  bl_proxy_t *y = d; /* the wrong kind for the list family */
  for (int i = 0; i < 2; i++, y = NULL) {
    EINV(bl_list_append(y, "v", 1));
    EINV(bl_list_get(y, 0, &v, &n));
    EINV(bl_list_set(y, 0, "v", 1));
    EINV(bl_list_len(y, &n));
  }
  /* Right kind, missing arguments. */
  EINV(bl_dict_set(d, NULL, "v", 1));
  EINV(bl_dict_set(d, "k", NULL, 1));
  EINV(bl_dict_get(d, NULL, &v, &n));
  EINV(bl_dict_del(d, NULL));
  EINV(bl_dict_len(d, NULL));
  EINV(bl_list_append(l, NULL, 1));
  EINV(bl_list_set(l, 0, NULL, 1));
  EINV(bl_list_len(l, NULL));
  /* Creating objects: no manager or no out pointer. */
  bl_proxy_t *p = NULL;
  EINV(bl_manager_dict(NULL, &p));
  EINV(bl_manager_list(m, NULL));
  EINV(bl_manager_namespace(NULL, &p));
  EINV(bl_manager_queue(NULL, &p));
  EINV(bl_manager_joinable_queue(NULL, &p));
  EINV(bl_manager_lock(NULL, &p));
  EINV(bl_manager_rlock(NULL, &p));
  EINV(bl_manager_event(NULL, &p));
  EINV(bl_manager_condition(NULL, &p));
  EINV(bl_manager_semaphore(NULL, &p, 1));
  EINV(bl_manager_bounded_semaphore(m, NULL, 1));
  EINV(bl_manager_barrier(NULL, &p, 2, 0));
  EINV(bl_manager_array(NULL, &p, 2, "x", 1));
  EINV(bl_manager_value(NULL, &p, "x", 1));
  EINV(bl_proxy_attach(NULL, 1, &p));
  cr_expect_null(p);
  /* The server is unaffected. */
  cr_expect_eq(bl_dict_set(d, "k", "v", 1), 0);
  cr_expect_eq(bl_dict_len(d, &n), 0);
  cr_expect_eq(n, 1);
  bl_proxy_free(&l);
  bl_proxy_free(&d);
}

/* Each object's own argument checks with a proxy of the right kind. */
Test(cov_manager, objects_refuse_missing_arguments) {
  bl_proxy_t *ns = NULL, *q = NULL, *val = NULL, *arr = NULL, *bar = NULL;
  cr_assert_eq(bl_manager_namespace(m, &ns), 0);
  cr_assert_eq(bl_manager_queue(m, &q), 0);
  cr_assert_eq(bl_manager_value(m, &val, "x", 1), 0);
  cr_assert_eq(bl_manager_array(m, &arr, 2, "xy", 2), 0);
  cr_assert_eq(bl_manager_barrier(m, &bar, 2, BL_MANAGER_BARRIER_DEFAULT), 0);
  void *v = NULL;
  size_t n = 0;
  EINV(bl_namespace_set(ns, NULL, "v", 1));
  EINV(bl_namespace_set(ns, "", "v", 1));
  EINV(bl_namespace_set(ns, "a", NULL, 1));
  EINV(bl_namespace_get(ns, NULL, &v, &n));
  EINV(bl_mqueue_put(q, NULL, 1));
  EINV(bl_mqueue_size(q, NULL));
  EINV(bl_mvalue_set(val, NULL, 1));
  EINV(bl_marray_set(arr, 0, NULL, 1));
  EINV(bl_marray_len(arr, NULL));
  cr_expect_eq(bl_marray_len(arr, &n), 0);
  cr_expect_eq(n, 2);
  bl_proxy_free(&bar);
  bl_proxy_free(&arr);
  bl_proxy_free(&val);
  bl_proxy_free(&q);
  bl_proxy_free(&ns);
}
