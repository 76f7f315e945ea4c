/* manager.c: SyncManager: a forked server process owning shared objects,
 * one thread per authenticated client connection, and the client side
 * (per-process connections, framed requests). Abstract Unix sockets: no
 * filesystem entry to clean up, and the name dies with the server. */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <billiard/manager.h>

#include "fault.h"
#include "internal.h"

enum kind { K_DICT = 1, K_LIST, K_NS, K_QUEUE, K_LOCK, K_EVENT, K_VALUE };
enum op {
  OP_CREATE = 1, OP_ATTACH, OP_SET, OP_GET, OP_DEL, OP_LEN, OP_APPEND, OP_LGET,
  OP_LSET, OP_PUT, OP_QGET, OP_ACQUIRE, OP_RELEASE, OP_ESET, OP_ECLEAR,
  OP_EISSET, OP_EWAIT, OP_VSET, OP_VGET, OP_SHUTDOWN
};

#define KEY_MAX 4096
#define FRAME_MAX (256u << 20)

struct req_hdr {
  uint8_t op, kind, pad[2];
  uint32_t id;
  int64_t arg; /* list index or timeout_ms */
  uint32_t klen, vlen;
};
struct rep_hdr {
  int32_t status; /* >= 0 result, < 0 error */
  uint32_t vlen;
};

/* ---- frames: u32 length + bytes ---- */

/* send() with MSG_NOSIGNAL: a dead peer is -EPIPE, not a SIGPIPE. */
static int send_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int send_frame(int fd, const void *a, size_t alen, const void *b, size_t blen) {
  uint32_t n = (uint32_t)(alen + blen);
  int rc = send_full(fd, &n, sizeof n);
  if (rc == 0 && alen) rc = send_full(fd, a, alen);
  if (rc == 0 && blen) rc = send_full(fd, b, blen);
  return rc;
}

/* A malloc'd frame of at most max bytes (plus a NUL for convenience). */
static int recv_frame(int fd, char **out, size_t *len, size_t max) {
  uint32_t n;
  int rc = bl__read_full(fd, &n, sizeof n);
  if (rc) return rc;
  if (n > max) return BL_EPROTOCOL;
  char *p = malloc((size_t)n + 1);
  if (!p) return -ENOMEM;
  if (n && (rc = bl__read_full(fd, p, n))) {
    free(p);
    return rc == BL_EEOF ? BL_EPROTOCOL : rc;
  }
  p[n] = 0;
  *out = p;
  *len = n;
  return 0;
}

/* ---- authentication (billiard's connection.deliver/answer_challenge) ---- */

static const char CHALLENGE[] = "#CHALLENGE#", WELCOME[] = "#WELCOME#",
                  FAILURE[] = "#FAILURE#";
#define NONCE 32

static int deliver_challenge(int fd, const unsigned char *key, size_t klen) {
  unsigned char msg[sizeof CHALLENGE - 1 + NONCE];
  memcpy(msg, CHALLENGE, sizeof CHALLENGE - 1);
  if (getrandom(msg + sizeof CHALLENGE - 1, NONCE, 0) != NONCE) return -EIO;
  int rc = send_frame(fd, msg, sizeof msg, NULL, 0);
  if (rc) return rc;
  unsigned char want[EVP_MAX_MD_SIZE];
  unsigned wlen = 0;
  HMAC(EVP_sha256(), key, (int)klen, msg + sizeof CHALLENGE - 1, NONCE, want, &wlen);
  char *got = NULL;
  size_t glen = 0;
  if ((rc = recv_frame(fd, &got, &glen, 256))) return rc;
  int ok = glen == wlen && CRYPTO_memcmp(got, want, wlen) == 0;
  free(got);
  rc = ok ? send_frame(fd, WELCOME, sizeof WELCOME - 1, NULL, 0)
          : send_frame(fd, FAILURE, sizeof FAILURE - 1, NULL, 0);
  return ok ? rc : BL_EAUTH;
}

