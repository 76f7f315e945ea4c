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

enum kind {
  K_DICT = 1, K_LIST, K_NS, K_QUEUE, K_LOCK, K_EVENT, K_VALUE, K_RLOCK, K_SEM,
  K_BSEM, K_COND, K_BARRIER, K_ARRAY, K_CUSTOM
};
enum op {
  OP_CREATE = 1, OP_ATTACH, OP_SET, OP_GET, OP_DEL, OP_LEN, OP_APPEND, OP_LGET,
  OP_LSET, OP_PUT, OP_QGET, OP_ACQUIRE, OP_RELEASE, OP_ESET, OP_ECLEAR,
  OP_EISSET, OP_EWAIT, OP_VSET, OP_VGET, OP_SHUTDOWN, OP_TASKDONE, OP_QJOIN,
  OP_CWAIT, OP_NOTIFY, OP_BWAIT, OP_BABORT, OP_BRESET, OP_BINFO, OP_CALL, OP_KEYS
};

#define KEY_MAX 4096
#define ARRAY_MAX (1u << 20)
#define TYPES_MAX BL_MANAGER_TYPES_MAX
#define BARRIER_DEFAULT INT64_MIN /* wait: the barrier's own timeout */
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
  /* HMAC fails only when OpenSSL cannot allocate: not an auth failure. */
  if (!HMAC(EVP_sha256(), key, (int)klen, msg + sizeof CHALLENGE - 1, NONCE, want, &wlen))
    return -ENOMEM;
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
  unsigned char *hm = HMAC(EVP_sha256(), key, (int)klen,
                           (unsigned char *)msg + sizeof CHALLENGE - 1,
                           mlen - (sizeof CHALLENGE - 1), d, &dlen);
  free(msg);
  if (!hm) return -ENOMEM;
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
/* A Condition waiter, on the heap: S.objs moves, waiters must not. */
struct waiter {
  int notified;
  struct waiter *next;
};
struct obj {
  uint32_t id;
  int kind, flag;          /* lock held / event set / barrier broken */
  struct item *v;          /* items: dict, list, namespace, queue, value, array */
  size_t n, cap;
  int64_t count, bound;    /* semaphore value and bound; barrier parties */
  uint64_t owner;          /* RLock / Condition: owning connection */
  int64_t depth;           /* RLock / Condition recursion depth; barrier count */
  uint64_t gen, epoch;     /* barrier: trips, breaks and resets */
  int64_t unfinished;      /* queue: puts not yet task_done */
  int64_t timeout_ms;      /* barrier default timeout (< 0 none) */
  struct waiter *waiters;  /* Condition */
  const struct utype *type; /* K_CUSTOM */
  void *state;              /* K_CUSTOM */
};

/* ---- registered types (bl_manager_register): process-global, copied
 * into the server when it forks ---- */
struct utype {
  char name[BL_MANAGER_TYPEID_MAX + 1];
  bl_manager_type_t t;
};
static struct utype types[TYPES_MAX];
static size_t ntypes;
static pthread_mutex_t types_mu = PTHREAD_MUTEX_INITIALIZER;

static const struct utype *find_type(const char *name) {
  for (size_t i = 0; i < ntypes; i++)
    if (strcmp(types[i].name, name) == 0) return &types[i];
  return NULL;
}

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

