/* connection.c: billiard's Pipe/Connection: framed messages over a
 * socketpair (duplex) or a pipe (simplex). Frames are built in wire.c. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <billiard/connection.h>

#include "fault.h"
#include "internal.h"
#include "wire.h"

struct bl_conn {
  int fd;
  int readable, writable;
  int is_socket;
  /* One lock per direction: whole messages per thread, and a duplex end
   * may send while another thread is receiving. */
  pthread_mutex_t send_mu, recv_mu;
  /* The message that BL_EBUFTOOSHORT left behind. */
  void *pending;
  size_t pending_len;
  int has_pending;
  int nonblock;   /* bl_conn_set_blocking(c, 0); read with __atomic */
};

/* First allocation for a payload; it grows as bytes arrive, so a forged
 * length costs at most this much memory before the peer must deliver. */
#define FIRST_CHUNK ((size_t)16 << 20)

static int conn_new(bl_conn_t **c, int fd, int readable, int writable,
                    int is_socket) {
  bl_conn_t *n = calloc(1, sizeof *n);
  if (!n) return -ENOMEM;
  n->fd = fd;
  n->readable = readable;
  n->writable = writable;
  n->is_socket = is_socket;
  pthread_mutex_init(&n->send_mu, NULL);
  pthread_mutex_init(&n->recv_mu, NULL);
  *c = n;
  return 0;
}

BL_API int bl_pipe(bl_conn_t **a, bl_conn_t **b, int duplex) {
  BL_VALIDATE(a && b, -EINVAL);
  *a = *b = NULL;
  int fds[2], rc;
  rc = duplex ? bl__socketpair(fds) : bl__pipe(fds);
  if (rc) return rc;
  /* A bigger pipe buffer means fewer wake-ups for large messages. */
  if (!duplex) bl__grow_pipe(fds[1], 1 << 20);
  rc = conn_new(a, fds[0], 1, duplex, duplex);
  if (rc) {
    bl__close(&fds[0]);
    bl__close(&fds[1]);
    return rc;
  }
  rc = conn_new(b, fds[1], duplex, 1, duplex);
  if (rc) {
    bl_conn_free(a); /* closes fds[0] */
    bl__close(&fds[1]);
  }
  return rc;
}