static int answer_challenge(int fd, const unsigned char *key, size_t klen) {
  char *msg = NULL;
  size_t mlen = 0;
  int rc = recv_frame(fd, &msg, &mlen, 256);
  if (rc) return rc;
  if (mlen < sizeof CHALLENGE - 1 || memcmp(msg, CHALLENGE, sizeof CHALLENGE - 1)) {
    free(msg);
    return BL_EAUTH;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dlen = 0;
  HMAC(EVP_sha256(), key, (int)klen, (unsigned char *)msg + sizeof CHALLENGE - 1,
       mlen - (sizeof CHALLENGE - 1), d, &dlen);
  free(msg);
  if ((rc = send_frame(fd, d, dlen, NULL, 0))) return rc;
  char *r = NULL;
  size_t rlen = 0;
  if ((rc = recv_frame(fd, &r, &rlen, 256))) return rc;
  int ok = rlen == sizeof WELCOME - 1 && memcmp(r, WELCOME, rlen) == 0;
  free(r);
  return ok ? 0 : BL_EAUTH;
}

/* ---- server ---- */

struct item {
  char *key; /* dict / namespace only */
  void *val;
  size_t len;
};
struct obj {
  uint32_t id;
  int kind, flag; /* lock held / event set */
  struct item *v;
  size_t n, cap;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* broadcast on every change a waiter may want */
  struct obj *objs;
  size_t n, cap;
  unsigned char key[BL_MANAGER_AUTHKEY_MAX];
  size_t klen;
} S = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, {0}, 0};

static struct obj *find_obj(uint32_t id) {
  for (size_t i = 0; i < S.n; i++)
    if (S.objs[i].id == id) return &S.objs[i];
  return NULL;
}

static long find_key(struct obj *o, const char *key) {
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->v[i].key, key) == 0) return (long)i;
  return -1;
}

/* Append (or insert at 0..n) an item; takes ownership of key. */
static int push_item(struct obj *o, char *key, const void *val, size_t len) {
  if (o->n == o->cap) {
    size_t nc = o->cap ? o->cap * 2 : 8;
    struct item *nv = realloc(o->v, nc * sizeof *nv);
    if (!nv) return -ENOMEM;
    o->v = nv;
    o->cap = nc;
  }
  void *copy = malloc(len ? len : 1);
  if (!copy) return -ENOMEM;
  if (len) memcpy(copy, val, len);
  o->v[o->n++] = (struct item){key, copy, len};
  return 0;
}

static int replace_val(struct item *it, const void *val, size_t len) {
  void *copy = malloc(len ? len : 1);
  if (!copy) return -ENOMEM;
  if (len) memcpy(copy, val, len);
  free(it->val);
  it->val = copy;
  it->len = len;
  return 0;
}

