/* test_cov2_worker.c: a pool worker against a misbehaving supervisor: its
 * loop (run in a test child on pipes we hold) given a frame of the wrong
 * kind or a malformed header leaves with 1 (the pool counts it lost), EOF
 * or STOP with 0; the spawn worker's boot argument, malformed, is refused
 * before anything is mapped. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "internal.h"
#include "poolint.h"
#include "poolwire.h"
#include "startmethod.h"

TestSuite(cov2_worker, .timeout = 60);

/* Run a worker loop on fresh pipes, feed it `frames`, close its task pipe
 * when `close_after`; its exit code. */
static int run_worker(const void *frames, size_t n) {
  int tp[2], rp[2];
  cr_assert_eq(bl__pipe(tp), 0);
  cr_assert_eq(bl__pipe(rp), 0);
  struct bl__wshm *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(shm, MAP_FAILED);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    close(tp[1]);
    close(rp[0]);
    struct bl__worker_cfg cfg = {.task_fd = tp[0], .res_fd = rp[1], .shm = shm};
    bl__worker_main(&cfg);
  }
  close(tp[0]);
  close(rp[1]);
  if (n) cr_assert_eq(bl__write_full(tp[1], frames, n), 0);
  close(tp[1]);
  int code = t_wait_exit(c);
  close(rp[0]);
  munmap(shm, sizeof *shm);
  return code;
}

Test(cov2_worker, frames_a_worker_must_not_get) {
  int fds = t_count_fds();
  bl__buf_t b = {0};
  cr_assert_eq(bl__pw_put_simple(&b, BL__PW_ACK, 1, 0), 0);
  cr_expect_eq(run_worker(b.p, b.len), 1, "an ACK sent to a worker");
  bl__pw_hdr_t h;
  memset(&h, 0, sizeof h);
  h.type = 99;
  cr_expect_eq(run_worker(&h, sizeof h), 1, "an unknown frame type");
  cr_expect_eq(run_worker(NULL, 0), 0, "EOF: the pool is gone");
  b.len = 0;
  cr_assert_eq(bl__pw_put_simple(&b, BL__PW_STOP, 0, 0), 0);
  cr_expect_eq(run_worker(b.p, b.len), 0);
  bl__buf_free(&b);
  cr_expect_eq(t_count_fds(), fds);
}

Test(cov2_worker, malformed_spawn_boot_arguments) {
  struct bl__worker_boot wb;
  memset(&wb, 0, sizeof wb);
  wb.shm_fd = -1;
  char buf[sizeof wb + 8];
  cr_expect_eq(bl__pool_worker_target(&wb, sizeof wb - 1), 1, "short");
  wb.init_len = BL_TASK_NAME_MAX + 1;
  memcpy(buf, &wb, sizeof wb);
  cr_expect_eq(bl__pool_worker_target(buf, sizeof buf), 1, "initializer name too long");
  wb.init_len = 2;
  wb.initarg_len = 5;
  memcpy(buf, &wb, sizeof wb);
  cr_expect_eq(bl__pool_worker_target(buf, sizeof buf), 1, "lengths disagree");
  wb.initarg_len = 6;
  memcpy(buf, &wb, sizeof wb);
  cr_expect_eq(bl__pool_worker_target(buf, sizeof buf), 1, "no shared page to map");
}

/* A signal without an abbreviation (a real-time one) still names the
 * loss: billiard prints whatever the signal module knows. */
Test(cov2_worker, worker_killed_by_a_realtime_signal) {
  t_register_pool_tasks();
  bl_pool_t *p = t_pool(1, 1);
  cr_assert_not_null(p);
  bl_result_t *r = NULL;
  int sig = SIGRTMIN + 2;
  cr_assert_eq(t_apply_int(p, "die", sig, NULL, &r), 0);
  bl_error_info_t err = {0};
  cr_assert_eq(bl_result_get(r, 30000, NULL, NULL, &err), BL_EWORKERLOST);
  char want[128];
  snprintf(want, sizeof want, "Worker exited prematurely: signal %d (SIGUNKNOWN) Job: %llu.",
           sig, (unsigned long long)bl_result_job_id(r));
  cr_expect_str_eq(err.message, want);
  bl_error_info_clear(&err);
  bl_result_free(&r);
  bl_pool_free(&p);
}

/* More workers than the worker table's first allocation (8). */
Test(cov2_worker, pool_of_nine_workers) {
  t_register_pool_tasks();
  bl_pool_t *p = t_pool(9, 1);
  cr_assert_not_null(p);
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 9);
  bl_result_t *r = NULL;
  int rc;
  cr_assert_eq(t_apply_int(p, "square", 3, NULL, &r), 0);
  cr_expect_eq(t_get_int(r, &rc), 9);
  bl_result_free(&r);
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}