BL_API int bl_conn_from_fd(bl_conn_t **c, int fd, int readable, int writable) {
  BL_VALIDATE(c, -EINVAL);
  *c = NULL;
  if (fd < 0 || !(readable || writable)) {
    if (fd >= 0) close(fd);
    return -EINVAL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  int rc = conn_new(c, fd, !!readable, !!writable, S_ISSOCK(st.st_mode));
  if (rc) close(fd);
  return rc;
}

/* ---- sending ---- */

/* Write the iovecs completely; -errno on failure. */
static int write_iov(bl_conn_t *c, struct iovec *iov, int cnt) {
  while (cnt > 0) {
    ssize_t n;
    if (c->is_socket) {
      struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
      n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    } else {
      n = writev(c->fd, iov, cnt);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        /* A caller made the fd non-blocking: wait, never tear a frame. */
        int r = bl__poll_fd(c->fd, POLLOUT, -1);
        if (r < 0) return r;
        continue;
      }
      return -errno;
    }
    size_t done = (size_t)n;
    while (cnt > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

/* Pipes have no MSG_NOSIGNAL: block SIGPIPE in this thread for the write,
 * and if the write raised one (EPIPE) that was not already pending, take
 * it back with sigtimedwait so it is never delivered. The signal a write
 * raises is directed at the writing thread, so no other thread sees it. */
static int write_pipe_nosigpipe(bl_conn_t *c, struct iovec *iov, int cnt) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigemptyset(&pending);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigpending(&pending);
  int was_pending = sigismember(&pending, SIGPIPE);
  int rc = write_iov(c, iov, cnt);
  if (rc == -EPIPE && !was_pending) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

/* A non-blocking send: does a frame of need bytes fit in the free buffer
 * space now? 0 yes (or unknown: let the write go), -EAGAIN no. */
static int room_for(const bl_conn_t *c, size_t need) {
  int queued = 0;
  long cap;
  if (c->is_socket) {
    int sb = 0;
    socklen_t sl = sizeof sb;
    if (getsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sb, &sl) != 0 ||
        ioctl(c->fd, SIOCOUTQ, &queued) != 0)
      return 0;
    cap = sb / 2; /* the kernel charges skb overhead against SO_SNDBUF */
  } else {
    cap = fcntl(c->fd, F_GETPIPE_SZ);
    if (cap < 0 || ioctl(c->fd, FIONREAD, &queued) != 0) return 0;
  }
  return queued >= 0 && (uint64_t)need + (uint64_t)queued <= (uint64_t)cap
             ? 0
             : -EAGAIN;
}

BL_API int bl_conn_set_blocking(bl_conn_t *c, int blocking) {
  BL_VALIDATE(c, -EINVAL);
  if (c->fd < 0) return BL_ECLOSED;
  __atomic_store_n(&c->nonblock, !blocking, __ATOMIC_RELEASE);
  return 0;
}

BL_API int bl_conn_blocking(const bl_conn_t *c) {
  return !c || !__atomic_load_n(&c->nonblock, __ATOMIC_ACQUIRE);
}

BL_API int bl_conn_send_bytes(bl_conn_t *c, const void *buf, size_t len,
                              size_t offset, size_t size) {
  BL_VALIDATE(c, -EINVAL);
  BL_VALIDATE(buf || len == 0, -EINVAL);
  if (c->fd < 0) return BL_ECLOSED;
  if (!c->writable) return -EBADF; /* "connection is read-only" */
  /* billiard: "buffer length < offset", "buffer length < offset + size". */
  if (offset > len) return -EINVAL;
  if (size == BL_CONN_REST) size = len - offset;
  if (size > len - offset) return -EINVAL;
  if ((uint64_t)size > BL__WIRE_MAX_PAYLOAD) return -EMSGSIZE;

  uint8_t hdr[BL__WIRE_HDR_MAX];
  size_t hlen = bl__wire_encode_header(hdr, size);
  struct iovec iov[2] = {
      {.iov_base = hdr, .iov_len = hlen},
      {.iov_base = (char *)buf + offset, .iov_len = size},
  };
  pthread_mutex_lock(&c->send_mu);
  int rc = BL_FAULT("connection/send/write", EPIPE);
  if (rc == 0 && !bl_conn_blocking(c)) rc = room_for(c, hlen + size);
  if (rc == 0)
    rc = c->is_socket ? write_iov(c, iov, size ? 2 : 1)
                      : write_pipe_nosigpipe(c, iov, size ? 2 : 1);
  pthread_mutex_unlock(&c->send_mu);
  return rc;
}

/* ---- receiving ---- */

/* Read exactly len bytes. BL_EEOF at a clean message boundary (nothing
 * read and at_start), BL_EPROTOCOL when EOF cuts data short. */
static int read_exact(int fd, void *buf, size_t len, int at_start) {
  int rc = bl__read_full(fd, buf, len);
  if (rc == BL_EEOF && !at_start) rc = BL_EPROTOCOL;
  return rc;
}

/* billiard's _bad_message_length: the rest of the stream is junk. A duplex
 * end keeps sending; a read-only end is closed. */
static void bad_stream(bl_conn_t *c) {
  if (c->writable) {
    c->readable = 0;
  } else {
    bl__close(&c->fd);
  }
}

/* Read a frame header: 0 and *len, BL_EEOF, BL_EPROTOCOL or -errno. */
static int read_header(bl_conn_t *c, uint64_t max, uint64_t *len) {
  uint8_t hdr[BL__WIRE_HDR_MAX];
  int rc = BL_FAULT("connection/recv/read", EIO);
  if (rc) return rc;
  rc = read_exact(c->fd, hdr, BL__WIRE_HDR_SHORT, 1);
  if (rc) return rc;
  int h = bl__wire_header_size(hdr);
  if (h < 0) return h;
  if (h > BL__WIRE_HDR_SHORT) {
    rc = read_exact(c->fd, hdr + BL__WIRE_HDR_SHORT,
                    (size_t)h - BL__WIRE_HDR_SHORT, 0);
    if (rc) return rc;
  }
  return bl__wire_decode_header(hdr, (size_t)h, max, len);
}

/* Read a payload of len bytes into a buffer that grows as data arrives. */
static int read_payload_alloc(int fd, uint64_t len, void **out) {
  size_t cap = len < FIRST_CHUNK ? (size_t)len : FIRST_CHUNK;
  char *b = malloc(cap ? cap : 1);
  if (!b) return -ENOMEM;
  size_t got = 0;
  while (got < len) {
    if (got == cap) {
      size_t ncap = cap * 2 < len ? cap * 2 : (size_t)len;
      char *nb = realloc(b, ncap);
      if (!nb) {
        free(b);
        return -ENOMEM;
      }
      b = nb;
      cap = ncap;
    }
    int rc = read_exact(fd, b + got, cap - got, 0);
    if (rc) {
      free(b);
      return rc;
    }
    got = cap;
  }
  *out = b;
  return 0;
}

static int check_readable(const bl_conn_t *c) {
  if (c->fd < 0) return BL_ECLOSED;
  if (!c->readable) return -EBADF; /* "connection is write-only" */
  return 0;
}

/* Before a new message on a non-blocking connection: -EAGAIN when no byte
 * (nor EOF) is waiting. Called with recv_mu held and no pending message. */
static int would_block(const bl_conn_t *c) {
  if (bl_conn_blocking(c)) return 0;
  int r = bl__poll_fd(c->fd, POLLIN, 0);
  return r < 0 ? r : r == 0 ? -EAGAIN : 0;
}

static void take_pending(bl_conn_t *c, void **out, size_t *len) {
  *out = c->pending ? c->pending : malloc(1);
  *len = c->pending_len;
  c->pending = NULL;
  c->pending_len = 0;
  __atomic_store_n(&c->has_pending, 0, __ATOMIC_RELEASE);
}

/* One whole message into a malloc'd buffer. Called with recv_mu held. */
static int recv_alloc(bl_conn_t *c, uint64_t max, void **out, size_t *len) {
  uint64_t l;
  int rc = read_header(c, max, &l);
  if (rc == 0) {
    rc = read_payload_alloc(c->fd, l, out);
    if (rc == 0) *len = (size_t)l;
    else if (rc != -ENOMEM) bad_stream(c);
    return rc;
  }
  /* A header error (not EOF, not a fault before any byte was read) has
   * consumed part of the stream. */
  if (rc == BL_EPROTOCOL) bad_stream(c);
  return rc;
}

BL_API int bl_conn_recv_bytes(bl_conn_t *c, void **out, size_t *len,
                              size_t maxlength) {
  BL_VALIDATE(c && out && len, -EINVAL);
  pthread_mutex_lock(&c->recv_mu);
  int rc = check_readable(c);
  if (rc == 0 && c->has_pending) {
    if (maxlength && c->pending_len > maxlength) {
      rc = BL_EPROTOCOL;
    } else {
      take_pending(c, out, len);
      rc = *out ? 0 : -ENOMEM;
    }
  } else if (rc == 0 && (rc = would_block(c)) == 0) {
    rc = recv_alloc(c, maxlength ? maxlength : BL__WIRE_MAX_PAYLOAD, out, len);
  }
  pthread_mutex_unlock(&c->recv_mu);
  return rc;
}

BL_API int bl_conn_recv_bytes_into(bl_conn_t *c, void *buf, size_t cap,
                                   size_t offset, size_t *len) {
  BL_VALIDATE(c && len && (buf || cap == 0), -EINVAL);
  if (offset > cap) return -EINVAL; /* "offset too large" */
  size_t room = cap - offset;
  pthread_mutex_lock(&c->recv_mu);
  int rc = check_readable(c);
  if (rc) goto out;
  if (c->has_pending) {
    *len = c->pending_len;
    if (c->pending_len > room) {
      rc = BL_EBUFTOOSHORT;
      goto out;
    }
    if (c->pending_len) memcpy((char *)buf + offset, c->pending, c->pending_len);
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    __atomic_store_n(&c->has_pending, 0, __ATOMIC_RELEASE);
    goto out;
  }
  rc = would_block(c);
  if (rc) goto out;
  uint64_t l;
  rc = read_header(c, BL__WIRE_MAX_PAYLOAD, &l);
  if (rc) {
    if (rc == BL_EPROTOCOL) bad_stream(c);
    goto out;
  }
  testcase(l == room);
  if (l <= room) {
    rc = l ? read_exact(c->fd, (char *)buf + offset, (size_t)l, 0) : 0;
    if (rc == 0) *len = (size_t)l;
    else bad_stream(c);
    goto out;
  }
  /* BufferTooShort: billiard hands the whole message to the exception; we
   * keep it for bl_conn_take_pending() or the next receive. */
  void *whole;
  rc = read_payload_alloc(c->fd, l, &whole);
  if (rc) {
    if (rc != -ENOMEM) bad_stream(c);
    goto out;
  }
  c->pending = whole;
  c->pending_len = (size_t)l;
  __atomic_store_n(&c->has_pending, 1, __ATOMIC_RELEASE);
  *len = (size_t)l;
  rc = BL_EBUFTOOSHORT;
out:
  pthread_mutex_unlock(&c->recv_mu);
  return rc;
}

BL_API int bl_conn_take_pending(bl_conn_t *c, void **out, size_t *len) {
  BL_VALIDATE(c && out && len, -EINVAL);
  pthread_mutex_lock(&c->recv_mu);
  int rc = -ENOMSG;
  if (c->has_pending) {
    take_pending(c, out, len);
    rc = *out ? 0 : -ENOMEM;
  }
  pthread_mutex_unlock(&c->recv_mu);
  return rc;
}

BL_API int bl_conn_poll(bl_conn_t *c, int timeout_ms) {
  BL_VALIDATE(c, -EINVAL);
  int rc = check_readable(c);
  if (rc) return rc;
  /* Read without recv_mu: a receiver may hold it while blocked. */
  if (__atomic_load_n(&c->has_pending, __ATOMIC_ACQUIRE)) return 1;
  return bl__poll_fd(c->fd, POLLIN, timeout_ms < 0 ? -1 : timeout_ms);
}

/* ---- handles ---- */

BL_API int bl_conn_fileno(const bl_conn_t *c) {
  BL_VALIDATE(c, -EINVAL);
  return c->fd < 0 ? BL_ECLOSED : c->fd;
}
BL_API int bl_conn_readable(const bl_conn_t *c) { return c && c->readable; }
BL_API int bl_conn_writable(const bl_conn_t *c) { return c && c->writable; }
BL_API int bl_conn_closed(const bl_conn_t *c) { return !c || c->fd < 0; }

BL_API int bl_conn_close(bl_conn_t *c) {
  BL_VALIDATE(c, -EINVAL);
  bl__close(&c->fd);
  free(c->pending);
  c->pending = NULL;
  c->pending_len = 0;
  c->has_pending = 0;
  return 0;
}

BL_API void bl_conn_free(bl_conn_t **c) {
  if (!c || !*c) return;
  bl_conn_close(*c);
  pthread_mutex_destroy(&(*c)->send_mu);
  pthread_mutex_destroy(&(*c)->recv_mu);
  free(*c);
  *c = NULL;
}