/* Absolute CLOCK_MONOTONIC deadline for the condition variable. */
static struct timespec deadline_after(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static int has_items(const struct obj *o) { return o->n > 0; }
static int is_free(const struct obj *o) { return !o->flag; }
static int is_set(const struct obj *o) { return o->flag; }

/* Wait on S.cv (S.mu held) until pred holds for object id: 1 when it
 * does, 0 at the deadline (timeout_ms 0: no wait; < 0: forever). S.objs
 * may move while we wait (realloc on create), so *o is looked up again. */
static int wait_for(struct obj **o, int64_t timeout_ms, int (*pred)(const struct obj *)) {
  uint32_t id = (*o)->id;
  struct timespec dl = deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
  while (!pred(*o)) {
    if (timeout_ms == 0) return 0;
    int w = timeout_ms < 0 ? pthread_cond_wait(&S.cv, &S.mu)
                           : pthread_cond_timedwait(&S.cv, &S.mu, &dl);
    *o = find_obj(id);
    if (w == ETIMEDOUT && !pred(*o)) return 0;
  }
  return 1;
}

static int list_index(struct obj *o, int64_t i, size_t *out) {
  if (i < 0) i += (int64_t)o->n;
  if (i < 0 || (uint64_t)i >= o->n) return -ERANGE;
  *out = (size_t)i;
  return 0;
}

/* Handle one request with S.mu held. *rv and *rlen: a reply payload pointing
 * into the object (copied out by the caller before unlocking). */
static int handle(const struct req_hdr *h, const char *key, const char *val,
                  const void **rv, size_t *rlen, void **tofree) {
  if (h->op == OP_CREATE) {
    if (h->kind < K_DICT || h->kind > K_VALUE) return -EINVAL;
    if (S.n == S.cap) {
      size_t nc = S.cap ? S.cap * 2 : 16;
      struct obj *no = realloc(S.objs, nc * sizeof *no);
      if (!no) return -ENOMEM;
      S.objs = no;
      S.cap = nc;
    }
    static uint32_t next_id;
    struct obj *o = &S.objs[S.n];
    *o = (struct obj){.id = ++next_id, .kind = h->kind};
    if (h->kind == K_VALUE && push_item(o, NULL, val, h->vlen)) return -ENOMEM;
    S.n++;
    return (int)o->id;
  }
  struct obj *o = find_obj(h->id);
  if (!o) return BL_ENOTFOUND;
  if (h->op == OP_ATTACH) return o->kind;
  if (h->kind != o->kind) return -EINVAL;
  size_t i = 0;
  long k;
  int rc;
  switch (h->op) {
  case OP_SET:
    if ((k = find_key(o, key)) >= 0) return replace_val(&o->v[k], val, h->vlen);
    {
      char *kc = bl__strdup(key);
      if (!kc) return -ENOMEM;
      if ((rc = push_item(o, kc, val, h->vlen))) free(kc);
      return rc;
    }
  case OP_GET:
    if ((k = find_key(o, key)) < 0) return BL_ENOTFOUND;
    *rv = o->v[k].val;
    *rlen = o->v[k].len;
    return 0;
  case OP_DEL:
    if ((k = find_key(o, key)) < 0) return BL_ENOTFOUND;
    free(o->v[k].key);
    free(o->v[k].val);
    memmove(&o->v[k], &o->v[k + 1], (o->n - (size_t)k - 1) * sizeof *o->v);
    o->n--;
    return 0;
  case OP_LEN:
    return o->n > INT32_MAX ? INT32_MAX : (int)o->n;
  case OP_APPEND:
  case OP_PUT:
    rc = push_item(o, NULL, val, h->vlen);
    pthread_cond_broadcast(&S.cv);
    return rc;
  case OP_LGET:
    if ((rc = list_index(o, h->arg, &i))) return rc;
    *rv = o->v[i].val;
    *rlen = o->v[i].len;
    return 0;
  case OP_LSET:
    if ((rc = list_index(o, h->arg, &i))) return rc;
    return replace_val(&o->v[i], val, h->vlen);
  case OP_QGET:
    if (!wait_for(&o, h->arg, has_items)) return BL_EEMPTY;
    /* The item leaves the queue: the caller frees it after copying. */
    *tofree = o->v[0].val;
    *rv = o->v[0].val;
    *rlen = o->v[0].len;
    memmove(&o->v[0], &o->v[1], (o->n - 1) * sizeof *o->v);
    o->n--;
    return 0;
  case OP_ACQUIRE:
    if (!wait_for(&o, h->arg, is_free)) return BL_ETIMEOUT;
    o->flag = 1;
    return 0;
  case OP_RELEASE:
    if (!o->flag) return BL_EOVERRELEASE;
    o->flag = 0;
    pthread_cond_broadcast(&S.cv);
    return 0;
  case OP_ESET:
    o->flag = 1;
    pthread_cond_broadcast(&S.cv);
    return 0;
  case OP_ECLEAR:
    o->flag = 0;
    return 0;
  case OP_EISSET:
    return o->flag;
  case OP_EWAIT:
    return wait_for(&o, h->arg, is_set);
  case OP_VSET:
    return replace_val(&o->v[0], val, h->vlen);
  case OP_VGET:
    *rv = o->v[0].val;
    *rlen = o->v[0].len;
    return 0;
  default:
    return -EINVAL;
  }
}

static void *serve_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  /* Mutual authentication, server first, as billiard's Listener.accept. */
  if (deliver_challenge(fd, S.key, S.klen) || answer_challenge(fd, S.key, S.klen))
    goto out;
  for (;;) {
    char *f = NULL;
    size_t flen = 0;
    if (recv_frame(fd, &f, &flen, FRAME_MAX)) break;
    struct req_hdr h;
    int32_t status;
    const void *rv = NULL;
    size_t rlen = 0;
    char *copy = NULL;
    void *tofree = NULL;
    if (flen < sizeof h) {
      free(f);
      break;
    }
    memcpy(&h, f, sizeof h);
    if ((uint64_t)sizeof h + h.klen + h.vlen != flen || h.klen > KEY_MAX) {
      free(f);
      break;
    }
    char *key = f + sizeof h, *val = key + h.klen + 1;
    /* NUL-terminate the key in place: shift the value by one byte. */
    memmove(val, key + h.klen, h.vlen);
    key[h.klen] = 0;
    if (h.op == OP_SHUTDOWN) {
      struct rep_hdr r = {0, 0};
      free(f);
      (void)send_frame(fd, &r, sizeof r, NULL, 0);
      bl__child_exit(0); /* the whole server: other threads die with it */
    }
    pthread_mutex_lock(&S.mu);
    status = handle(&h, key, val, &rv, &rlen, &tofree);
    if (rlen && !(copy = malloc(rlen))) status = -ENOMEM;
    else if (rlen) memcpy(copy, rv, rlen);
    pthread_mutex_unlock(&S.mu);
    free(tofree);
    free(f);
    if (status < 0) rlen = 0;
    struct rep_hdr r = {status, (uint32_t)rlen};
    int rc = send_frame(fd, &r, sizeof r, copy, rlen);
    free(copy);
    if (rc) break;
  }
out:
  close(fd);
  return NULL;
}

