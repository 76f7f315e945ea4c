/* test_connection.c: Pipe/Connection framing, errors and concurrency. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <billiard/connection.h>
#include <billiard/errors.h>

#include "helpers.h"
#include "internal.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

static void pair(bl_conn_t **a, bl_conn_t **b, int duplex) {
  cr_assert_eq(bl_pipe(a, b, duplex), 0);
  cr_assert_not_null(*a);
  cr_assert_not_null(*b);
}

static void expect_msg(bl_conn_t *c, const char *want, size_t n) {
  void *out = NULL;
  size_t len = 0;
  cr_assert_eq(bl_conn_recv_bytes(c, &out, &len, 0), 0);
  cr_expect_eq(len, n);
  if (len == n && n) cr_expect_eq(memcmp(out, want, n), 0);
  free(out);
}

/* Write raw bytes on a connection's fd, bypassing framing. */
static void raw(bl_conn_t *c, const void *b, size_t n) {
  cr_assert_eq(bl__write_full(bl_conn_fileno(c), b, n), 0);
}

Test(connection, duplex_roundtrip_both_ways_and_empty_message) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  cr_expect(bl_conn_readable(a) && bl_conn_writable(a));
  cr_expect(bl_conn_readable(b) && bl_conn_writable(b));
  cr_assert_eq(bl_conn_send_bytes(a, "ping", 4, 0, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(a, "", 0, 0, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(b, "pong!", 5, 0, BL_CONN_REST), 0);
  expect_msg(b, "ping", 4);
  void *out = NULL;
  size_t len = 99;
  cr_assert_eq(bl_conn_recv_bytes(b, &out, &len, 0), 0);
  cr_expect_eq(len, 0);
  cr_expect_not_null(out, "an empty message still yields a buffer");
  free(out);
  expect_msg(a, "pong!", 5);
  bl_conn_free(&a);
  bl_conn_free(&b);
  cr_expect_null(a);
  bl_conn_free(&a); /* NULL-safe */
}

Test(connection, simplex_is_reader_writer_and_wrong_direction_is_ebadf) {
  bl_conn_t *r, *w;
  pair(&r, &w, 0);
  cr_expect(bl_conn_readable(r) && !bl_conn_writable(r));
  cr_expect(!bl_conn_readable(w) && bl_conn_writable(w));
  /* billiard: OSError("connection is read-only") / ("... write-only"). */
  cr_expect_eq(bl_conn_send_bytes(r, "x", 1, 0, BL_CONN_REST), -EBADF);
  void *out;
  size_t len;
  char buf[4];
  cr_expect_eq(bl_conn_recv_bytes(w, &out, &len, 0), -EBADF);
  cr_expect_eq(bl_conn_recv_bytes_into(w, buf, sizeof buf, 0, &len), -EBADF);
  cr_expect_eq(bl_conn_poll(w, 0), -EBADF);
  cr_expect_str_eq(bl_err_exception(-EBADF), "OSError");
  cr_assert_eq(bl_conn_send_bytes(w, "abc", 3, 0, BL_CONN_REST), 0);
  expect_msg(r, "abc", 3);
  bl_conn_free(&r);
  bl_conn_free(&w);
}

Test(connection, send_offset_and_size_select_a_slice) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  const char *s = "0123456789";
  cr_assert_eq(bl_conn_send_bytes(a, s, 10, 3, 4), 0);
  cr_assert_eq(bl_conn_send_bytes(a, s, 10, 7, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(a, s, 10, 10, BL_CONN_REST), 0);
  expect_msg(b, "3456", 4);
  expect_msg(b, "789", 3);
  expect_msg(b, "", 0);
  /* billiard: "buffer length < offset", "buffer length < offset + size". */
  cr_expect_eq(bl_conn_send_bytes(a, s, 10, 11, BL_CONN_REST), -EINVAL);
  cr_expect_eq(bl_conn_send_bytes(a, s, 10, 5, 6), -EINVAL);
  cr_expect_eq(bl_conn_send_bytes(a, s, 10, 1, SIZE_MAX - 1), -EINVAL);
  cr_expect_eq(bl_conn_send_bytes(a, NULL, 3, 0, BL_CONN_REST), -EINVAL);
  cr_expect_eq(bl_conn_poll(b, 0), 0, "rejected sends wrote nothing");
  bl_conn_free(&a);
  bl_conn_free(&b);
}

Test(connection, closed_handle_is_eclosed_and_close_is_idempotent) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  int fd = bl_conn_fileno(a);
  cr_expect_geq(fd, 0);
  cr_expect_eq(bl_conn_close(a), 0);
  cr_expect_eq(bl_conn_close(a), 0);
  cr_expect(bl_conn_closed(a));
  cr_expect_eq(bl_conn_fileno(a), BL_ECLOSED);
  void *out;
  size_t len;
  cr_expect_eq(bl_conn_send_bytes(a, "x", 1, 0, BL_CONN_REST), BL_ECLOSED);
  cr_expect_eq(bl_conn_recv_bytes(a, &out, &len, 0), BL_ECLOSED);
  cr_expect_eq(bl_conn_poll(a, 0), BL_ECLOSED);
  cr_expect_str_eq(bl_err_exception(BL_ECLOSED), "OSError");
  bl_conn_free(&a);
  bl_conn_free(&b);
}

