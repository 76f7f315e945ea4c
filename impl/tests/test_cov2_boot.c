/* test_cov2_boot.c: the start methods against a misbehaving peer: the
 * bootstrap codec fed malformed records, a forkserver (its main loop run in
 * a test child on a socketpair) fed bad preload lists and bad requests by a
 * fake client, and spawn's pre-main constructor given a corrupted or
 * unreadable boot memfd. Each must answer BL_EPROTOCOL (or the lookup's
 * error) and neither crash nor leak fds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "helpers.h"
#include "internal.h"
#include "startmethod.h"

TestSuite(cov2_boot, .timeout = 60);

/* ---- the codec ---- */

/* The header as spawn.c lays it out (the wire format under test). */
struct hdr {
  uint32_t magic;
  int32_t parent;
  uint32_t tlen, nlen, nfds, ilen;
  uint64_t alen;
};

static size_t good(void **buf) {
  int fds[2] = {3, 4};
  bl__boot_t b = {.target = "t", .name = "n", .ident = "1", .arg = "xy", .len = 2,
                  .parent = 1, .fds = fds, .nfds = 2};
  size_t len = 0;
  cr_assert_eq(bl__boot_encode(&b, buf, &len), 0);
  return len;
}

static int decode_with(size_t off, uint32_t v, size_t cut) {
  void *buf = NULL;
  size_t len = good(&buf);
  memcpy((char *)buf + off, &v, sizeof v);
  bl__boot_t b;
  char *owned = NULL;
  int rc = bl__boot_decode(buf, len - cut, &b, &owned);
  free(owned);
  free(buf);
  return rc;
}

Test(cov2_boot, codec_refuses_every_malformed_field) {
  int fds[BL__BOOT_MAX_FDS + 1] = {0};
  bl__boot_t b = {.target = "t", .name = "n", .fds = fds, .nfds = BL__BOOT_MAX_FDS + 1};
  void *buf = NULL;
  size_t len = 0;
  cr_expect_eq(bl__boot_encode(&b, &buf, &len), -EINVAL);
  b.nfds = 1;
  b.fds = NULL;
  cr_expect_eq(bl__boot_encode(&b, &buf, &len), -EINVAL);

  /* The good record decodes (ident and fds as sent). */
  len = good(&buf);
  char *owned = NULL;
  cr_assert_eq(bl__boot_decode(buf, len, &b, &owned), 0);
  cr_expect_str_eq(b.target, "t");
  cr_expect_str_eq(b.ident, "1");
  cr_expect_eq(b.nfds, 2);
  cr_expect_eq(b.fds[1], 4);
  free(owned);
  cr_expect_eq(bl__boot_decode(buf, sizeof(struct hdr) - 1, &b, &owned), BL_EPROTOCOL);
  free(buf);

  cr_expect_eq(decode_with(offsetof(struct hdr, magic), 1, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, tlen), 0, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, tlen), BL_TASK_NAME_MAX + 1, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, nlen), 4097, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, nfds), BL__BOOT_MAX_FDS + 1, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, ilen), 4097, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, ilen), 4000, 0), BL_EPROTOCOL,
               "fields longer than the record");
  cr_expect_eq(decode_with(offsetof(struct hdr, alen), 3, 0), BL_EPROTOCOL);
  cr_expect_eq(decode_with(offsetof(struct hdr, magic), 0x424c5350u, 1), BL_EPROTOCOL,
               "argument length not what remains");
}

/* ---- a fake forkserver client ---- */

static int tg_fail(const void *a, size_t n) {
  (void)a, (void)n;
  return 3;
}
static int tg_ok(const void *a, size_t n) {
  (void)a, (void)n;
  return 0;
}

static void setup_targets(void) {
  cr_assert_eq(bl_register_target("cov2/fail", tg_fail), 0);
  cr_assert_eq(bl_register_target("cov2/ok", tg_ok), 0);
}

struct server {
  pid_t pid;
  int sock;   /* our end */
  int status; /* the server's preload status */
};

/* Start a server loop in a child, send it `n` preload entries (NULL names
 * send len as given), read its status. */