_Noreturn static void server_main(int lfd) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&S.cv, &ca);
  pthread_mutex_init(&S.mu, NULL);
  for (;;) {
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      bl__child_exit(1);
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, serve_conn, (void *)(intptr_t)c) != 0) close(c);
    pthread_attr_destroy(&a);
  }
}

/* ---- client ---- */

struct bl_manager {
  char *address; /* "@name" */
  unsigned char key[BL_MANAGER_AUTHKEY_MAX];
  size_t klen;
  pid_t server, owner; /* server pid if this handle started it, in owner */
  int started, shut;
  pthread_mutex_t mu; /* one request at a time on conn */
  int conn;
  pid_t conn_pid; /* the process that opened conn */
};

struct bl_proxy {
  bl_manager_t *m;
  uint32_t id;
  int kind;
};

BL_API void bl_manager_options_init(bl_manager_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static int make_addr(const char *address, struct sockaddr_un *sa, socklen_t *len) {
  size_t n = strlen(address);
  if (n < 2 || address[0] != '@' || n > sizeof sa->sun_path) return -EINVAL;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path + 1, address + 1, n - 1); /* abstract: leading NUL */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  return 0;
}

static bl_manager_t *mgr_alloc(const void *key, size_t klen) {
  bl_manager_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  pthread_mutex_init(&m->mu, NULL);
  m->conn = -1;
  if (key) {
    memcpy(m->key, key, klen);
    m->klen = klen;
  } else {
    m->klen = 32;
    if (getrandom(m->key, m->klen, 0) != (ssize_t)m->klen) {
      free(m);
      return NULL;
    }
  }
  return m;
}