/* Predicates for wait_for; ctx is the waiting request's context. */
struct wctx {
  uint64_t cid;          /* the connection */
  int fd;                /* its socket: a waiter whose client is gone stops */
  struct waiter *w;      /* Condition wait */
  uint64_t gen, epoch;   /* barrier wait */
};
static int has_items(const struct obj *o, const struct wctx *c) { (void)c; return o->n > 0; }
static int has_room(const struct obj *o, const struct wctx *c) {
  (void)c;
  return o->bound <= 0 || (int64_t)o->n < o->bound;
}
static int is_free(const struct obj *o, const struct wctx *c) { (void)c; return !o->flag; }
static int is_set(const struct obj *o, const struct wctx *c) { (void)c; return o->flag; }
static int sem_free(const struct obj *o, const struct wctx *c) { (void)c; return o->count > 0; }
static int all_done(const struct obj *o, const struct wctx *c) { (void)c; return o->unfinished == 0; }
static int rlock_free(const struct obj *o, const struct wctx *c) {
  return o->depth == 0 || o->owner == c->cid;
}
static int notified(const struct obj *o, const struct wctx *c) { (void)o; return c->w->notified; }
static int barrier_moved(const struct obj *o, const struct wctx *c) {
  return o->gen != c->gen || o->epoch != c->epoch;
}

/* The client of a waiting request closed its connection (it died): it
 * sends nothing while it waits, so anything readable is its EOF. */