Test(connection, peer_close_gives_eof_and_poll_reports_it) {
  for (int duplex = 0; duplex < 2; duplex++) {
    bl_conn_t *a, *b;
    pair(&a, &b, duplex);
    cr_assert_eq(bl_conn_send_bytes(b, "last", 4, 0, BL_CONN_REST), 0);
    bl_conn_free(&b);
    expect_msg(a, "last", 4);
    cr_expect_eq(bl_conn_poll(a, 0), 1, "EOF is readable, as in billiard");
    void *out;
    size_t len;
    cr_expect_eq(bl_conn_recv_bytes(a, &out, &len, 0), BL_EEOF);
    cr_expect_eq(bl_conn_recv_bytes(a, &out, &len, 0), BL_EEOF);
    cr_expect(!bl_conn_closed(a), "EOF does not close the handle");
    cr_expect_str_eq(bl_err_exception(BL_EEOF), "EOFError");
    bl_conn_free(&a);
  }
}

Test(connection, send_to_closed_reader_is_epipe_without_sigpipe) {
  /* SIGPIPE at its default (terminate): a raised one would kill the test. */
  signal(SIGPIPE, SIG_DFL);
  for (int duplex = 0; duplex < 2; duplex++) {
    bl_conn_t *a, *b;
    pair(&a, &b, duplex);
    bl_conn_free(&a);
    cr_expect_eq(bl_conn_send_bytes(b, "x", 1, 0, BL_CONN_REST), -EPIPE,
                 "duplex=%d", duplex);
    cr_expect_eq(bl_conn_send_bytes(b, "y", 1, 0, BL_CONN_REST), -EPIPE);
    sigset_t pend;
    sigpending(&pend);
    cr_expect(!sigismember(&pend, SIGPIPE), "no SIGPIPE left pending");
    bl_conn_free(&b);
  }
}

Test(connection, buffer_too_short_keeps_the_message) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  cr_assert_eq(bl_conn_send_bytes(a, "0123456789", 10, 0, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(a, "next", 4, 0, BL_CONN_REST), 0);
  char small[8];
  size_t len = 0;
  cr_expect_eq(bl_conn_recv_bytes_into(b, small, sizeof small, 0, &len), BL_EBUFTOOSHORT);
  cr_expect_eq(len, 10, "the caller learns the size needed");
  cr_expect_str_eq(bl_err_exception(BL_EBUFTOOSHORT), "BufferTooShort");
  cr_expect_eq(bl_conn_poll(b, 0), 1);
  /* Still too short: still pending, nothing lost. */
  cr_expect_eq(bl_conn_recv_bytes_into(b, small, sizeof small, 0, &len), BL_EBUFTOOSHORT);
  void *out = NULL;
  cr_assert_eq(bl_conn_take_pending(b, &out, &len), 0);
  cr_expect_eq(len, 10);
  cr_expect_eq(memcmp(out, "0123456789", 10), 0);
  free(out);
  cr_expect_eq(bl_conn_take_pending(b, &out, &len), -ENOMSG);
  /* The stream continues with the next message. */
  cr_assert_eq(bl_conn_recv_bytes_into(b, small, sizeof small, 2, &len), 0);
  cr_expect_eq(len, 4);
  cr_expect_eq(memcmp(small + 2, "next", 4), 0);
  bl_conn_free(&a);
  bl_conn_free(&b);
}