BL_API int bl_manager_new(bl_manager_t **mp, const bl_manager_options_t *o) {
  BL_VALIDATE(mp, -EINVAL);
  *mp = NULL;
  bl_manager_options_t def;
  if (!o) {
    bl_manager_options_init(&def);
    o = &def;
  }
  BL_VALIDATE(o->size == sizeof *o, -EINVAL);
  for (size_t i = 0; i < BL__ARRAY_SIZE(o->reserved); i++)
    BL_VALIDATE(o->reserved[i] == 0, -EINVAL);
  BL_VALIDATE(!o->authkey || (o->authkey_len > 0 && o->authkey_len <= BL_MANAGER_AUTHKEY_MAX),
              -EINVAL);
  bl_manager_t *m = mgr_alloc(o->authkey, o->authkey_len);
  if (!m) return -ENOMEM;
  *mp = m;
  return 0;
}

BL_API int bl_manager_start(bl_manager_t *m) {
  BL_VALIDATE(m, -EINVAL);
  if (m->started || m->shut || m->address) return BL_ESTATE;
  unsigned char rnd[8];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return -EIO;
  char *addr = bl__asprintf("@billiard-manager-%d-%02x%02x%02x%02x%02x%02x%02x%02x",
                            (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                            rnd[5], rnd[6], rnd[7]);
  if (!addr) return -ENOMEM;
  struct sockaddr_un sa;
  socklen_t slen;
  int rc = make_addr(addr, &sa, &slen);
  int lfd = -1;
  if (rc == 0) rc = BL_FAULT("manager/start/listen", EADDRINUSE);
  if (rc == 0) {
    /* Listen before forking: once start returns, connects succeed. */
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, slen) != 0 || listen(lfd, 64) != 0)
      rc = -errno;
  }
  if (rc) {
    if (lfd >= 0) close(lfd);
    free(addr);
    return rc;
  }
  memcpy(S.key, m->key, m->klen);
  S.klen = m->klen;
  pid_t pid = bl__fork(SIGKILL);
  if (pid == 0) {
    free(addr); /* the server never returns to free it */
    server_main(lfd);
  }
  close(lfd);
  if (pid < 0) {
    free(addr);
    return (int)pid;
  }
  m->address = addr;
  m->server = pid;
  m->owner = getpid();
  m->started = 1;
  return 0;
}

/* Connect and authenticate; called with m->mu held. */
static int open_conn(bl_manager_t *m) {
  if (m->conn >= 0 && m->conn_pid == getpid()) return 0;
  /* Inherited across fork: the socket is shared with the parent's
   * process; close our copy (the parent's stays open) and use our own. */
  bl__close(&m->conn);
  struct sockaddr_un sa;
  socklen_t slen;
  int rc = make_addr(m->address, &sa, &slen);
  if (rc) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int r;
  do r = connect(fd, (struct sockaddr *)&sa, slen);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  rc = answer_challenge(fd, m->key, m->klen);
  if (rc == 0) rc = deliver_challenge(fd, m->key, m->klen);
  if (rc) {
    close(fd);
    /* A refused key arrives as #FAILURE# (BL_EAUTH); a connection that
     * breaks during the challenge is a server dying under us. */
    return rc == -EPIPE || rc == -ECONNRESET || rc == BL_EPROTOCOL ? BL_EEOF : rc;
  }
  m->conn = fd;
  m->conn_pid = getpid();
  return 0;
}

