/* test_cov2_mgrpeer.c: a manager server against a client speaking the raw
 * protocol badly: a wrong or oversized HMAC answer, a server challenge
 * answered with junk, frames torn by EOF, requests shorter than their
 * header, lengths that disagree, over-long keys, unknown operations and
 * ids. The server drops such a connection (or answers -EINVAL /
 * BL_ENOTFOUND) and keeps serving everyone else. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"

TestSuite(cov2_mgrpeer, .timeout = 60);

/* The wire as manager.c speaks it (what is under test). */
struct req_hdr {
  uint8_t op, kind, pad[2];
  uint32_t id;
  int64_t arg;
  uint32_t klen, vlen;
};
struct rep_hdr {
  int32_t status;
  uint32_t vlen;
};
#define OP_CREATE 1
#define OP_GET 4
#define K_DICT 1
#define K_LIST 2
#define K_QUEUE 4
#define K_SEM 9
#define K_BSEM 10
#define K_BARRIER 12
#define K_ARRAY 13
#define K_CUSTOM 14

static const unsigned char KEY[] = "cov2-secret";

static bl_manager_t *start_manager(void) {
  bl_manager_options_t o;
  bl_manager_options_init(&o);
  o.authkey = KEY;
  o.authkey_len = sizeof KEY - 1;
  bl_manager_t *m = NULL;
  cr_assert_eq(bl_manager_new(&m, &o), 0);
  cr_assert_eq(bl_manager_start(m), 0);
  return m;
}

static int dial(bl_manager_t *m) {
  const char *a = bl_manager_address(m);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t n = strlen(a);
  memcpy(sa.sun_path + 1, a + 1, n - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0);
  return fd;
}

static void put(int fd, const void *p, uint32_t n) {
  cr_assert_eq(bl__write_full(fd, &n, sizeof n), 0);
  if (n) cr_assert_eq(bl__write_full(fd, p, n), 0);
}

/* A frame from the server, or NULL at EOF / error. */
static char *get(int fd, uint32_t *n) {
  if (bl__read_full(fd, n, sizeof *n)) return NULL;
  char *p = malloc(*n + 1);
  cr_assert_not_null(p);
  if (*n && bl__read_full(fd, p, *n)) {
    free(p);
    return NULL;
  }
  return p;
}

/* The server closed the connection: EOF, or ECONNRESET when it left
 * bytes of ours unread. */