Test(connection, pending_message_is_returned_by_the_next_receive) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  cr_assert_eq(bl_conn_send_bytes(a, "abcdef", 6, 0, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(a, "gh", 2, 0, BL_CONN_REST), 0);
  char buf[8];
  size_t len;
  cr_expect_eq(bl_conn_recv_bytes_into(b, buf, sizeof buf, 4, &len), BL_EBUFTOOSHORT);
  /* Offset past the buffer: billiard's "offset too large". */
  cr_expect_eq(bl_conn_recv_bytes_into(b, buf, sizeof buf, 9, &len), -EINVAL);
  cr_assert_eq(bl_conn_recv_bytes_into(b, buf, sizeof buf, 1, &len), 0);
  cr_expect_eq(len, 6);
  cr_expect_eq(memcmp(buf + 1, "abcdef", 6), 0);
  cr_assert_eq(bl_conn_send_bytes(a, "zzzzzzzzz", 9, 0, BL_CONN_REST), 0);
  /* "gh" is next in the stream: too long for 1 byte, it becomes pending
   * and recv_bytes returns it before the later message. */
  cr_expect_eq(bl_conn_recv_bytes_into(b, buf, 1, 0, &len), BL_EBUFTOOSHORT);
  cr_expect_eq(len, 2);
  expect_msg(b, "gh", 2);
  expect_msg(b, "zzzzzzzzz", 9);
  bl_conn_free(&a);
  bl_conn_free(&b);
}

Test(connection, maxlength_exceeded_is_bad_message_length) {
  /* Duplex: billiard makes the end write-only and raises OSError. */
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  cr_assert_eq(bl_conn_send_bytes(a, "123456", 6, 0, BL_CONN_REST), 0);
  void *out;
  size_t len;
  cr_expect_eq(bl_conn_recv_bytes(b, &out, &len, 5), BL_EPROTOCOL);
  cr_expect(!bl_conn_readable(b) && bl_conn_writable(b) && !bl_conn_closed(b));
  cr_expect_eq(bl_conn_recv_bytes(b, &out, &len, 0), -EBADF);
  cr_expect_eq(bl_conn_send_bytes(b, "ok", 2, 0, BL_CONN_REST), 0);
  expect_msg(a, "ok", 2);
  bl_conn_free(&a);
  bl_conn_free(&b);
  /* Read-only end: closed. An exact fit is accepted. */
  bl_conn_t *r, *w;
  pair(&r, &w, 0);
  cr_assert_eq(bl_conn_send_bytes(w, "12345", 5, 0, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(w, "123456", 6, 0, BL_CONN_REST), 0);
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 5), 0);
  free(out);
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 5), BL_EPROTOCOL);
  cr_expect(bl_conn_closed(r));
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 0), BL_ECLOSED);
  bl_conn_free(&r);
  bl_conn_free(&w);
}

Test(connection, hand_crafted_bad_frames_are_protocol_errors) {
  void *out;
  size_t len;
  char buf[16];
  /* A negative length other than the -1 escape. */
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  raw(a, "\x80\x00\x00\x01", 4);
  cr_expect_eq(bl_conn_recv_bytes(b, &out, &len, 0), BL_EPROTOCOL);
  cr_expect(!bl_conn_readable(b));
  bl_conn_free(&a);
  bl_conn_free(&b);
  /* An 8-byte length beyond the 1 TiB sanity cap: no allocation tried. */
  pair(&a, &b, 1);
  raw(a, "\xff\xff\xff\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 12);
  cr_expect_eq(bl_conn_recv_bytes(b, &out, &len, 0), BL_EPROTOCOL);
  bl_conn_free(&a);
  bl_conn_free(&b);
  /* Truncated header, then EOF. */
  pair(&a, &b, 1);
  raw(a, "\x00\x00", 2);
  bl_conn_free(&a);
  cr_expect_eq(bl_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len), BL_EPROTOCOL);
  bl_conn_free(&b);
  /* Truncated payload (10 announced, 3 sent), then EOF. */
  pair(&a, &b, 0);
  raw(b, "\x00\x00\x00\x0a" "abc", 7);
  bl_conn_free(&b);
  cr_expect_eq(bl_conn_recv_bytes(a, &out, &len, 0), BL_EPROTOCOL);
  cr_expect(bl_conn_closed(a), "a read-only end is closed after a bad frame");
  bl_conn_free(&a);
  /* A big forged length with a short payload: allocation stays bounded and
   * the truncation is reported (valgrind/ASan check no over-read). */
  pair(&a, &b, 1);
  raw(a, "\xff\xff\xff\xff\x00\x00\x00\x01\x00\x00\x00\x00" "xyz", 15);
  bl_conn_free(&a);
  cr_expect_eq(bl_conn_recv_bytes(b, &out, &len, 0), BL_EPROTOCOL);
  bl_conn_free(&b);
}