static int client_gone(int fd) {
  char b;
  ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int ts_before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

#define GONE_CHECK_MS 100

/* Wait on S.cv (S.mu held) until pred holds for object id: 1 when it
 * does, 0 at the deadline (timeout_ms 0: no wait; < 0: forever), BL_EEOF
 * when the client went away meanwhile (checked every GONE_CHECK_MS), so a
 * dead client takes no item, lock or notification. S.objs may move while
 * we wait (realloc on create), so *o is looked up again. */
static int wait_for(struct obj **o, int64_t timeout_ms,
                    int (*pred)(const struct obj *, const struct wctx *),
                    const struct wctx *c) {
  uint32_t id = (*o)->id;
  struct timespec dl = deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
  int slept = 0;
  while (!pred(*o, c)) {
    if (timeout_ms == 0) return 0;
    struct timespec slice = deadline_after(GONE_CHECK_MS);
    int last = timeout_ms >= 0 && !ts_before(&slice, &dl);
    int w = pthread_cond_timedwait(&S.cv, &S.mu, last ? &dl : &slice);
    slept = 1;
    *o = find_obj(id);
    if (w != ETIMEDOUT || pred(*o, c)) continue;
    if (last) return 0;
    if (client_gone(c->fd)) return BL_EEOF;
  }
  /* Woken for a client that died meanwhile: leave the item (lock, ...)
   * to the other waiters, who were woken too. */
  return slept && client_gone(c->fd) ? BL_EEOF : 1;
}

/* A wait's outcome as a status: 0, timeout_code, or BL_EEOF. */
static int waited(int w, int timeout_code) { return w > 0 ? 0 : w == 0 ? timeout_code : w; }

static int list_index(struct obj *o, int64_t i, size_t *out) {
  if (i < 0) i += (int64_t)o->n;
  if (i < 0 || (uint64_t)i >= o->n) return -ERANGE;
  *out = (size_t)i;
  return 0;
}

static void free_items(struct obj *o) {
  for (size_t i = 0; i < o->n; i++) {
    free(o->v[i].key);
    free(o->v[i].val);
  }
  free(o->v);
  o->v = NULL;
  o->n = o->cap = 0;
}

/* Initialise the new object *o of kind h->kind (not yet counted in S.n). */
static int init_obj(struct obj *o, const struct req_hdr *h, const char *key,
                    const char *val) {
  int rc = 0;
  switch (h->kind) {
  case K_VALUE:
    return push_item(o, NULL, val, h->vlen);
  case K_QUEUE:
    if (h->arg < 0 || h->arg > INT32_MAX) return -EINVAL;
    o->bound = h->arg; /* maxsize, 0: unbounded */
    return 0;
  case K_SEM:
  case K_BSEM:
    if (h->arg < 0 || h->arg > INT32_MAX) return -EINVAL;
    o->count = o->bound = h->arg;
    return 0;
  case K_BARRIER:
    if (h->arg < 1 || h->arg > INT32_MAX || h->vlen != sizeof o->timeout_ms) return -EINVAL;
    o->bound = h->arg;
    memcpy(&o->timeout_ms, val, sizeof o->timeout_ms);
    return 0;
  case K_ARRAY:
    if (h->arg < 0 || h->arg > ARRAY_MAX) return -EINVAL;
    for (int64_t i = 0; rc == 0 && i < h->arg; i++) rc = push_item(o, NULL, val, h->vlen);
    if (rc) free_items(o);
    return rc;
  case K_CUSTOM: {
    const struct utype *t = find_type(key);
    if (!t) return BL_ENOTFOUND;
    o->type = t;
    rc = t->t.create(val, h->vlen, &o->state);
    return rc > 0 ? 0 : rc;
  }
  default:
    return h->kind >= K_DICT && h->kind <= K_CUSTOM ? 0 : -EINVAL;
  }
}

static int create_obj(const struct req_hdr *h, const char *key, const char *val) {
  if (S.n == S.cap) {
    size_t nc = S.cap ? S.cap * 2 : 16;
    struct obj *no = realloc(S.objs, nc * sizeof *no);
    if (!no) return -ENOMEM;
    S.objs = no;
    S.cap = nc;
  }
  static uint32_t next_id;
  struct obj *o = &S.objs[S.n];
  *o = (struct obj){.id = next_id + 1, .kind = h->kind};
  int rc = init_obj(o, h, key, val);
  if (rc) return rc;
  next_id++;
  S.n++;
  return (int)o->id;
}

/* RLock / Condition lock: reentrant, owned by the connection. */
static int rlock_acquire(struct obj **o, int64_t timeout_ms, const struct wctx *c) {
  int rc = waited(wait_for(o, timeout_ms, rlock_free, c), BL_ETIMEOUT);
  if (rc) return rc;
  (*o)->owner = c->cid;
  (*o)->depth++;
  return 0;
}

static int rlock_release(struct obj *o, uint64_t cid) {
  if (o->depth == 0 || o->owner != cid) return BL_EOVERRELEASE;
  if (--o->depth == 0) {
    o->owner = 0;
    pthread_cond_broadcast(&S.cv);
  }
  return 0;
}

/* threading.Condition.wait: release the lock fully, wait for a notify,
 * take the lock back at the same depth. 1 notified, 0 timed out. */
static int cond_wait(struct obj **o, int64_t timeout_ms, struct wctx *c) {
  if ((*o)->depth == 0 || (*o)->owner != c->cid) return BL_ESTATE;
  struct waiter *w = calloc(1, sizeof *w), **tail;
  if (!w) return -ENOMEM;
  for (tail = &(*o)->waiters; *tail; tail = &(*tail)->next) {
  }
  *tail = w; /* FIFO: notify wakes the longest waiting first */
  int64_t depth = (*o)->depth;
  (*o)->depth = 0;
  (*o)->owner = 0;
  pthread_cond_broadcast(&S.cv);
  c->w = w;
  int r = wait_for(o, timeout_ms, notified, c);
  for (tail = &(*o)->waiters; *tail != w; tail = &(*tail)->next) {
  }
  *tail = w->next;
  if (r < 0 && w->notified) /* gone: hand its notification on */
    for (struct waiter *x = (*o)->waiters; x; x = x->next)
      if (!x->notified) {
        x->notified = 1;
        pthread_cond_broadcast(&S.cv);
        break;
      }
  free(w);
  if (r < 0) return r; /* the lock is not taken back for a dead client */
  int rc = waited(wait_for(o, -1, rlock_free, c), BL_ETIMEOUT);
  if (rc) return rc;
  (*o)->owner = c->cid;
  (*o)->depth = depth;
  return r;
}

static int cond_notify(struct obj *o, int64_t n, uint64_t cid) {
  if (o->depth == 0 || o->owner != cid) return BL_ESTATE;
  for (struct waiter *w = o->waiters; w && (n < 0 || n > 0); w = w->next)
    if (!w->notified) {
      w->notified = 1;
      n--;
    }
  pthread_cond_broadcast(&S.cv);
  return 0;
}

/* threading.Barrier: gen counts trips, epoch breaks and resets. */
static void barrier_break(struct obj *o, int broken) {
  o->flag = broken;
  o->epoch++;
  o->depth = 0;
  pthread_cond_broadcast(&S.cv);
}

static int barrier_wait(struct obj **o, int64_t timeout_ms, struct wctx *c) {
  if ((*o)->flag) return BL_EBROKENBARRIER;
  if (timeout_ms == BARRIER_DEFAULT) timeout_ms = (*o)->timeout_ms;
  int idx = (int)(*o)->depth++;
  if ((*o)->depth == (*o)->bound) {
    (*o)->depth = 0;
    (*o)->gen++;
    pthread_cond_broadcast(&S.cv);
    return idx;
  }
  c->gen = (*o)->gen;
  c->epoch = (*o)->epoch;
  /* timeout 0 must still wait for no one: threading breaks it at once. */
  int moved = wait_for(o, timeout_ms, barrier_moved, c);
  if ((*o)->gen != c->gen) return idx; /* tripped, even if broken since */
  if (moved < 0) { /* its client is gone: the party leaves */
    if ((*o)->epoch == c->epoch) (*o)->depth--;
    return moved;
  }
  if (!moved) barrier_break(*o, 1);
  return BL_EBROKENBARRIER;
}

static int custom_call(struct obj *o, const char *method, const char *val, size_t vlen,
                       const void **rv, size_t *rlen, void **tofree) {
  const bl_manager_type_t *t = &o->type->t;
  for (size_t i = 0; i < t->nmethods; i++) {
    if (strcmp(t->methods[i].name, method) != 0) continue;
    void *out = NULL;
    size_t olen = 0;
    int rc = t->methods[i].fn(o->state, val, vlen, &out, &olen);
    if (rc < 0) {
      free(out);
      return rc;
    }
    *tofree = out;
    *rv = out;
    *rlen = out ? olen : 0;
    return rc;
  }
  return BL_ENOTFOUND;
}

/* The keys in insertion order, NUL-terminated one after the other. */
static int dict_keys(const struct obj *o, const void **rv, size_t *rlen, void **tofree) {
  size_t n = 0;
  for (size_t i = 0; i < o->n; i++) n += strlen(o->v[i].key) + 1;
  if (n == 0) return 0;
  char *buf = malloc(n), *p = buf;
  if (!buf) return -ENOMEM;
  for (size_t i = 0; i < o->n; i++) {
    size_t l = strlen(o->v[i].key) + 1;
    memcpy(p, o->v[i].key, l);
    p += l;
  }
  *rv = *tofree = buf;
  *rlen = n;
  return o->n > INT32_MAX ? INT32_MAX : (int)o->n;
}

/* Which kinds an op applies to (the client checks too; this keeps a
 * confused peer from reaching, e.g., a Value's item 0 on a dict). */
static int op_fits(int op, int kind) {
  switch (op) {
  case OP_SET: case OP_GET: return kind == K_DICT || kind == K_NS;
  case OP_DEL: case OP_KEYS: return kind == K_DICT;
  case OP_LEN: return kind == K_DICT || kind == K_LIST || kind == K_QUEUE || kind == K_ARRAY;
  case OP_APPEND: return kind == K_LIST;
  case OP_LGET: case OP_LSET: return kind == K_LIST || kind == K_ARRAY;
  case OP_PUT: case OP_QGET: case OP_TASKDONE: case OP_QJOIN: return kind == K_QUEUE;
  case OP_ACQUIRE: case OP_RELEASE:
    return kind == K_LOCK || kind == K_RLOCK || kind == K_SEM || kind == K_BSEM || kind == K_COND;
  case OP_CWAIT: case OP_NOTIFY: return kind == K_COND;
  case OP_BWAIT: case OP_BABORT: case OP_BRESET: case OP_BINFO: return kind == K_BARRIER;
  case OP_ESET: case OP_ECLEAR: case OP_EISSET: case OP_EWAIT: return kind == K_EVENT;
  case OP_VSET: case OP_VGET: return kind == K_VALUE;
  case OP_CALL: return kind == K_CUSTOM;
  default: return 0;
  }
}

/* Handle one request with S.mu held. *rv and *rlen: a reply payload pointing
 * into the object (copied out by the caller before unlocking). */
static int handle(const struct req_hdr *h, uint64_t cid, int fd, const char *key, const char *val,
                  const void **rv, size_t *rlen, void **tofree) {
  if (h->op == OP_CREATE) return create_obj(h, key, val);
  struct obj *o = find_obj(h->id);
  if (!o) return BL_ENOTFOUND;
  if (h->op == OP_ATTACH) return o->kind;
  if (h->kind != o->kind || !op_fits(h->op, o->kind)) return -EINVAL;
  struct wctx c = {.cid = cid, .fd = fd};
  size_t i = 0;
  long k;
  int rc;
  static int64_t info[3];
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
  case OP_PUT:
    if ((rc = waited(wait_for(&o, h->arg, has_room, &c), BL_EFULL))) return rc;
    /* fall through */
  case OP_APPEND:
    rc = push_item(o, NULL, val, h->vlen);
    if (rc == 0 && h->op == OP_PUT) o->unfinished++;
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
    if ((rc = waited(wait_for(&o, h->arg, has_items, &c), BL_EEMPTY))) return rc;
    /* The item leaves the queue: the caller frees it after copying. */
    *tofree = o->v[0].val;
    *rv = o->v[0].val;
    *rlen = o->v[0].len;
    memmove(&o->v[0], &o->v[1], (o->n - 1) * sizeof *o->v);
    o->n--;
    pthread_cond_broadcast(&S.cv); /* room for a blocked put */
    return 0;
  case OP_TASKDONE:
    if (o->unfinished <= 0) return BL_EOVERRELEASE;
    if (--o->unfinished == 0) pthread_cond_broadcast(&S.cv);
    return 0;
  case OP_QJOIN:
    return waited(wait_for(&o, h->arg, all_done, &c), BL_ETIMEOUT);
  case OP_ACQUIRE:
    if (o->kind == K_RLOCK || o->kind == K_COND) return rlock_acquire(&o, h->arg, &c);
    if (o->kind == K_SEM || o->kind == K_BSEM) {
      if ((rc = waited(wait_for(&o, h->arg, sem_free, &c), BL_ETIMEOUT))) return rc;
      o->count--;
      return 0;
    }
    if ((rc = waited(wait_for(&o, h->arg, is_free, &c), BL_ETIMEOUT))) return rc;
    o->flag = 1;
    return 0;
  case OP_RELEASE:
    if (o->kind == K_RLOCK || o->kind == K_COND) return rlock_release(o, cid);
    if (o->kind == K_SEM || o->kind == K_BSEM) {
      if (o->kind == K_BSEM && o->count >= o->bound) return BL_EOVERRELEASE;
      if (o->count == INT32_MAX) return -EOVERFLOW;
      o->count++;
      pthread_cond_broadcast(&S.cv);
      return 0;
    }
    if (!o->flag) return BL_EOVERRELEASE;
    o->flag = 0;
    pthread_cond_broadcast(&S.cv);
    return 0;
  case OP_CWAIT:
    return cond_wait(&o, h->arg, &c);
  case OP_NOTIFY:
    return cond_notify(o, h->arg, cid);
  case OP_BWAIT:
    return barrier_wait(&o, h->arg, &c);
  case OP_BABORT:
    barrier_break(o, 1);
    return 0;
  case OP_BRESET:
    barrier_break(o, 0);
    return 0;
  case OP_BINFO:
    info[0] = o->bound;
    info[1] = o->flag ? 0 : o->depth;
    info[2] = o->flag;
    *rv = info;
    *rlen = sizeof info;
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
    return wait_for(&o, h->arg, is_set, &c);
  case OP_VSET:
    return replace_val(&o->v[0], val, h->vlen);
  case OP_VGET:
    *rv = o->v[0].val;
    *rlen = o->v[0].len;
    return 0;
  case OP_CALL:
    return custom_call(o, key, val, h->vlen, rv, rlen, tofree);
  case OP_KEYS:
    return dict_keys(o, rv, rlen, tofree);
  default:
    return -EINVAL;
  }
}

