/* forkserver.c: the forkserver start method. A server, started on first
 * use as a re-executed image of the program (spawn.c's constructor enters
 * bl__forkserver_main), runs the preload targets once and then forks one
 * child per request. Requests travel over a socketpair with the child's
 * start-status fd attached (SCM_RIGHTS). Children are cloned with
 * CLONE_PARENT: they are children of the requesting process, which reaps,
 * waits on and signals them through pidfds like any fork child (the pool
 * starts its forkserver workers this way too). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <billiard/task.h>

#include "fault.h"
#include "internal.h"
#include "startmethod.h"

#define MAX_REQUEST (64u << 20) /* boot bytes per child, sanity bound */

/* ---- fd passing ---- */

/* send() with MSG_NOSIGNAL: a dead server is -EPIPE, not SIGPIPE. */
static int sock_send(int sock, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += (size_t)n;
    len -= (size_t)n;
  }
  return 0;
}

#define MAX_PASS (1 + BL__BOOT_MAX_FDS) /* the status fd, then boot fds */

static int send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t n) {
  union {
    char b[CMSG_SPACE(sizeof(int) * MAX_PASS)];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {(void *)buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (n) {
    m.msg_control = u.b;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  int rc = BL_FAULT("forkserver/request/sendmsg", EPIPE);
  if (rc) return rc;
  ssize_t r;
  do r = sendmsg(sock, &m, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  /* The fds went with the first bytes; the rest is plain data. */
  return sock_send(sock, (const char *)buf + r, len - (size_t)r);
}

/* Receive exactly len bytes; fds[0..*n) get the attached fds (CLOEXEC). */
static int recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t *n) {
  union {
    char b[CMSG_SPACE(sizeof(int) * MAX_PASS)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                     .msg_controllen = sizeof u.b};
  *n = 0;
  int rc = 0;
  ssize_t r;
  do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (r == 0) return BL_EEOF;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      /* CMSG_SPACE's padding can hold one fd more than MAX_PASS: such a
       * request is malformed, and the fd past the limit is ours to close. */
      for (size_t i = MAX_PASS - *n; i < k; i++) {
        int extra;
        memcpy(&extra, CMSG_DATA(c) + i * sizeof(int), sizeof extra);
        close(extra);
      }
      if (*n + k > MAX_PASS) {
        k = MAX_PASS - *n;
        rc = BL_EPROTOCOL;
      }
      memcpy(fds + *n, CMSG_DATA(c), k * sizeof(int));
      *n += k;
    }
  if ((m.msg_flags & MSG_CTRUNC) != 0) rc = BL_EPROTOCOL;
  if (rc == 0 && (size_t)r < len) {
    rc = bl__read_full(sock, (char *)buf + r, len - (size_t)r);
    if (rc == BL_EEOF) rc = BL_EPROTOCOL;
  }
  if (rc) {
    for (size_t i = 0; i < *n; i++) close(fds[i]);
    *n = 0;
  }
  return rc;
}

/* In the new child: put the passed fds at the numbers the client had.
 * First move everything above all targets, so no dup2 lands on an fd
 * still to be moved (the status fd included). */
static int place_fds(int *status, const int *got, const int *want, size_t n) {
  int hi = *status;
  for (size_t i = 0; i < n; i++) {
    if (want[i] > hi) hi = want[i];
    if (got[i] > hi) hi = got[i];
  }
  int moved[BL__BOOT_MAX_FDS];
  int s = fcntl(*status, F_DUPFD_CLOEXEC, hi + 1);
  if (s < 0) return -errno;
  close(*status);
  *status = s;
  for (size_t i = 0; i < n; i++) {
    moved[i] = fcntl(got[i], F_DUPFD_CLOEXEC, hi + 1);
    if (moved[i] < 0) return -errno;
    close(got[i]);
  }
  for (size_t i = 0; i < n; i++) {
    if (dup3(moved[i], want[i], O_CLOEXEC) < 0) return -errno;
    close(moved[i]);
  }
  return 0;
}

/* ---- server side ---- */

static int run_preloads(int sock) {
  uint32_t n = 0;
  int rc = bl__read_full(sock, &n, sizeof n);
  for (uint32_t i = 0; rc == 0 && i < n; i++) {
    uint32_t len = 0;
    char name[BL_TASK_NAME_MAX + 1];
    if ((rc = bl__read_full(sock, &len, sizeof len))) break;
    if (len == 0 || len > BL_TASK_NAME_MAX) return BL_EPROTOCOL;
    if ((rc = bl__read_full(sock, name, len))) break;
    name[len] = 0;
    bl_target_fn fn;
    if ((rc = bl_lookup_target(name, &fn))) break;
    if (fn(NULL, 0) != 0) rc = BL_EPROCESS;
  }
  return rc;
}

_Noreturn void bl__forkserver_main(int sock, int status_w) {
  int32_t status = run_preloads(sock);
  (void)bl__write_full(status_w, &status, sizeof status);
  bl__close(&status_w);
  if (status) bl__child_exit(1);
  for (;;) {
    uint64_t len = 0;
    int got[MAX_PASS];
    size_t ngot = 0;
    int rc = recv_with_fds(sock, &len, sizeof len, got, &ngot);
    if (rc) bl__child_exit(0); /* EOF: the client is done (or gone) */
    int cfd = ngot ? got[0] : -1;
    char *raw = len && len <= MAX_REQUEST ? malloc(len) : NULL;
    bl__boot_t b;
    char *owned = NULL;
    int32_t reply = raw ? bl__read_full(sock, raw, len) : BL_EPROTOCOL;
    if (reply == 0) reply = bl__boot_decode(raw, len, &b, &owned);
    free(raw);
    if (reply == 0 && (cfd < 0 || ngot != 1 + b.nfds)) reply = BL_EPROTOCOL;
    if (reply == 0) {
      /* CLONE_PARENT: the child belongs to our parent, the client. The
       * exit signal is ours (SIGCHLD), so plain waitpid reaps it. */
      fflush(NULL);
      long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
      if (pid == 0) {
        bl__close(&sock);
        /* No parent-death signal: our parent thread is the one that
         * started the server (a pool's supervisor, say), which may end
         * long before the process. Only a requester already gone stops it. */
        if (getppid() != b.parent) bl__child_exit(1);
        int32_t e = place_fds(&cfd, got + 1, b.fds, b.nfds);
        if (e) {
          (void)bl__write_full(cfd, &e, sizeof e);
          bl__child_exit(1);
        }
        bl__boot_run(&b, cfd, owned);
      }
      reply = pid < 0 ? -errno : (int32_t)pid;
    }
    free(owned);
    for (size_t i = 0; i < ngot; i++) close(got[i]);
    if (sock_send(sock, &reply, sizeof reply)) bl__child_exit(0);
  }
}

/* ---- client side ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* The server itself is forked with mu held, so no prepare handler (it
 * would deadlock); a child forked while some thread held mu gets a fresh
 * one instead; it then sees fs_owner != getpid() and drops the copy. */
static void mu_reinit(void) { pthread_mutex_init(&mu, NULL); }
__attribute__((constructor)) static void mu_atfork(void) {
  pthread_atfork(NULL, NULL, mu_reinit);
}
static int fs_sock = -1;
static pid_t fs_pid, fs_owner;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void stop_at_exit(void) { (void)bl__forkserver_stop(); }
static void init_once(void) { atexit(stop_at_exit); }

/* The preload list, as the server reads it. */
static int send_preloads(int sock) {
  char **v = bl__context_preload();
  uint32_t n = 0;
  while (v && v[n]) n++;
  int rc = sock_send(sock, &n, sizeof n);
  for (uint32_t i = 0; rc == 0 && i < n; i++) {
    uint32_t len = (uint32_t)strlen(v[i]);
    if (len > BL_TASK_NAME_MAX) rc = BL_ENOTFOUND;
    else if (!(rc = sock_send(sock, &len, sizeof len)))
      rc = sock_send(sock, v[i], len);
  }
  bl__strv_free(v);
  return rc;
}

/* Start the server; called with mu held. */
static int start_server_locked(void) {
  int sv[2] = {-1, -1}, st[2] = {-1, -1};
  int rc = BL_FAULT("forkserver/start/socketpair", EMFILE);
  if (rc == 0) rc = bl__socketpair(sv);
  if (rc) return rc;
  if ((rc = bl__pipe(st))) {
    bl__close(&sv[0]);
    bl__close(&sv[1]);
    return rc;
  }
  /* No parent-death signal either: it would follow the starting thread
   * (a pool's supervisor thread ends with its pool). The server exits at
   * EOF on its socket, i.e. when every holder of sv[0] is gone. */
  pid_t pid = bl__fork(0);
  if (pid == 0) {
    char marker[64];
    bl__close(&sv[0]);
    bl__close(&st[0]);
    snprintf(marker, sizeof marker, "BL_FORKSERVER_FD=%d,%d", sv[1], st[1]);
    if (fcntl(sv[1], F_SETFD, 0) != 0 || fcntl(st[1], F_SETFD, 0) != 0) {
      int32_t e = -errno;
      (void)bl__write_full(st[1], &e, sizeof e);
      bl__child_exit(1);
    }
    bl__exec_self(marker, st[1]);
  }
  bl__close(&sv[1]);
  bl__close(&st[1]);
  if (pid < 0) {
    bl__close(&sv[0]);
    bl__close(&st[0]);
    return (int)pid;
  }
  rc = send_preloads(sv[0]);
  int32_t status = 0;
  /* The server holds the only write end: EOF means it died unreported. */
  if (rc == 0) rc = bl__read_full(st[0], &status, sizeof status);
  if (rc == BL_EEOF) rc = BL_EPROCESS;
  if (rc == 0) rc = status <= 0 ? status : BL_EPROCESS;
  bl__close(&st[0]);
  if (rc) {
    bl__close(&sv[0]);
    kill(pid, SIGKILL); /* not yet reaped: still ours */
    int ws;
    (void)bl__waitpid(pid, &ws, 0);
    return rc;
  }
  fs_sock = sv[0];
  fs_pid = pid;
  fs_owner = getpid();
  return 0;
}

int bl__forkserver_start(const bl__boot_t *b, int status_w, pid_t *pid) {
  pthread_once(&once, init_once);
  void *buf = NULL;
  size_t len = 0;
  int rc = bl__boot_encode(b, &buf, &len);
  if (rc) return rc;
  pthread_mutex_lock(&mu);
  if (fs_sock >= 0 && fs_owner != getpid()) {
    /* Inherited across fork: the server serves our parent, whose children
     * ours would become. Drop the copy and start our own. */
    bl__close(&fs_sock);
    fs_pid = 0;
  }
  if (fs_sock < 0) rc = start_server_locked();
  if (rc == 0) {
    uint64_t n = len;
    int32_t reply = 0;
    int pass[MAX_PASS];
    pass[0] = status_w;
    for (size_t i = 0; i < b->nfds; i++) pass[i + 1] = b->fds[i];
    rc = send_with_fds(fs_sock, &n, sizeof n, pass, 1 + b->nfds);
    if (rc == 0) rc = sock_send(fs_sock, buf, len);
    if (rc == 0) rc = bl__read_full(fs_sock, &reply, sizeof reply);
    if (rc == 0 && reply <= 0) rc = reply ? reply : BL_EPROTOCOL;
    if (rc == 0) *pid = (pid_t)reply;
    if (rc == BL_EEOF || rc == -EPIPE || rc == -ECONNRESET || rc == BL_EPROTOCOL) {
      /* The server died: drop it; the next start makes a new one. */
      bl__close(&fs_sock);
      int ws;
      (void)bl__waitpid(fs_pid, &ws, 0);
      fs_pid = 0;
      rc = BL_EPROCESS;
    }
  }
  pthread_mutex_unlock(&mu);
  free(buf);
  return rc;
}

pid_t bl__forkserver_pid(void) {
  pthread_mutex_lock(&mu);
  pid_t p = fs_owner == getpid() ? fs_pid : 0;
  pthread_mutex_unlock(&mu);
  return p;
}

pid_t bl__forkserver_stop(void) {
  pthread_mutex_lock(&mu);
  pid_t p = 0;
  if (fs_sock >= 0 && fs_owner == getpid()) {
    /* Closing the socket is the server's signal to exit. */
    bl__close(&fs_sock);
    int ws;
    (void)bl__waitpid(fs_pid, &ws, 0);
    p = fs_pid;
  }
  bl__close(&fs_sock);
  fs_pid = 0;
  pthread_mutex_unlock(&mu);
  return p;
}
