/* test_cov2_shm.c: the shared-segment layer on its own: a registry that
 * grows past its first allocation, fds that are not segments (a pipe, an
 * empty memfd, one of an odd size, one without the tag, one of another
 * kind), a mapping that fails after the dup, futex waits that return at
 * once, and owner liveness for ids that are gone, zombies or recycled. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "shm.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

TestSuite(cov2_shm, .timeout = 60);

#define KIND 0x7e57u

Test(cov2_shm, registry_grows_and_empties) {
  int fds = t_count_fds();
  enum { N = 40 };
  void *base[N];
  size_t len[N];
  for (int i = 0; i < N; i++) cr_assert_eq(bl__shm_map(100, KIND, &base[i], &len[i]), 0);
  for (int i = 0; i < N; i++) cr_expect_eq(bl__shm_fd_of(base[i], KIND), bl__shm_fd(base[i]));
  cr_expect_eq(bl__shm_fd_of(base[3], KIND + 1), -EINVAL, "another kind");
  int x;
  cr_expect_eq(bl__shm_fd_of(&x, KIND), -EINVAL, "not a segment");
  for (int i = 0; i < N; i++) bl__shm_unmap(base[i], len[i]);
  bl__shm_unmap(NULL, 0);
  cr_expect_eq(t_count_fds(), fds);
  cr_expect_eq(bl__shm_map(SIZE_MAX / 2 + 1, KIND, &base[0], &len[0]), -ENOMEM);
}

Test(cov2_shm, fds_that_are_not_segments_are_refused) {
  int fds = t_count_fds();
  bl__shm_tag_t tag;
  void *b = NULL;
  size_t l = 0;
  cr_expect_eq(bl__shm_peek(-1, &tag), -EBADF);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  cr_expect_eq(bl__shm_peek(p[0], &tag), -EINVAL, "a pipe");
  cr_expect_eq(bl__shm_attach(p[0], KIND, &b, &l), -EINVAL);
  close(p[0]);
  close(p[1]);
  int m = memfd_create("cov2", MFD_CLOEXEC);
  cr_assert_geq(m, 0);
  cr_expect_eq(bl__shm_peek(m, &tag), -EINVAL, "empty");
  cr_assert_eq(ftruncate(m, 100), 0);
  cr_expect_eq(bl__shm_peek(m, &tag), -EINVAL, "not whole pages");
  cr_assert_eq(ftruncate(m, (off_t)bl__shm_round(1)), 0);
  cr_expect_eq(bl__shm_peek(m, &tag), -EINVAL, "no tag");
  close(m);
  /* A real segment of another kind. */
  void *base;
  size_t len;
  cr_assert_eq(bl__shm_map(10, KIND, &base, &len), 0);
  int fd = bl__shm_fd(base);
  cr_expect_eq(bl__shm_attach(fd, KIND + 1, &b, &l), -EINVAL);
  cr_assert_eq(bl__shm_attach(fd, KIND, &b, &l), 0);
  cr_expect_eq(l, len);
  bl__shm_unmap(b, l);
  bl__shm_unmap(base, len);
  cr_expect_eq(t_count_fds(), fds);
}

Test(cov2_shm, attach_whose_mapping_fails_keeps_no_fd) {
#ifndef FIU_ENABLE
  cr_skip_test("fault points need -Dfault_injection=true");
#else
  fiu_init(0);
  void *base, *b = NULL;
  size_t len, l = 0;
  cr_assert_eq(bl__shm_map(10, KIND, &base, &len), 0);
  int fds = t_count_fds();
  fiu_enable("shm/map/mmap", 1, (void *)(intptr_t)EAGAIN, FIU_ONETIME);
  cr_expect_eq(bl__shm_attach(bl__shm_fd(base), KIND, &b, &l), -EAGAIN);
  cr_expect_eq(t_count_fds(), fds);
  bl__shm_unmap(base, len);
#endif
}

Test(cov2_shm, futex_waits_that_return_at_once) {
  uint32_t w = 1;
  cr_expect_eq(bl__futex_wait(&w, 2, -1), 0, "value already changed");
  cr_expect_eq(bl__futex_wait(&w, 1, 0), -ETIMEDOUT);
  cr_expect_eq(bl__futex_wait(&w, 1, 1000), -ETIMEDOUT);
  bl__futex_wake(&w, 1);
}

Test(cov2_shm, liveness_of_gone_zombie_and_recycled_owners) {
  uint64_t me = bl__self_process();
  cr_expect_eq(bl__who_alive(me), 1);
  cr_expect_eq(bl__who_alive(0), 0);
  cr_expect_eq(bl__who_alive(me ^ (UINT64_C(1) << 40)), 0, "same id, another start time");
  cr_expect_eq(bl__who_alive(me & 0xffffffffu), 1, "no start time recorded");
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) t_exit(0);
  /* Exited but not reaped: a zombie counts as dead. */
  siginfo_t si;
  cr_assert_eq(waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT), 0);
  cr_expect_eq(bl__who_alive((uint64_t)(uint32_t)c), 0);
  cr_expect_eq(t_wait_exit(c), 0);
  cr_expect_eq(bl__who_alive((uint64_t)(uint32_t)c), 0, "gone");
}