static void server_start(struct server *s, uint32_t n, const char *const *names,
                         const uint32_t *lens) {
  int sv[2], st[2];
  cr_assert_eq(bl__socketpair(sv), 0);
  cr_assert_eq(bl__pipe(st), 0);
  s->pid = t_fork();
  cr_assert_geq(s->pid, 0);
  if (s->pid == 0) {
    close(sv[0]);
    close(st[0]);
    bl__forkserver_main(sv[1], st[1]);
  }
  close(sv[1]);
  close(st[1]);
  s->sock = sv[0];
  cr_assert_eq(bl__write_full(s->sock, &n, sizeof n), 0);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len = lens ? lens[i] : (uint32_t)strlen(names[i]);
    cr_assert_eq(bl__write_full(s->sock, &len, sizeof len), 0);
    if (names && names[i]) cr_assert_eq(bl__write_full(s->sock, names[i], len), 0);
  }
  int32_t status = 99;
  cr_assert_eq(bl__read_full(st[0], &status, sizeof status), 0);
  close(st[0]);
  s->status = status;
}

static int server_end(struct server *s) {
  close(s->sock);
  return t_wait_exit(s->pid);
}

Test(cov2_boot, forkserver_refuses_bad_preload_lists, .init = setup_targets) {
  int fds0 = t_count_fds();
  struct server s;
  uint32_t zero = 0, huge = BL_TASK_NAME_MAX + 1;
  server_start(&s, 1, NULL, &zero);
  cr_expect_eq(s.status, BL_EPROTOCOL, "an empty preload name");
  cr_expect_eq(server_end(&s), 1);
  server_start(&s, 1, NULL, &huge);
  cr_expect_eq(s.status, BL_EPROTOCOL, "a preload name over the limit");
  cr_expect_eq(server_end(&s), 1);
  server_start(&s, 1, (const char *[]){"cov2/none"}, NULL);
  cr_expect_eq(s.status, BL_ENOTFOUND);
  cr_expect_eq(server_end(&s), 1);
  server_start(&s, 2, (const char *[]){"cov2/ok", "cov2/fail"}, NULL);
  cr_expect_eq(s.status, BL_EPROCESS, "a preload that fails");
  cr_expect_eq(server_end(&s), 1);
  cr_expect_eq(t_count_fds(), fds0);
}

static int send_req(int sock, uint64_t len, const void *body, size_t blen, const int *fds,
                    size_t n) {
  char cb[CMSG_SPACE(sizeof(int) * 40)];
  memset(cb, 0, sizeof cb);
  struct iovec iov = {&len, sizeof len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (n) {
    m.msg_control = cb;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  if (sendmsg(sock, &m, MSG_NOSIGNAL) != (ssize_t)sizeof len) return -errno;
  return blen ? bl__write_full(sock, body, blen) : 0;
}

static int send_part(int sock, const void *p, size_t n, int fd) {
  char cb[CMSG_SPACE(sizeof(int))];
  memset(cb, 0, sizeof cb);
  struct iovec iov = {(void *)p, n};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb,
                     .msg_controllen = sizeof cb};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -errno;
}

static int32_t reply_of(int sock) {
  int32_t r = 12345;
  int rc = bl__read_full(sock, &r, sizeof r);
  return rc ? rc : r;
}

Test(cov2_boot, forkserver_refuses_bad_requests, .init = setup_targets) {
  int fds0 = t_count_fds();
  struct server s;
  server_start(&s, 0, NULL, NULL);
  cr_assert_eq(s.status, 0);
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);

  cr_expect_eq(send_req(s.sock, 0, NULL, 0, NULL, 0), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL, "an empty request");
  cr_expect_eq(send_req(s.sock, UINT64_C(1) << 40, NULL, 0, &p[1], 1), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL, "a request over the size bound");
  cr_expect_eq(send_req(s.sock, 8, "garbage!", 8, &p[1], 1), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL, "an undecodable bootstrap");

  void *buf = NULL;
  size_t len = 0;
  int one = 5;
  bl__boot_t b = {.target = "cov2/ok", .name = "x", .parent = getpid()};
  cr_assert_eq(bl__boot_encode(&b, &buf, &len), 0);
  cr_expect_eq(send_req(s.sock, len, buf, len, NULL, 0), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL, "no status fd attached");
  free(buf);
  b.fds = &one;
  b.nfds = 1;
  cr_assert_eq(bl__boot_encode(&b, &buf, &len), 0);
  cr_expect_eq(send_req(s.sock, len, buf, len, &p[1], 1), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL, "fewer fds than the bootstrap names");
  free(buf);

  /* Still serving after all that; then a length torn in two halves is
   * read whole, and one torn by EOF ends the server quietly. */
  cr_expect_eq(send_req(s.sock, 0, NULL, 0, NULL, 0), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL);
  /* The first half carries an fd: a stream read stops after it. */
  uint64_t half = 0;
  cr_expect_eq(send_part(s.sock, &half, 4, p[1]), 0);
  cr_assert_eq(bl__write_full(s.sock, (char *)&half + 4, 4), 0);
  cr_expect_eq(reply_of(s.sock), BL_EPROTOCOL);
  cr_assert_eq(send(s.sock, &half, 4, MSG_NOSIGNAL), 4);
  cr_assert_eq(shutdown(s.sock, SHUT_WR), 0);
  cr_expect_eq(reply_of(s.sock), BL_EEOF, "the server left without a reply");
  cr_expect_eq(server_end(&s), 0);
  close(p[0]);
  close(p[1]);
  cr_expect_eq(t_count_fds(), fds0);
}

