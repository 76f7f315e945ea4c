/* test_cov2_conn.c: Connection edge cases a well-behaved peer never
 * produces: a message torn inside its body by EOF, and a send to a pipe
 * whose reader is gone while SIGPIPE is already pending in the sending
 * thread (the library must not consume the caller's signal). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"

TestSuite(cov2_conn, .timeout = 60);

Test(cov2_conn, message_torn_inside_its_body) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  bl_conn_t *r = NULL;
  cr_assert_eq(bl_conn_from_fd(&r, p[0], 1, 0), 0);
  /* billiard's framing: a 4-byte big-endian length, then the bytes. */
  const unsigned char frame[] = {0, 0, 0, 10, 'a', 'b', 'c'};
  cr_assert_eq(bl__write_full(p[1], frame, sizeof frame), 0);
  close(p[1]);
  void *out = NULL;
  size_t len = 0;
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 0), BL_EPROTOCOL);
  cr_expect_null(out);
  bl_conn_free(&r);
}

Test(cov2_conn, epipe_with_sigpipe_already_pending) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  bl_conn_t *w = NULL;
  cr_assert_eq(bl_conn_from_fd(&w, p[1], 0, 1), 0);
  close(p[0]);
  sigset_t s, old, pending;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  cr_assert_eq(pthread_sigmask(SIG_BLOCK, &s, &old), 0);
  cr_assert_eq(pthread_kill(pthread_self(), SIGPIPE), 0);
  cr_expect_eq(bl_conn_send_bytes(w, "x", 1, 0, 1), -EPIPE);
  sigemptyset(&pending);
  sigpending(&pending);
  cr_expect(sigismember(&pending, SIGPIPE), "the caller's own SIGPIPE is still pending");
  const struct timespec zero = {0, 0};
  cr_expect_eq(sigtimedwait(&s, NULL, &zero), SIGPIPE);
  /* Not pending any more: the library takes back the one it raised. */
  cr_expect_eq(bl_conn_send_bytes(w, "x", 1, 0, 1), -EPIPE);
  sigemptyset(&pending);
  sigpending(&pending);
  cr_expect(!sigismember(&pending, SIGPIPE));
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  bl_conn_free(&w);
}