Test(connection, poll_timeouts_zero_finite_and_infinite) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  cr_expect_eq(bl_conn_poll(b, 0), 0);
  uint64_t t0 = t_now_ms();
  cr_expect_eq(bl_conn_poll(b, 60), 0);
  cr_expect_geq(t_now_ms() - t0, 55, "a finite poll waits its timeout");
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    bl_conn_close(b);
    /* Wait for the parent's go, so the parent is already blocked. */
    void *out;
    size_t len;
    int rc = bl_conn_recv_bytes(a, &out, &len, 0);
    if (rc == 0) free(out);
    t_exit(rc == 0 && bl_conn_send_bytes(a, "hi", 2, 0, BL_CONN_REST) == 0 ? 0 : 1);
  }
  cr_assert_eq(bl_conn_send_bytes(b, "go", 2, 0, BL_CONN_REST), 0);
  cr_expect_eq(bl_conn_poll(b, -1), 1);
  cr_expect_eq(bl_conn_poll(b, 0), 1, "poll does not consume");
  expect_msg(b, "hi", 2);
  cr_expect_eq(t_wait_exit(pid), 0);
  bl_conn_free(&a);
  bl_conn_free(&b);
}

#define BIG ((size_t)64 << 20)
static void fill(unsigned char *p, size_t n, unsigned seed) {
  uint32_t x = seed;
  for (size_t i = 0; i < n; i += 4096) {
    x = x * 1103515245u + 12345u;
    size_t k = n - i < 4096 ? n - i : 4096;
    memset(p + i, (int)(x >> 16), k);
    p[i] = (unsigned char)i; /* vary within the page too */
  }
}

Test(connection, message_of_64_mib_between_processes, .timeout = 120) {
  for (int duplex = 0; duplex < 2; duplex++) {
    bl_conn_t *r, *w;
    pair(&r, &w, duplex);
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      bl_conn_close(r);
      unsigned char *p = malloc(BIG);
      if (!p) t_exit(2);
      fill(p, BIG, 7);
      int rc = bl_conn_send_bytes(w, p, BIG, 0, BL_CONN_REST);
      free(p);
      bl_conn_free(&r);
      bl_conn_free(&w);
      t_exit(rc == 0 ? 0 : 1);
    }
    bl_conn_close(w);
    unsigned char *want = malloc(BIG);
    cr_assert_not_null(want);
    fill(want, BIG, 7);
    void *out = NULL;
    size_t len = 0;
    if (duplex) {
      cr_assert_eq(bl_conn_recv_bytes(r, &out, &len, 0), 0);
    } else {
      out = malloc(BIG);
      cr_assert_eq(bl_conn_recv_bytes_into(r, out, BIG, 0, &len), 0);
    }
    cr_expect_eq(len, BIG);
    cr_expect_eq(memcmp(out, want, BIG), 0, "64 MiB arrive intact (duplex=%d)", duplex);
    free(out);
    free(want);
    cr_expect_eq(t_wait_exit(pid), 0);
    bl_conn_free(&r);
    bl_conn_free(&w);
  }
}

/* ---- threads ---- */

struct sender {
  bl_conn_t *c;
  int id, count;
  atomic_int *ready;
};

static size_t msg_size(int id, int i) {
  /* Mix small (atomic on pipes) and large (> PIPE_BUF, > pipe buffer). */
  return (size_t)((i * 7919 + id * 104729) % 200000) + 1;
}

static void *send_many(void *arg) {
  struct sender *s = arg;
  unsigned char *buf = malloc(200001);
  for (int i = 0; i < s->count; i++) {
    size_t n = msg_size(s->id, i);
    memset(buf, s->id, n);
    buf[0] = (unsigned char)i;
    if (bl_conn_send_bytes(s->c, buf, n, 0, BL_CONN_REST) != 0) break;
  }
  free(buf);
  return NULL;
}

