/* test_cov_conn.c: Connection writes that do not fit at once: partial
 * writes resumed mid-iovec, and an fd a caller made non-blocking (the
 * blocking API waits instead of tearing a frame); wrapping bad fds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"

struct rd {
  bl_conn_t *c;
  size_t len;
  int ok;
};
static void *reader(void *arg) {
  struct rd *r = arg;
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL); /* let the writer fill the pipe first (not required) */
  void *buf = NULL;
  size_t len = 0;
  r->ok = bl_conn_recv_bytes(r->c, &buf, &len, 0) == 0 && len == r->len;
  for (size_t i = 0; r->ok && i < len; i++)
    if (((unsigned char *)buf)[i] != (unsigned char)i) r->ok = 0;
  free(buf);
  return NULL;
}

static void big_message(int nonblock) {
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  if (nonblock) cr_assert_eq(bl__set_nonblock(p[1], 1), 0);
  bl_conn_t *w = NULL, *r = NULL;
  cr_assert_eq(bl_conn_from_fd(&w, p[1], 0, 1), 0);
  cr_assert_eq(bl_conn_from_fd(&r, p[0], 1, 0), 0);
  size_t n = 1 << 20; /* sixteen pipe buffers */
  unsigned char *msg = malloc(n);
  for (size_t i = 0; i < n; i++) msg[i] = (unsigned char)i;
  struct rd rd = {r, n, 0};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, reader, &rd), 0);
  cr_expect_eq(bl_conn_send_bytes(w, msg, n, 0, n), 0);
  pthread_join(th, NULL);
  cr_expect(rd.ok, "the message arrived whole");
  free(msg);
  bl_conn_free(&w);
  bl_conn_free(&r);
}

Test(cov_conn, partial_writes_resume_mid_message) { big_message(0); }
Test(cov_conn, caller_made_fd_nonblocking_still_whole) { big_message(1); }

Test(cov_conn, wrapping_bad_fds) {
  bl_conn_t *c = NULL;
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  cr_expect_eq(bl_conn_from_fd(&c, p[0], 0, 0), -EINVAL, "neither direction");
  cr_expect_eq(fcntl(p[0], F_GETFD), -1, "closed on error too");
  cr_expect_eq(bl_conn_from_fd(&c, -1, 1, 0), -EINVAL);
  close(p[1]);
  cr_expect_eq(bl_conn_from_fd(&c, p[1], 1, 0), -EBADF, "fstat fails");
  cr_expect_null(c);
}
