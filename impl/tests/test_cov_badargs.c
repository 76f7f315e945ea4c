/* test_cov_badargs.c: argument checks test_badinput does not reach: a NULL
 * out pointer for every *_attach(), ring sizes out of range, pool entry
 * points with bad options or signals, Connection outputs, task results
 * without a context. Each is -EINVAL and changes nothing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "pool_tasks.h"

#define EINV(call) cr_expect_eq((call), -EINVAL, "%s", #call)

Test(cov_badargs, attach_needs_an_out_pointer) {
  EINV(bl_queue_attach(NULL, 0));
  EINV(bl_lock_attach(NULL, 0));
  EINV(bl_semaphore_attach(NULL, 0));
  EINV(bl_event_attach(NULL, 0));
  EINV(bl_condition_attach(NULL, 0));
  EINV(bl_barrier_attach(NULL, 0, NULL, NULL));
  EINV(bl_value_attach(NULL, 0));
}

Test(cov_badargs, queue_ring_size_bounds) {
  bl_queue_options_t o;
  bl_queue_options_init(&o);
  bl_queue_t *q = NULL;
  o.ring_bytes = 4095;
  EINV(bl_queue_new(&q, &o));
  o.ring_bytes = (size_t)(1ull << 32) + 8;
  EINV(bl_queue_new(&q, &o));
  cr_expect_null(q);
  o.ring_bytes = 4096; /* the smallest ring works */
  cr_assert_eq(bl_queue_new(&q, &o), 0);
  cr_expect_eq(bl_queue_put(q, "x", 1, 1000), 0);
  bl_queue_free(&q);
}

Test(cov_badargs, pool_entry_points) {
  t_register_pool_tasks();
  bl_pool_options_t po;
  bl_pool_options_init(&po);
  po.processes = 1;
  po.initarg_len = 4; /* without initarg */
  bl_pool_t *p = NULL;
  EINV(bl_pool_new(&p, &po));
  cr_expect_null(p);
  bl_result_t *r = NULL;
  EINV(bl_pool_map(NULL, "square", NULL, NULL, 0, NULL, NULL, NULL));
  EINV(bl_pool_terminate_job_pid(NULL, 1, 1, SIGTERM));
  p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.size = 1; /* as if _init were skipped */
  int32_t v = 2;
  const void *args[] = {&v};
  size_t lens[] = {sizeof v};
  EINV(bl_pool_map_async(p, "square", args, lens, 1, &ao, &r));
  bl_apply_options_init(&ao);
  ao.reserved[0] = 1;
  EINV(bl_pool_starmap_async(p, "square", args, lens, 1, &ao, &r));
  cr_expect_null(r);
  EINV(bl_pool_terminate_job_pid(p, 1, 1, -1));
  EINV(bl_pool_terminate_job_pid(p, 1, 1, NSIG));
  cr_assert_eq(t_apply_int(p, "square", 3, NULL, &r), 0);
  EINV(bl_pool_terminate_job(p, r, NSIG + 1));
  EINV(bl_pool_terminate_job(p, NULL, SIGTERM));
  int rc;
  cr_expect_eq(t_get_int(r, &rc), 9, "the pool still works");
  bl_result_free(&r);
  bl_pool_free(&p);
}

Test(cov_badargs, connection_outputs) {
  bl_conn_t *a = NULL, *b = NULL;
  cr_assert_eq(bl_pipe(&a, &b, 1), 0);
  void *out = NULL;
  size_t len = 0;
  char buf[4];
  EINV(bl_conn_send_bytes(a, NULL, 3, 0, 3));
  EINV(bl_conn_recv_bytes(b, NULL, &len, 0));
  EINV(bl_conn_recv_bytes(b, &out, NULL, 0));
  EINV(bl_conn_recv_bytes_into(NULL, buf, sizeof buf, 0, &len));
  EINV(bl_conn_recv_bytes_into(b, buf, sizeof buf, 0, NULL));
  EINV(bl_conn_recv_bytes_into(b, NULL, 4, 0, &len));
  EINV(bl_conn_take_pending(NULL, &out, &len));
  EINV(bl_conn_take_pending(b, NULL, &len));
  cr_expect_eq(bl_conn_send_bytes(a, NULL, 0, 0, 0), 0, "an empty message");
  cr_expect_eq(bl_conn_recv_bytes_into(b, NULL, 0, 0, &len), 0);
  cr_expect_eq(len, 0);
  bl_conn_free(&a);
  bl_conn_free(&b);
}

Test(cov_badargs, task_results_need_a_context) {
  EINV(bl_task_return(NULL, "x", 1));
  EINV(bl_task_fail(NULL, "T", "m", NULL));
}