Test(connection, threads_sending_concurrently_never_interleave, .timeout = 120) {
  enum { NT = 4 };
  int per = t_under_valgrind() ? 20 : 150;
  for (int duplex = 0; duplex < 2; duplex++) {
    bl_conn_t *r, *w;
    pair(&r, &w, duplex);
    pthread_t th[NT];
    struct sender s[NT];
    for (int t = 0; t < NT; t++) {
      s[t] = (struct sender){.c = w, .id = t + 1, .count = per};
      cr_assert_eq(pthread_create(&th[t], NULL, send_many, &s[t]), 0);
    }
    int next[NT] = {0};
    for (int k = 0; k < NT * per; k++) {
      void *out;
      size_t len;
      cr_assert_eq(bl_conn_recv_bytes(r, &out, &len, 0), 0);
      unsigned char *m = out;
      int id = m[len - 1];
      cr_assert(id >= 1 && id <= NT, "bad sender id %d", id);
      int i = next[id - 1]++;
      cr_assert_eq(len, msg_size(id, i), "message %d of sender %d has wrong size", i, id);
      cr_assert_eq(m[0], (unsigned char)i, "messages of one sender arrive in order");
      for (size_t j = 1; j < len; j++)
        if (m[j] != id) cr_assert_fail("interleaved bytes in message %d of %d", i, id);
      free(out);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    cr_expect_eq(bl_conn_poll(r, 0), 0);
    bl_conn_free(&r);
    bl_conn_free(&w);
  }
}

/* ---- EINTR ---- */

static atomic_int alarms;
static void on_alarm(int sig) {
  (void)sig;
  atomic_fetch_add(&alarms, 1);
}

static void *late_sender(void *arg) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &s, NULL); /* the receiver takes the signals */
  while (atomic_load(&alarms) < 5) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL); /* wait for an event we cannot block on */
  }
  size_t n = 4 << 20;
  unsigned char *p = malloc(n);
  memset(p, 0x5a, n);
  intptr_t rc = bl_conn_send_bytes(arg, p, n, 0, BL_CONN_REST);
  free(p);
  return (void *)rc;
}

Test(connection, receive_survives_signals_without_sa_restart) {
  struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
  /* Every 2 ms; 50 ms under valgrind, whose slow signal delivery would
   * otherwise starve the reader (a livelock, not a libbilliard bug). */
  long us = t_under_valgrind() ? 50000 : 2000;
  struct itimerval it = {{0, us}, {0, us}};
  cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
  bl_conn_t *r, *w;
  pair(&r, &w, 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, late_sender, w), 0);
  void *out = NULL;
  size_t len = 0;
  int rc = bl_conn_recv_bytes(r, &out, &len, 0);
  int rc2 = bl_conn_poll(r, 50);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  void *sent;
  pthread_join(th, &sent);
  cr_expect_eq(rc, 0);
  cr_expect_eq((intptr_t)sent, 0);
  cr_expect_eq(len, (size_t)4 << 20);
  cr_expect_eq(rc2, 0, "an interrupted poll keeps waiting, then times out");
  cr_expect_geq(atomic_load(&alarms), 5);
  free(out);
  bl_conn_free(&r);
  bl_conn_free(&w);
}

/* ---- fds ---- */

Test(connection, fds_are_cloexec_and_never_leak) {
  int before = t_count_fds();
  for (int i = 0; i < 50; i++) {
    bl_conn_t *a, *b;
    pair(&a, &b, i & 1);
    cr_expect(fcntl(bl_conn_fileno(a), F_GETFD) & FD_CLOEXEC);
    cr_expect(fcntl(bl_conn_fileno(b), F_GETFD) & FD_CLOEXEC);
    cr_assert_eq(bl_conn_send_bytes(b, "x", 1, 0, BL_CONN_REST), 0);
    bl_conn_free(&a);
    bl_conn_free(&b);
  }
  cr_expect_eq(t_count_fds(), before);
}

Test(connection, wrap_an_fd) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  bl_conn_t *a, *b;
  cr_assert_eq(bl_conn_from_fd(&a, sv[0], 1, 1), 0);
  cr_assert_eq(bl_conn_from_fd(&b, sv[1], 1, 0), 0);
  cr_expect_eq(bl_conn_send_bytes(b, "x", 1, 0, BL_CONN_REST), -EBADF);
  cr_assert_eq(bl_conn_send_bytes(a, "wrapped", 7, 0, BL_CONN_REST), 0);
  expect_msg(b, "wrapped", 7);
  bl_conn_free(&b);
  /* A socket end: no SIGPIPE either (MSG_NOSIGNAL). */
  signal(SIGPIPE, SIG_DFL);
  cr_expect_eq(bl_conn_send_bytes(a, "x", 1, 0, BL_CONN_REST), -EPIPE);
  bl_conn_free(&a);
  bl_conn_t *c = (bl_conn_t *)1;
  int fd = dup(0);
  cr_expect_eq(bl_conn_from_fd(&c, fd, 0, 0), -EINVAL);
  cr_expect_null(c);
  cr_expect_eq(fcntl(fd, F_GETFD), -1, "the fd is closed on error too");
  cr_expect_eq(bl_pipe(NULL, &c, 1), -EINVAL);
}