/* One request/reply. *out (malloc'd) receives a payload if out != NULL. */
static int call(bl_manager_t *m, uint8_t op, uint8_t kind, uint32_t id, int64_t arg,
                const char *key, const void *val, size_t vlen, void **out, size_t *olen) {
  size_t klen = key ? strlen(key) : 0;
  BL_VALIDATE(klen <= KEY_MAX && vlen < FRAME_MAX - KEY_MAX, -EINVAL);
  BL_VALIDATE(val || vlen == 0, -EINVAL);
  pthread_mutex_lock(&m->mu);
  int rc = 0;
  /* billiard: creating on a shut-down manager asserts "server not yet
   * started"; a proxy's call finds its connection gone. */
  if (m->shut) rc = op == OP_CREATE ? BL_ESTATE : BL_ENOTRUNNING;
  else if (!m->address) rc = BL_ESTATE;
  if (rc == 0) rc = open_conn(m);
  if (rc) goto done;
  struct req_hdr h = {op, kind, {0, 0}, id, arg, (uint32_t)klen, (uint32_t)vlen};
  char *hk = malloc(sizeof h + klen);
  if (!hk) {
    rc = -ENOMEM;
    goto done;
  }
  memcpy(hk, &h, sizeof h);
  if (klen) memcpy(hk + sizeof h, key, klen);
  rc = send_frame(m->conn, hk, sizeof h + klen, val, vlen);
  free(hk);
  char *f = NULL;
  size_t flen = 0;
  if (rc == 0) rc = recv_frame(m->conn, &f, &flen, FRAME_MAX);
  if (rc == 0) {
    struct rep_hdr r;
    if (flen < sizeof r) {
      rc = BL_EPROTOCOL;
    } else {
      memcpy(&r, f, sizeof r);
      rc = r.status;
      if (rc >= 0 && out) {
        *olen = flen - sizeof r;
        if (!(*out = malloc(*olen ? *olen : 1))) rc = -ENOMEM;
        else memcpy(*out, f + sizeof r, *olen);
      }
    }
    free(f);
  } else {
    /* A broken connection: the manager died (or closed it). Reconnect on
     * the next call, which then fails with -ECONNREFUSED if it is gone. */
    bl__close(&m->conn);
    if (rc == -EPIPE || rc == -ECONNRESET || rc == BL_EPROTOCOL) rc = BL_EEOF;
  }
done:
  pthread_mutex_unlock(&m->mu);
  return rc;
}

BL_API int bl_manager_connect(bl_manager_t **mp, const char *address,
                              const void *authkey, size_t authkey_len) {
  BL_VALIDATE(mp, -EINVAL);
  *mp = NULL;
  BL_VALIDATE(address && authkey && authkey_len > 0 &&
                  authkey_len <= BL_MANAGER_AUTHKEY_MAX, -EINVAL);
  bl_manager_t *m = mgr_alloc(authkey, authkey_len);
  if (!m) return -ENOMEM;
  if (!(m->address = bl__strdup(address))) {
    bl_manager_free(&m);
    return -ENOMEM;
  }
  pthread_mutex_lock(&m->mu);
  int rc = open_conn(m);
  pthread_mutex_unlock(&m->mu);
  if (rc) {
    bl_manager_free(&m);
    return rc;
  }
  *mp = m;
  return 0;
}

BL_API int bl_manager_shutdown(bl_manager_t *m) {
  BL_VALIDATE(m, -EINVAL);
  if (m->shut) return 0;
  if (!m->started || m->owner != getpid()) return BL_ESTATE;
  /* Ask politely, then make sure: the server must not outlive shutdown. */
  int rc = call(m, OP_SHUTDOWN, 0, 0, 0, NULL, NULL, 0, NULL, NULL);
  pthread_mutex_lock(&m->mu);
  m->shut = 1;
  bl__close(&m->conn);
  pthread_mutex_unlock(&m->mu);
  int st = 0;
  if (rc != 0) kill(m->server, SIGKILL); /* not reaped yet: still ours */
  (void)bl__waitpid(m->server, &st, 0);
  return 0;
}

BL_API void bl_manager_free(bl_manager_t **mp) {
  if (!mp || !*mp) return;
  bl_manager_t *m = *mp;
  *mp = NULL;
  if (m->started && !m->shut && m->owner == getpid()) (void)bl_manager_shutdown(m);
  bl__close(&m->conn);
  pthread_mutex_destroy(&m->mu);
  free(m->address);
  free(m);
}