Test(cov2_boot, forkserver_drops_a_request_with_too_many_fds, .init = setup_targets) {
  int fds0 = t_count_fds();
  struct server s;
  server_start(&s, 0, NULL, NULL);
  cr_assert_eq(s.status, 0);
  int many[40];
  for (int i = 0; i < 40; i++) many[i] = 0;
  /* More fds than a request may carry: the control data is truncated,
   * which the server takes as a broken client and leaves. */
  cr_expect_eq(send_req(s.sock, 8, NULL, 0, many, 40), 0);
  cr_expect_eq(reply_of(s.sock), BL_EEOF);
  cr_expect_eq(server_end(&s), 0);
  /* One more than the limit fits in the control buffer's padding: not
   * truncated by the kernel, refused all the same (it used to be clamped
   * and the request read on, the extra fd left open in the server). */
  server_start(&s, 0, NULL, NULL);
  cr_assert_eq(s.status, 0);
  cr_expect_eq(send_req(s.sock, 8, NULL, 0, many, 34), 0);
  cr_expect_eq(reply_of(s.sock), BL_EEOF);
  cr_expect_eq(server_end(&s), 0);
  cr_expect_eq(t_count_fds(), fds0);
}

/* A well-formed request: the child (ours, by CLONE_PARENT) reports its
 * lookup on the status fd; one naming another parent leaves at once. */
static int32_t start_child(struct server *s, const char *target, pid_t parent, int *status) {
  int st[2], extra[2];
  cr_assert_eq(bl__pipe(st), 0);
  cr_assert_eq(bl__pipe(extra), 0);
  int want = 200; /* placed at this number in the child */
  bl__boot_t b = {.target = target, .name = "c", .parent = parent, .fds = &want, .nfds = 1};
  void *buf = NULL;
  size_t len = 0;
  cr_assert_eq(bl__boot_encode(&b, &buf, &len), 0);
  int pass[2] = {st[1], extra[0]};
  cr_expect_eq(send_req(s->sock, len, buf, len, pass, 2), 0);
  free(buf);
  close(st[1]);
  close(extra[0]);
  close(extra[1]);
  int32_t pid = reply_of(s->sock);
  *status = 777;
  int32_t v;
  if (bl__read_full(st[0], &v, sizeof v) == 0) *status = v;
  close(st[0]);
  return pid;
}

Test(cov2_boot, forkserver_children_report_lookup_and_wrong_parent, .init = setup_targets) {
  if (t_under_valgrind()) cr_skip_test("valgrind refuses clone(CLONE_PARENT)");
  int fds0 = t_count_fds();
  struct server s;
  server_start(&s, 1, (const char *[]){"cov2/ok"}, NULL);
  cr_assert_eq(s.status, 0);
  int status;
  int32_t pid = start_child(&s, "cov2/none", getpid(), &status);
  cr_assert_gt(pid, 0);
  cr_expect_eq(status, BL_ENOTFOUND);
  cr_expect_eq(t_wait_exit(pid), 1);
  pid = start_child(&s, "cov2/ok", getpid() + 1, &status);
  cr_assert_gt(pid, 0);
  cr_expect_eq(status, 777, "no report: it left before the lookup");
  cr_expect_eq(t_wait_exit(pid), 1);
  pid = start_child(&s, "cov2/ok", getpid(), &status);
  cr_assert_gt(pid, 0);
  cr_expect_eq(status, 0);
  cr_expect_eq(t_wait_exit(pid), 0);
  cr_expect_eq(server_end(&s), 0);
  cr_expect_eq(t_count_fds(), fds0);
}