/* ---- fault points ---- */

Test(connection, fault_send_write_fails_then_recovers) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  fiu_init(0);
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  fiu_enable("connection/send/write", 1, (void *)(intptr_t)EIO, FIU_ONETIME);
  int rc = bl_conn_send_bytes(a, "lost", 4, 0, BL_CONN_REST);
  fiu_disable("connection/send/write");
  cr_expect_eq(rc, -EIO);
  fiu_enable("connection/send/write", 1, NULL, FIU_ONETIME); /* default EPIPE */
  rc = bl_conn_send_bytes(a, "lost", 4, 0, BL_CONN_REST);
  fiu_disable("connection/send/write");
  cr_expect_eq(rc, -EPIPE);
  cr_expect_eq(bl_conn_poll(b, 0), 0, "a failed send writes nothing");
  cr_assert_eq(bl_conn_send_bytes(a, "kept", 4, 0, BL_CONN_REST), 0);
  expect_msg(b, "kept", 4);
  bl_conn_free(&a);
  bl_conn_free(&b);
#endif
}

Test(connection, fault_recv_read_fails_then_recovers) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  fiu_init(0);
  bl_conn_t *r, *w;
  pair(&r, &w, 0);
  cr_assert_eq(bl_conn_send_bytes(w, "data", 4, 0, BL_CONN_REST), 0);
  fiu_enable("connection/recv/read", 1, (void *)(intptr_t)ECONNRESET, FIU_ONETIME);
  void *out;
  size_t len;
  int rc = bl_conn_recv_bytes(r, &out, &len, 0);
  fiu_disable("connection/recv/read");
  cr_expect_eq(rc, -ECONNRESET);
  fiu_enable("connection/recv/read", 1, NULL, FIU_ONETIME); /* default EIO */
  char buf[8];
  rc = bl_conn_recv_bytes_into(r, buf, sizeof buf, 0, &len);
  fiu_disable("connection/recv/read");
  cr_expect_eq(rc, -EIO);
  cr_expect(bl_conn_readable(r) && !bl_conn_closed(r), "nothing was consumed");
  expect_msg(r, "data", 4);
  bl_conn_free(&r);
  bl_conn_free(&w);
#endif
}

Test(connection, fault_pipe_creation_leaves_nothing) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  fiu_init(0);
  int before = t_count_fds();
  bl_conn_t *a = (bl_conn_t *)1, *b = (bl_conn_t *)1;
  fiu_enable("fdutil/pipe/create", 1, (void *)(intptr_t)EMFILE, FIU_ONETIME);
  cr_expect_eq(bl_pipe(&a, &b, 0), -EMFILE);
  fiu_disable("fdutil/pipe/create");
  cr_expect(a == NULL && b == NULL);
  fiu_enable("fdutil/socketpair/create", 1, (void *)(intptr_t)ENFILE, FIU_ONETIME);
  cr_expect_eq(bl_pipe(&a, &b, 1), -ENFILE);
  fiu_disable("fdutil/socketpair/create");
  cr_expect_eq(t_count_fds(), before);
#endif
}

/* ---- non-blocking connections (Pipe(rnonblock, wnonblock)) ---- */