BL_API const char *bl_manager_address(const bl_manager_t *m) { return m ? m->address : NULL; }
BL_API pid_t bl_manager_pid(const bl_manager_t *m) { return m && m->started ? m->server : 0; }
BL_API const void *bl_manager_authkey(const bl_manager_t *m, size_t *len) {
  if (!m) return NULL;
  if (len) *len = m->klen;
  return m->key;
}

/* ---- proxies ---- */

static int make_proxy(bl_manager_t *m, int kind, uint32_t id, bl_proxy_t **px) {
  bl_proxy_t *p = malloc(sizeof *p);
  if (!p) return -ENOMEM;
  *p = (bl_proxy_t){m, id, kind};
  *px = p;
  return 0;
}

static int create(bl_manager_t *m, int kind, bl_proxy_t **px, const void *init, size_t len) {
  BL_VALIDATE(m && px, -EINVAL);
  *px = NULL;
  int rc = call(m, OP_CREATE, (uint8_t)kind, 0, 0, NULL, init, len, NULL, NULL);
  if (rc < 0) return rc;
  return make_proxy(m, kind, (uint32_t)rc, px);
}

BL_API int bl_manager_dict(bl_manager_t *m, bl_proxy_t **px) { return create(m, K_DICT, px, NULL, 0); }
BL_API int bl_manager_list(bl_manager_t *m, bl_proxy_t **px) { return create(m, K_LIST, px, NULL, 0); }
BL_API int bl_manager_namespace(bl_manager_t *m, bl_proxy_t **px) { return create(m, K_NS, px, NULL, 0); }
BL_API int bl_manager_queue(bl_manager_t *m, bl_proxy_t **px) { return create(m, K_QUEUE, px, NULL, 0); }
BL_API int bl_manager_lock(bl_manager_t *m, bl_proxy_t **px) { return create(m, K_LOCK, px, NULL, 0); }
BL_API int bl_manager_event(bl_manager_t *m, bl_proxy_t **px) { return create(m, K_EVENT, px, NULL, 0); }
BL_API int bl_manager_value(bl_manager_t *m, bl_proxy_t **px, const void *init, size_t len) {
  return create(m, K_VALUE, px, init, len);
}

BL_API uint32_t bl_proxy_id(const bl_proxy_t *px) { return px ? px->id : 0; }

BL_API int bl_proxy_attach(bl_manager_t *m, uint32_t id, bl_proxy_t **px) {
  BL_VALIDATE(m && px, -EINVAL);
  *px = NULL;
  int rc = call(m, OP_ATTACH, 0, id, 0, NULL, NULL, 0, NULL, NULL);
  if (rc < 0) return rc;
  return make_proxy(m, rc, id, px);
}

BL_API void bl_proxy_free(bl_proxy_t **px) {
  if (!px) return;
  free(*px);
  *px = NULL;
}

#define PX(px, k) BL_VALIDATE((px) && (px)->kind == (k), -EINVAL)
#define C(px, op, arg, key, val, vlen, out, olen) \
  call((px)->m, op, (uint8_t)(px)->kind, (px)->id, arg, key, val, vlen, out, olen)

static int get_count(bl_proxy_t *px, size_t *n) {
  int rc = C(px, OP_LEN, 0, NULL, NULL, 0, NULL, NULL);
  if (rc < 0) return rc;
  *n = (size_t)rc;
  return 0;
}

BL_API int bl_dict_set(bl_proxy_t *px, const char *key, const void *val, size_t len) {
  PX(px, K_DICT);
  BL_VALIDATE(key, -EINVAL);
  return C(px, OP_SET, 0, key, val, len, NULL, NULL);
}
BL_API int bl_dict_get(bl_proxy_t *px, const char *key, void **val, size_t *len) {
  PX(px, K_DICT);
  BL_VALIDATE(key && val && len, -EINVAL);
  return C(px, OP_GET, 0, key, NULL, 0, val, len);
}
BL_API int bl_dict_del(bl_proxy_t *px, const char *key) {
  PX(px, K_DICT);
  BL_VALIDATE(key, -EINVAL);
  return C(px, OP_DEL, 0, key, NULL, 0, NULL, NULL);
}
BL_API int bl_dict_len(bl_proxy_t *px, size_t *n) {
  PX(px, K_DICT);
  BL_VALIDATE(n, -EINVAL);
  return get_count(px, n);
}