/* ---- spawn's constructor with a bad boot memfd ---- */

/* Exec this test program with BL_SPAWN_FD naming a status pipe and `mfd`
 * (plus `fsenv` in the environment); the constructor must report before
 * main() ever runs. The status it wrote, or 777 for none. */
static int32_t exec_with_boot(int mfd, const char *fsenv, int *code) {
  int st[2];
  cr_assert_eq(bl__pipe(st), 0);
  pid_t pid = t_fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    char self[4096], env[64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) t_exit(90);
    self[n] = 0;
    if (fcntl(st[1], F_SETFD, 0) != 0) t_exit(91);
    if (mfd >= 0 && fcntl(mfd, F_SETFD, 0) != 0) t_exit(92);
    snprintf(env, sizeof env, "BL_SPAWN_FD=%d,%d", st[1], mfd >= 0 ? mfd : 999);
    char *envp[] = {env, (char *)fsenv, NULL};
    char *argv[] = {self, NULL};
    bl__coverage_flush();
    execve(self, argv, envp);
    t_exit(93);
  }
  close(st[1]);
  int32_t v = 777;
  if (bl__read_full(st[0], &v, sizeof v) != 0) v = 777;
  close(st[0]);
  *code = t_wait_exit(pid);
  return v;
}

static int memfd_with(const void *p, size_t n) {
  int fd = memfd_create("cov2", MFD_CLOEXEC);
  cr_assert_geq(fd, 0);
  if (n) cr_assert_eq(bl__write_full(fd, p, n), 0);
  cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
  return fd;
}

Test(cov2_boot, spawn_constructor_refuses_a_corrupted_boot_memfd) {
  int fds0 = t_count_fds();
  int code;
  int fd = memfd_with("not a bootstrap record at all, not at all", 40);
  cr_expect_eq(exec_with_boot(fd, NULL, &code), BL_EPROTOCOL);
  cr_expect_eq(code, 1);
  close(fd);
  fd = memfd_with(NULL, 0);
  cr_expect_eq(exec_with_boot(fd, "BL_FORKSERVER_FD=junk", &code), BL_EPROTOCOL,
               "an empty memfd (and a forkserver marker that does not parse)");
  cr_expect_eq(code, 1);
  close(fd);
  cr_expect_eq(exec_with_boot(-1, NULL, &code), -EBADF, "no memfd at that number");
  cr_expect_eq(code, 1);
  cr_expect_eq(t_count_fds(), fds0);
}

/* ---- spawn's environment ---- */

static int tg_seven(const void *a, size_t n) {
  (void)a, (void)n;
  return 7;
}
/* In a constructor: the spawned image looks it up before main. */
__attribute__((constructor)) static void reg_seven(void) {
  bl_register_target("cov2b/seven", tg_seven);
}

static int spawn_seven(void) {
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = "spawn";
  bl_process_t *p = NULL;
  int rc = bl_process_new(&p, "cov2b/seven", NULL, 0, &o);
  if (rc == 0) rc = bl_process_start(p);
  if (rc == 0 && (rc = bl_process_join(p, 60000)) == 0) (void)bl_process_exitcode(p, &rc);
  bl_process_free(&p);
  return rc;
}

/* Markers inherited from a process that was itself started by spawn or
 * as a forkserver must not reach the new image ahead of its own. (Each
 * Criterion test runs in its own process: the environment is ours.) */
Test(cov2_boot, spawn_drops_stale_markers_and_copes_without_environment) {
  cr_assert_eq(setenv("BL_SPAWN_FD", "1,2", 1), 0);
  cr_assert_eq(setenv("BL_FORKSERVER_FD", "3,4", 1), 0);
  cr_expect_eq(spawn_seven(), 7);
  cr_assert_eq(clearenv(), 0);
  cr_expect_eq(spawn_seven(), 7, "an empty environment");
}