Test(connection, nonblocking_receive_is_eagain_until_a_message_waits) {
  bl_conn_t *r, *w;
  pair(&r, &w, 0);
  cr_expect_eq(bl_conn_blocking(r), 1, "blocking by default");
  cr_assert_eq(bl_conn_set_blocking(r, 0), 0);
  cr_expect_eq(bl_conn_blocking(r), 0);
  void *out = NULL;
  size_t len = 0;
  char buf[8];
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 0), -EAGAIN);
  cr_expect_eq(bl_conn_recv_bytes_into(r, buf, sizeof buf, 0, &len), -EAGAIN);
  cr_assert_eq(bl_conn_send_bytes(w, "one", 3, 0, BL_CONN_REST), 0);
  cr_assert_eq(bl_conn_send_bytes(w, "two", 3, 0, BL_CONN_REST), 0);
  expect_msg(r, "one", 3);
  cr_assert_eq(bl_conn_recv_bytes_into(r, buf, sizeof buf, 0, &len), 0);
  cr_expect(len == 3 && memcmp(buf, "two", 3) == 0);
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 0), -EAGAIN);
  /* A message kept by BufferTooShort comes first, without a wait. */
  cr_assert_eq(bl_conn_send_bytes(w, "longer", 6, 0, BL_CONN_REST), 0);
  cr_expect_eq(bl_conn_recv_bytes_into(r, buf, 2, 0, &len), BL_EBUFTOOSHORT);
  expect_msg(r, "longer", 6);
  /* EOF is still EOF, not EAGAIN. */
  bl_conn_free(&w);
  cr_expect_eq(bl_conn_recv_bytes(r, &out, &len, 0), BL_EEOF);
  bl_conn_free(&r);
}

/* The writer's partial header is on the pipe: a non-blocking receive that
 * has begun a message waits for the rest instead of tearing it. */
Test(connection, nonblocking_receive_finishes_a_begun_message) {
  bl_conn_t *r, *w;
  pair(&r, &w, 0);
  cr_assert_eq(bl_conn_set_blocking(r, 0), 0);
  const unsigned char hdr[4] = {0, 0, 0, 5};
  raw(w, hdr, 2);
  pid_t pid = t_fork();
  if (pid == 0) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int rc = bl__write_full(bl_conn_fileno(w), hdr + 2, 2) ||
             bl__write_full(bl_conn_fileno(w), "hello", 5);
    t_exit(rc ? 1 : 0);
  }
  expect_msg(r, "hello", 5);
  cr_expect_eq(t_wait_exit(pid), 0);
  bl_conn_free(&r);
  bl_conn_free(&w);
}

Test(connection, nonblocking_send_that_does_not_fit_writes_nothing) {
  for (int duplex = 0; duplex <= 1; duplex++) {
    bl_conn_t *a, *b;
    pair(&a, &b, duplex);
    cr_assert_eq(bl_conn_set_blocking(b, 0), 0);
    size_t big = (size_t)8 << 20; /* beyond any pipe or socket buffer here */
    char *data = malloc(big);
    cr_assert_not_null(data);
    memset(data, 'w', big);
    cr_assert_eq(bl_conn_send_bytes(b, "small", 5, 0, BL_CONN_REST), 0);
    cr_expect_eq(bl_conn_send_bytes(b, data, big, 0, BL_CONN_REST), -EAGAIN,
                 "duplex=%d", duplex);
    /* Only the small frame is there: the stream is intact. */
    expect_msg(a, "small", 5);
    cr_expect_eq(bl_conn_poll(a, 0), 0, "the refused frame left no byte");
    cr_assert_eq(bl_conn_send_bytes(b, "next", 4, 0, BL_CONN_REST), 0);
    expect_msg(a, "next", 4);
    /* Blocking again: the big frame goes through to a reader. */
    cr_assert_eq(bl_conn_set_blocking(b, 1), 0);
    pid_t pid = t_fork();
    if (pid == 0) {
      void *out = NULL;
      size_t len = 0;
      int rc = bl_conn_recv_bytes(a, &out, &len, 0);
      int ok = rc == 0 && len == big;
      free(out);
      free(data);
      t_exit(ok ? 0 : 1);
    }
    cr_expect_eq(bl_conn_send_bytes(b, data, big, 0, BL_CONN_REST), 0);
    cr_expect_eq(t_wait_exit(pid), 0);
    free(data);
    bl_conn_free(&a);
    bl_conn_free(&b);
  }
}

Test(connection, set_blocking_on_closed_is_eclosed) {
  bl_conn_t *a, *b;
  pair(&a, &b, 1);
  cr_assert_eq(bl_conn_set_blocking(a, 0), 0);
  cr_expect_eq(bl_conn_blocking(b), 1, "only the end it was set on");
  bl_conn_close(a);
  cr_expect_eq(bl_conn_set_blocking(a, 1), BL_ECLOSED);
  cr_expect_eq(bl_conn_set_blocking(NULL, 1), -EINVAL);
  bl_conn_free(&a);
  bl_conn_free(&b);
}
