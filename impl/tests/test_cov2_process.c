/* test_cov2_process.c: Process objects used from a process that does not
 * own them (a fork child holding its parent's copies): start, join,
 * is_alive and add_handle are refused with BL_ESTATE as billiard refuses
 * them ("can only start/join/test a child process"), close and
 * active_children leave the parent's children alone. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"

static int tg_zero(const void *a, size_t n) {
  (void)a, (void)n;
  return 0;
}
/* Blocks until its argument's pipe (both fd numbers in arg: a fork child
 * has both ends) reaches EOF. */
static int tg_wait(const void *a, size_t n) {
  int fd[2];
  if (n != sizeof fd) return 2;
  memcpy(fd, a, sizeof fd);
  close(fd[1]);
  char c;
  while (read(fd[0], &c, 1) > 0) {
  }
  return 0;
}

static void setup(void) {
  cr_assert_eq(bl_register_target("cov2p/zero", tg_zero), 0);
  cr_assert_eq(bl_register_target("cov2p/wait", tg_wait), 0);
}
TestSuite(cov2_process, .init = setup, .timeout = 60);

Test(cov2_process, a_non_owner_cannot_start_join_or_test) {
  int pp[2];
  cr_assert_eq(bl__pipe(pp), 0);
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.term_grace_ms = 200;
  bl_process_t *fresh = NULL, *running = NULL;
  cr_assert_eq(bl_process_new(&fresh, "cov2p/zero", NULL, 0, &o), 0);
  cr_assert_eq(bl_process_new(&running, "cov2p/wait", pp, sizeof pp, &o), 0);
  cr_assert_eq(bl_process_start(running), 0);
  close(pp[0]);
  bl_lock_t *lk = NULL;
  cr_assert_eq(bl_lock_new(&lk), 0);

  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    close(pp[1]);
    int bad = 0;
    if (bl_process_start(fresh) != BL_ESTATE) bad |= 1;
    if (bl_process_join(running, 0) != BL_ESTATE) bad |= 2;
    if (bl_process_is_alive(running) != BL_ESTATE) bad |= 4;
    if (bl_process_add_handle(fresh, BL_HANDLE_LOCK, lk) != BL_ESTATE) bad |= 8;
    bl_process_info_t info[4];
    size_t n = 99;
    if (bl_active_children(info, 4, &n) != 0 || n != 0) bad |= 16;
    if (bl_process_close(running) != 0) bad |= 32; /* only our copy */
    t_exit(bad);
  }
  cr_expect_eq(t_wait_exit(c), 0);
  /* The owner still has its child, alive, until the pipe closes. */
  cr_expect_eq(bl_process_is_alive(running), 1);
  bl_process_info_t info[4];
  size_t n = 0;
  cr_expect_eq(bl_active_children(info, 4, &n), 0);
  cr_expect_eq(n, 1);
  close(pp[1]);
  cr_expect_eq(bl_process_join(running, 30000), 0);
  int code = -1;
  cr_expect_eq(bl_process_exitcode(running, &code), 0);
  cr_expect_eq(code, 0);
  bl_process_free(&running);
  bl_process_free(&fresh);
  bl_lock_free(&lk);
}