BL_API int bl_list_append(bl_proxy_t *px, const void *val, size_t len) {
  PX(px, K_LIST);
  return C(px, OP_APPEND, 0, NULL, val, len, NULL, NULL);
}
BL_API int bl_list_get(bl_proxy_t *px, long index, void **val, size_t *len) {
  PX(px, K_LIST);
  BL_VALIDATE(val && len, -EINVAL);
  return C(px, OP_LGET, index, NULL, NULL, 0, val, len);
}
BL_API int bl_list_set(bl_proxy_t *px, long index, const void *val, size_t len) {
  PX(px, K_LIST);
  return C(px, OP_LSET, index, NULL, val, len, NULL, NULL);
}
BL_API int bl_list_len(bl_proxy_t *px, size_t *n) {
  PX(px, K_LIST);
  BL_VALIDATE(n, -EINVAL);
  return get_count(px, n);
}

BL_API int bl_namespace_set(bl_proxy_t *px, const char *attr, const void *val, size_t len) {
  PX(px, K_NS);
  BL_VALIDATE(attr && *attr, -EINVAL);
  return C(px, OP_SET, 0, attr, val, len, NULL, NULL);
}
BL_API int bl_namespace_get(bl_proxy_t *px, const char *attr, void **val, size_t *len) {
  PX(px, K_NS);
  BL_VALIDATE(attr && val && len, -EINVAL);
  return C(px, OP_GET, 0, attr, NULL, 0, val, len);
}

BL_API int bl_mqueue_put(bl_proxy_t *px, const void *val, size_t len) {
  PX(px, K_QUEUE);
  return C(px, OP_PUT, 0, NULL, val, len, NULL, NULL);
}
BL_API int bl_mqueue_get(bl_proxy_t *px, void **val, size_t *len, int timeout_ms) {
  PX(px, K_QUEUE);
  BL_VALIDATE(val && len, -EINVAL);
  return C(px, OP_QGET, timeout_ms, NULL, NULL, 0, val, len);
}
BL_API int bl_mqueue_size(bl_proxy_t *px, size_t *n) {
  PX(px, K_QUEUE);
  BL_VALIDATE(n, -EINVAL);
  return get_count(px, n);
}

BL_API int bl_mlock_acquire(bl_proxy_t *px, int timeout_ms) {
  PX(px, K_LOCK);
  return C(px, OP_ACQUIRE, timeout_ms, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mlock_release(bl_proxy_t *px) {
  PX(px, K_LOCK);
  return C(px, OP_RELEASE, 0, NULL, NULL, 0, NULL, NULL);
}

BL_API int bl_mevent_set(bl_proxy_t *px) {
  PX(px, K_EVENT);
  return C(px, OP_ESET, 0, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mevent_clear(bl_proxy_t *px) {
  PX(px, K_EVENT);
  return C(px, OP_ECLEAR, 0, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mevent_is_set(bl_proxy_t *px) {
  PX(px, K_EVENT);
  return C(px, OP_EISSET, 0, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mevent_wait(bl_proxy_t *px, int timeout_ms) {
  PX(px, K_EVENT);
  return C(px, OP_EWAIT, timeout_ms, NULL, NULL, 0, NULL, NULL);
}

BL_API int bl_mvalue_set(bl_proxy_t *px, const void *val, size_t len) {
  PX(px, K_VALUE);
  return C(px, OP_VSET, 0, NULL, val, len, NULL, NULL);
}
BL_API int bl_mvalue_get(bl_proxy_t *px, void **val, size_t *len) {
  PX(px, K_VALUE);
  BL_VALIDATE(val && len, -EINVAL);
  return C(px, OP_VGET, 0, NULL, NULL, 0, val, len);
}