static void *serve_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  /* Mutual authentication, server first, as billiard's Listener.accept. */
  if (deliver_challenge(fd, S.key, S.klen) || answer_challenge(fd, S.key, S.klen))
    goto out;
  /* The connection is the owner of RLocks and Conditions, as the server
   * thread serving it is in billiard. */
  static uint64_t next_cid;
  pthread_mutex_lock(&S.mu);
  uint64_t cid = ++next_cid;
  pthread_mutex_unlock(&S.mu);
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
    status = handle(&h, cid, fd, key, val, &rv, &rlen, &tofree);
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
  pid_t mu_pid;   /* the process mu belongs to (lock_handle) */
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
  m->mu_pid = getpid();
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

/* Lock m->mu. A child forked while another thread of its parent was in a
 * call on m inherited mu locked by a thread it does not have: the first
 * use in a new process re-initialises it (the child's copy only; the
 * parent's connection is never touched there, see open_conn). remu is
 * only ever taken in such a child, for its first call. */
static pthread_mutex_t remu = PTHREAD_MUTEX_INITIALIZER;
static void lock_handle(bl_manager_t *m) {
  pid_t me = getpid();
  if (__atomic_load_n(&m->mu_pid, __ATOMIC_ACQUIRE) != me) {
    pthread_mutex_lock(&remu);
    if (m->mu_pid != me) {
      pthread_mutex_init(&m->mu, NULL);
      __atomic_store_n(&m->mu_pid, me, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&remu);
  }
  pthread_mutex_lock(&m->mu);
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
  lock_handle(m);
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
  lock_handle(m);
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
  lock_handle(m);
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
  if (m->mu_pid == getpid()) /* a child's copy may be locked (lock_handle) */
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
BL_API int bl_dict_keys(bl_proxy_t *px, char ***keys, size_t *n) {
  PX(px, K_DICT);
  BL_VALIDATE(keys && n, -EINVAL);
  *keys = NULL;
  *n = 0;
  void *out = NULL;
  size_t len = 0;
  int rc = C(px, OP_KEYS, 0, NULL, NULL, 0, &out, &len);
  if (rc < 0) return rc;
  size_t count = 0;
  for (size_t i = 0; i < len; i++) count += ((char *)out)[i] == 0;
  /* One block: the pointer array, then the strings it points into. */
  char **k = malloc((count + 1) * sizeof *k + len);
  if (!k) {
    free(out);
    return -ENOMEM;
  }
  char *p = (char *)(k + count + 1);
  if (len) memcpy(p, out, len);
  free(out);
  for (size_t i = 0; i < count; i++) {
    k[i] = p;
    p += strlen(p) + 1;
  }
  k[count] = NULL;
  *keys = k;
  *n = count;
  return 0;
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
  return bl_mqueue_put_wait(px, val, len, -1);
}
BL_API int bl_mqueue_put_wait(bl_proxy_t *px, const void *val, size_t len, int timeout_ms) {
  PX(px, K_QUEUE);
  return C(px, OP_PUT, timeout_ms, NULL, val, len, NULL, NULL);
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

/* ---- the rest of SyncManager's types ---- */

static int create_arg(bl_manager_t *m, int kind, int64_t arg, const char *key,
                      bl_proxy_t **px, const void *init, size_t len) {
  BL_VALIDATE(m && px, -EINVAL);
  *px = NULL;
  int rc = call(m, OP_CREATE, (uint8_t)kind, 0, arg, key, init, len, NULL, NULL);
  if (rc < 0) return rc;
  return make_proxy(m, kind, (uint32_t)rc, px);
}

BL_API int bl_manager_joinable_queue(bl_manager_t *m, bl_proxy_t **px) {
  return create(m, K_QUEUE, px, NULL, 0);
}
BL_API int bl_manager_queue_bounded(bl_manager_t *m, bl_proxy_t **px, int maxsize) {
  BL_VALIDATE(maxsize >= 0, -EINVAL);
  return create_arg(m, K_QUEUE, maxsize, NULL, px, NULL, 0);
}
BL_API int bl_mqueue_task_done(bl_proxy_t *px) {
  PX(px, K_QUEUE);
  return C(px, OP_TASKDONE, 0, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mqueue_join(bl_proxy_t *px, int timeout_ms) {
  PX(px, K_QUEUE);
  return C(px, OP_QJOIN, timeout_ms, NULL, NULL, 0, NULL, NULL);
}

BL_API int bl_manager_rlock(bl_manager_t *m, bl_proxy_t **px) {
  return create(m, K_RLOCK, px, NULL, 0);
}
BL_API int bl_manager_semaphore(bl_manager_t *m, bl_proxy_t **px, int value) {
  BL_VALIDATE(value >= 0, -EINVAL);
  return create_arg(m, K_SEM, value, NULL, px, NULL, 0);
}
BL_API int bl_manager_bounded_semaphore(bl_manager_t *m, bl_proxy_t **px, int value) {
  BL_VALIDATE(value >= 0, -EINVAL);
  return create_arg(m, K_BSEM, value, NULL, px, NULL, 0);
}

static int is_acquirer(const bl_proxy_t *px) {
  return px && (px->kind == K_LOCK || px->kind == K_RLOCK || px->kind == K_SEM ||
                px->kind == K_BSEM || px->kind == K_COND);
}
BL_API int bl_macquire(bl_proxy_t *px, int timeout_ms) {
  BL_VALIDATE(is_acquirer(px), -EINVAL);
  return C(px, OP_ACQUIRE, timeout_ms, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mrelease(bl_proxy_t *px) {
  BL_VALIDATE(is_acquirer(px), -EINVAL);
  return C(px, OP_RELEASE, 0, NULL, NULL, 0, NULL, NULL);
}

BL_API int bl_manager_condition(bl_manager_t *m, bl_proxy_t **px) {
  return create(m, K_COND, px, NULL, 0);
}
BL_API int bl_mcond_wait(bl_proxy_t *px, int timeout_ms) {
  PX(px, K_COND);
  return C(px, OP_CWAIT, timeout_ms, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mcond_notify(bl_proxy_t *px, int n) {
  PX(px, K_COND);
  return C(px, OP_NOTIFY, n, NULL, NULL, 0, NULL, NULL);
}

BL_API int bl_manager_barrier(bl_manager_t *m, bl_proxy_t **px, int parties, int timeout_ms) {
  BL_VALIDATE(parties > 0, -EINVAL);
  int64_t t = timeout_ms < 0 ? -1 : timeout_ms;
  return create_arg(m, K_BARRIER, parties, NULL, px, &t, sizeof t);
}
BL_API int bl_mbarrier_wait(bl_proxy_t *px, int timeout_ms) {
  PX(px, K_BARRIER);
  int64_t t = timeout_ms == BL_MANAGER_BARRIER_DEFAULT ? BARRIER_DEFAULT
              : timeout_ms < 0                         ? -1
                                                       : timeout_ms;
  return C(px, OP_BWAIT, t, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mbarrier_abort(bl_proxy_t *px) {
  PX(px, K_BARRIER);
  return C(px, OP_BABORT, 0, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mbarrier_reset(bl_proxy_t *px) {
  PX(px, K_BARRIER);
  return C(px, OP_BRESET, 0, NULL, NULL, 0, NULL, NULL);
}
BL_API int bl_mbarrier_info(bl_proxy_t *px, int *parties, int *n_waiting, int *broken) {
  PX(px, K_BARRIER);
  void *out = NULL;
  size_t n = 0;
  int rc = C(px, OP_BINFO, 0, NULL, NULL, 0, &out, &n);
  if (rc < 0) return rc;
  int64_t v[3] = {0, 0, 0};
  if (n != sizeof v) rc = BL_EPROTOCOL;
  else memcpy(v, out, sizeof v);
  free(out);
  if (parties) *parties = (int)v[0];
  if (n_waiting) *n_waiting = (int)v[1];
  if (broken) *broken = (int)v[2];
  return rc;
}

BL_API int bl_manager_array(bl_manager_t *m, bl_proxy_t **px, size_t n, const void *fill,
                            size_t fill_len) {
  BL_VALIDATE(n <= ARRAY_MAX, -EINVAL);
  return create_arg(m, K_ARRAY, (int64_t)n, NULL, px, fill, fill_len);
}
BL_API int bl_marray_get(bl_proxy_t *px, long index, void **val, size_t *len) {
  PX(px, K_ARRAY);
  BL_VALIDATE(val && len, -EINVAL);
  return C(px, OP_LGET, index, NULL, NULL, 0, val, len);
}
BL_API int bl_marray_set(bl_proxy_t *px, long index, const void *val, size_t len) {
  PX(px, K_ARRAY);
  return C(px, OP_LSET, index, NULL, val, len, NULL, NULL);
}
BL_API int bl_marray_len(bl_proxy_t *px, size_t *n) {
  PX(px, K_ARRAY);
  BL_VALIDATE(n, -EINVAL);
  return get_count(px, n);
}

/* ---- user types ---- */

BL_API void bl_manager_type_init(bl_manager_type_t *t) {
  if (!t) return;
  memset(t, 0, sizeof *t);
  t->size = sizeof *t;
}

BL_API int bl_manager_register(const char *typeid, const bl_manager_type_t *t) {
  BL_VALIDATE(typeid && *typeid && strlen(typeid) <= BL_MANAGER_TYPEID_MAX, -EINVAL);
  BL_VALIDATE(t && t->size == sizeof *t && t->create, -EINVAL);
  BL_VALIDATE(t->methods || t->nmethods == 0, -EINVAL);
  for (size_t i = 0; i < BL__ARRAY_SIZE(t->reserved); i++)
    BL_VALIDATE(t->reserved[i] == 0, -EINVAL);
  for (size_t i = 0; i < t->nmethods; i++)
    BL_VALIDATE(t->methods[i].name && t->methods[i].fn &&
                    strlen(t->methods[i].name) <= KEY_MAX, -EINVAL);
  pthread_mutex_lock(&types_mu);
  struct utype *u = (struct utype *)find_type(typeid);
  int rc = 0;
  if (!u && ntypes == TYPES_MAX) rc = -ENOSPC;
  else if (!u) u = &types[ntypes++];
  if (u) {
    snprintf(u->name, sizeof u->name, "%s", typeid);
    u->t = *t;
  }
  pthread_mutex_unlock(&types_mu);
  return rc;
}

BL_API int bl_manager_create(bl_manager_t *m, const char *typeid, const void *arg, size_t len,
                             bl_proxy_t **px) {
  BL_VALIDATE(typeid && *typeid && strlen(typeid) <= BL_MANAGER_TYPEID_MAX, -EINVAL);
  return create_arg(m, K_CUSTOM, 0, typeid, px, arg, len);
}

BL_API int bl_proxy_call(bl_proxy_t *px, const char *method, const void *in, size_t inlen,
                         void **out, size_t *outlen) {
  PX(px, K_CUSTOM);
  BL_VALIDATE(method && *method && (!out) == (!outlen), -EINVAL);
  void *o = NULL;
  size_t n = 0;
  int rc = C(px, OP_CALL, 0, method, in, inlen, &o, &n);
  if (rc >= 0 && out) {
    *out = o;
    *outlen = n;
  } else {
    free(o);
  }
  return rc;
}