static int at_eof(int fd) {
  char c;
  ssize_t n = read(fd, &c, 1);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Answer the server's challenge (with the right key, or `wrong`). */
static void answer(int fd, int wrong) {
  uint32_t n;
  char *ch = get(fd, &n);
  cr_assert_not_null(ch);
  cr_assert_eq(n, 11 + 32);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  cr_assert_not_null(HMAC(EVP_sha256(), KEY, sizeof KEY - 1, (unsigned char *)ch + 11, 32, d, &dl));
  free(ch);
  if (wrong) d[0] ^= 1;
  put(fd, d, dl);
  char *r = get(fd, &n);
  cr_assert_not_null(r);
  cr_assert_eq(memcmp(r, wrong ? "#FAILURE#" : "#WELCOME#", 9), 0);
  free(r);
}

/* Then the client's challenge: the server answers, we welcome it. */
static int authenticate(bl_manager_t *m) {
  int fd = dial(m);
  answer(fd, 0);
  unsigned char msg[11 + 32];
  memcpy(msg, "#CHALLENGE#", 11);
  memset(msg + 11, 7, 32);
  put(fd, msg, sizeof msg);
  uint32_t n;
  char *d = get(fd, &n);
  cr_assert_not_null(d);
  free(d);
  put(fd, "#WELCOME#", 9);
  return fd;
}

static int32_t request_v(int fd, uint8_t op, uint8_t kind, uint32_t id, const char *key,
                         int64_t arg, const void *val, uint32_t vlen) {
  struct req_hdr h = {.op = op, .kind = kind, .id = id, .arg = arg,
                      .klen = key ? (uint32_t)strlen(key) : 0, .vlen = vlen};
  char buf[sizeof h + 128];
  cr_assert_leq(h.klen + vlen, 128);
  memcpy(buf, &h, sizeof h);
  if (key) memcpy(buf + sizeof h, key, h.klen);
  if (vlen) memcpy(buf + sizeof h + h.klen, val, vlen);
  put(fd, buf, (uint32_t)(sizeof h + h.klen + vlen));
  uint32_t n;
  char *r = get(fd, &n);
  if (!r) return 12345;
  struct rep_hdr rh;
  memcpy(&rh, r, sizeof rh);
  free(r);
  return rh.status;
}

static int32_t request(int fd, uint8_t op, uint8_t kind, uint32_t id, const char *key) {
  return request_v(fd, op, kind, id, key, 0, NULL, 0);
}

/* The server still serves a well-behaved client. */
static void still_serving(bl_manager_t *m) {
  bl_proxy_t *d = NULL;
  cr_expect_eq(bl_manager_dict(m, &d), 0);
  cr_expect_eq(bl_dict_set(d, "k", "v", 1), 0);
  bl_proxy_free(&d);
}

Test(cov2_mgrpeer, bad_authentication_is_refused) {
  bl_manager_t *m = start_manager();
  int fd = dial(m);
  answer(fd, 1);
  cr_expect(at_eof(fd), "a wrong digest: FAILURE, then closed");
  close(fd);
  fd = dial(m);
  uint32_t n;
  free(get(fd, &n));
  char big[300] = {0};
  put(fd, big, sizeof big);
  cr_expect(at_eof(fd), "an answer over the frame limit");
  close(fd);
  fd = dial(m);
  answer(fd, 0);
  put(fd, "#HELLO#", 7);
  cr_expect(at_eof(fd), "not a challenge");
  close(fd);
  fd = dial(m);
  answer(fd, 0);
  unsigned char msg[11 + 32];
  memcpy(msg, "#CHALLENGE#", 11);
  memset(msg + 11, 1, 32);
  put(fd, msg, sizeof msg);
  free(get(fd, &n));
  put(fd, "#NOPE#", 6);
  cr_expect(at_eof(fd), "no welcome for the server");
  close(fd);
  fd = dial(m);
  free(get(fd, &n));
  n = 32;
  cr_assert_eq(bl__write_full(fd, &n, sizeof n), 0);
  cr_assert_eq(bl__write_full(fd, "abc", 3), 0);
  cr_assert_eq(shutdown(fd, SHUT_WR), 0);
  cr_expect(at_eof(fd), "an answer torn by EOF");
  close(fd);
  still_serving(m);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  bl_manager_free(&m);
}

Test(cov2_mgrpeer, malformed_requests_drop_the_connection) {
  bl_manager_t *m = start_manager();
  still_serving(m); /* our own connection is open from here on */
  int fds = t_count_fds();
  int fd = authenticate(m);
  cr_expect_eq(request(fd, OP_GET, K_DICT, 999, "x"), BL_ENOTFOUND);
  int32_t id = request(fd, OP_CREATE, K_DICT, 0, NULL);
  cr_assert_gt(id, 0);
  cr_expect_eq(request(fd, OP_GET, K_LIST, (uint32_t)id, "x"), -EINVAL, "wrong kind");
  cr_expect_eq(request(fd, 200, K_DICT, (uint32_t)id, "x"), -EINVAL, "unknown op");
  put(fd, "short", 5);
  cr_expect(at_eof(fd), "shorter than a header");
  close(fd);

  fd = authenticate(m);
  struct req_hdr h = {.op = OP_GET, .kind = K_DICT, .id = (uint32_t)id, .klen = 10};
  put(fd, &h, sizeof h);
  cr_expect(at_eof(fd), "a key longer than the frame");
  close(fd);

  fd = authenticate(m);
  size_t big = sizeof h + 5000;
  char *b = calloc(1, big);
  h.klen = 5000;
  memcpy(b, &h, sizeof h);
  put(fd, b, (uint32_t)big);
  free(b);
  cr_expect(at_eof(fd), "a key over the limit");
  close(fd);

  fd = authenticate(m);
  uint32_t n = 100;
  cr_assert_eq(bl__write_full(fd, &n, sizeof n), 0);
  cr_assert_eq(shutdown(fd, SHUT_WR), 0);
  cr_expect(at_eof(fd), "a request torn by EOF");
  close(fd);

  fd = authenticate(m);
  n = (256u << 20) + 1;
  cr_assert_eq(bl__write_full(fd, &n, sizeof n), 0);
  cr_expect(at_eof(fd), "a request over the frame limit");
  close(fd);

  still_serving(m);
  cr_expect_eq(t_count_fds(), fds);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  bl_manager_free(&m);
}

/* Creation arguments no client library would send: each refused, nothing
 * created, the connection kept. */
Test(cov2_mgrpeer, bad_creation_arguments) {
  bl_manager_t *m = start_manager();
  int fd = authenticate(m);
  const int64_t big = (int64_t)INT32_MAX + 1;
  int64_t t = 1000;
  cr_expect_eq(request_v(fd, OP_CREATE, K_QUEUE, 0, NULL, -1, NULL, 0), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_QUEUE, 0, NULL, big, NULL, 0), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_SEM, 0, NULL, -1, NULL, 0), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_BSEM, 0, NULL, big, NULL, 0), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_BARRIER, 0, NULL, 0, &t, sizeof t), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_BARRIER, 0, NULL, big, &t, sizeof t), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_BARRIER, 0, NULL, 2, &t, 4), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_ARRAY, 0, NULL, -1, "x", 1), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_ARRAY, 0, NULL, (1 << 20) + 1, "x", 1), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, K_CUSTOM, 0, "no-such-type", 0, NULL, 0), BL_ENOTFOUND);
  cr_expect_eq(request_v(fd, OP_CREATE, 0, 0, NULL, 0, NULL, 0), -EINVAL);
  cr_expect_eq(request_v(fd, OP_CREATE, 99, 0, NULL, 0, NULL, 0), -EINVAL);
  /* Still a working connection: valid ones succeed. */
  cr_expect_gt(request_v(fd, OP_CREATE, K_BARRIER, 0, NULL, 2, &t, sizeof t), 0);
  cr_expect_gt(request_v(fd, OP_CREATE, K_ARRAY, 0, NULL, 3, "x", 1), 0);
  cr_expect_gt(request_v(fd, OP_CREATE, K_QUEUE, 0, NULL, 5, NULL, 0), 0);
  close(fd);
  still_serving(m);
  cr_expect_eq(bl_manager_shutdown(m), 0);
  bl_manager_free(&m);
}
