/* shm.c: shared mappings (memfd + MAP_SHARED), futex waits, robust mutexes
 * with a rollback journal, and owner identity/liveness from /proc. */
#include "shm.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <billiard/clock.h>

#include "fault.h"
#include "internal.h"

/* ---- mappings ---- */

size_t bl__shm_round(size_t len) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return (len + pg - 1) / pg * pg;
}

/* This process's mappings and their memfds, to find the fd of an object
 * handed to a child. A short array: a lookup is a scan. */
typedef struct reg_ent {
  const void *base;
  int fd;
} reg_ent_t;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_ent_t *reg;
static size_t reg_n, reg_cap;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds reg_mu must not leave it locked. */
static void reg_prepare(void) { pthread_mutex_lock(&reg_mu); }
static void reg_release(void) { pthread_mutex_unlock(&reg_mu); }
static void reg_init(void) { pthread_atfork(reg_prepare, reg_release, reg_release); }

static int reg_add(const void *base, int fd) {
  pthread_once(&reg_once, reg_init);
  pthread_mutex_lock(&reg_mu);
  int rc = 0;
  if (reg_n == reg_cap) {
    size_t cap = reg_cap ? reg_cap * 2 : 16;
    reg_ent_t *r = realloc(reg, cap * sizeof *r);
    if (r) {
      reg = r;
      reg_cap = cap;
    } else {
      rc = -ENOMEM;
    }
  }
  if (rc == 0) reg[reg_n++] = (reg_ent_t){base, fd};
  pthread_mutex_unlock(&reg_mu);
  return rc;
}

/* Remove base's entry: its fd, or -1. */
static int reg_take(const void *base) {
  pthread_once(&reg_once, reg_init);
  pthread_mutex_lock(&reg_mu);
  int fd = -1;
  for (size_t i = 0; i < reg_n; i++)
    if (reg[i].base == base) {
      fd = reg[i].fd;
      reg[i] = reg[--reg_n];
      break;
    }
  if (reg_n == 0) {
    free(reg);
    reg = NULL;
    reg_cap = 0;
  }
  pthread_mutex_unlock(&reg_mu);
  return fd;
}

int bl__shm_fd(const void *base) {
  pthread_once(&reg_once, reg_init);
  pthread_mutex_lock(&reg_mu);
  int fd = -ENOENT;
  for (size_t i = 0; i < reg_n; i++)
    if (reg[i].base == base) fd = reg[i].fd;
  pthread_mutex_unlock(&reg_mu);
  return fd;
}

int bl__shm_fd_of(const void *base, uint32_t kind) {
  int fd = bl__shm_fd(base);
  bl__shm_tag_t tag;
  if (fd < 0 || bl__shm_peek(fd, &tag) != 0 || tag.kind != kind) return -EINVAL;
  return fd;
}

bl__shm_tag_t *bl__shm_tag(void *base, size_t maplen) {
  return (bl__shm_tag_t *)(void *)((char *)base + maplen - sizeof(bl__shm_tag_t));
}

static int map_fd(int fd, size_t len, void **base) {
  int rc = BL_FAULT("shm/map/mmap", ENOMEM);
  if (rc) return rc;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  rc = reg_add(p, fd);
  if (rc) {
    munmap(p, len);
    return rc;
  }
  *base = p;
  return 0;
}

int bl__shm_map(size_t len, uint32_t kind, void **base, size_t *maplen) {
  int rc = BL_FAULT("shm/create/memfd", EMFILE);
  if (rc) return rc;
  if (len > SIZE_MAX / 2) return -ENOMEM;
  size_t total = bl__shm_round(len + sizeof(bl__shm_tag_t));
  /* memfd, not shm_open: nothing ever appears in /dev/shm, so a crash
   * cannot leave a segment behind, and the fd can be passed on. */
  int fd = memfd_create("billiard", MFD_CLOEXEC);
  if (fd < 0) return -errno;
  rc = BL_FAULT("shm/size/ftruncate", ENOSPC);
  if (!rc && ftruncate(fd, (off_t)total) != 0) rc = -errno;
  if (!rc) rc = map_fd(fd, total, base);
  if (rc) {
    bl__close(&fd);
    return rc;
  }
  bl__shm_tag_t *t = bl__shm_tag(*base, total);
  t->magic = BL__SHM_MAGIC;
  t->kind = kind;
  *maplen = total;
  return 0;
}

int bl__shm_peek(int fd, bl__shm_tag_t *tag) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (size_t)st.st_size % pg != 0)
    return -EINVAL;
  off_t at = st.st_size - (off_t)sizeof *tag;
  if (pread(fd, tag, sizeof *tag, at) != (ssize_t)sizeof *tag) return -EINVAL;
  if (tag->magic != BL__SHM_MAGIC) return -EINVAL;
  return 0;
}

int bl__shm_attach(int fd, uint32_t kind, void **base, size_t *maplen) {
  bl__shm_tag_t tag;
  int rc = bl__shm_peek(fd, &tag);
  if (rc) return rc;
  if (tag.kind != kind) return -EINVAL;
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return -errno;
  rc = map_fd(own, (size_t)st.st_size, base);
  if (rc) {
    bl__close(&own);
    return rc;
  }
  *maplen = (size_t)st.st_size;
  return 0;
}

void bl__shm_unmap(void *base, size_t len) {
  if (!base) return;
  munmap(base, len);
  int fd = reg_take(base);
  bl__close(&fd);
}

/* ---- futex ---- */

int bl__futex_wait(uint32_t *w, uint32_t val, int64_t timeout_ns) {
  struct timespec ts, *tp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / (int64_t)BL__NS_PER_S);
    ts.tv_nsec = (long)(timeout_ns % (int64_t)BL__NS_PER_S);
    tp = &ts;
  }
  /* Not FUTEX_PRIVATE: the word is shared between processes. */
  if (syscall(SYS_futex, w, FUTEX_WAIT, val, tp, NULL, 0) == 0) return 0;
  if (errno == EAGAIN) return 0;
  return -errno;
}

void bl__futex_wake(uint32_t *w, int n) {
  syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

uint64_t bl__deadline(int timeout_ms) {
  if (timeout_ms < 0) return BL__FOREVER;
  return bl_monotonic_ns() + (uint64_t)timeout_ms * BL__NS_PER_MS;
}

int64_t bl__remaining(uint64_t deadline) {
  if (deadline == BL__FOREVER) return -1;
  uint64_t now = bl_monotonic_ns();
  return now >= deadline ? 0 : (int64_t)(deadline - now);
}

int64_t bl__slice(uint64_t deadline) {
  int64_t r = bl__remaining(deadline);
  return (r < 0 || r > BL__SLICE_NS) ? BL__SLICE_NS : r;
}

/* ---- robust mutex ---- */

int bl__robust_init(bl__robust_t *r) {
  pthread_mutexattr_t a;
  int e = pthread_mutexattr_init(&a);
  if (e) return -e;
  e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (!e) e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (!e) e = pthread_mutex_init(&r->mu, &a);
  pthread_mutexattr_destroy(&a);
  r->txn = 0;
  r->recoveries = 0;
  return -e;
}

int bl__robust_lock(bl__robust_t *r, void *state, const void *saved, size_t n) {
  int e = pthread_mutex_lock(&r->mu);
  if (e == 0) return 0;
  if (e != EOWNERDEAD) return -e;
  /* The previous holder died inside its critical section. If it had begun
   * changing state, undo the whole change; the journal copy is complete
   * because txn is raised only after it was written. */
  if (__atomic_load_n(&r->txn, __ATOMIC_ACQUIRE) && state && n)
    memcpy(state, saved, n);
  __atomic_store_n(&r->txn, 0, __ATOMIC_RELEASE);
  r->recoveries++;
  pthread_mutex_consistent(&r->mu);
  return 1;
}

void bl__robust_unlock(bl__robust_t *r) { pthread_mutex_unlock(&r->mu); }

void bl__robust_begin(bl__robust_t *r, const void *state, void *saved, size_t n) {
  memcpy(saved, state, n);
  /* The release store orders the journal before the flag, and the flag
   * before every later store: a holder killed at any instruction leaves
   * either txn == 0 with state untouched or txn == 1 with a full journal. */
  __atomic_store_n(&r->txn, 1, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void bl__robust_end(bl__robust_t *r) {
  __atomic_store_n(&r->txn, 0, __ATOMIC_RELEASE);
}

/* ---- identity ---- */

static __thread uint64_t tls_thread;
static __thread pid_t tls_tid;
static uint64_t proc_self;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_child(void) {
  /* Only the forking thread survives into the child; its ids changed. */
  tls_thread = 0;
  tls_tid = 0;
  __atomic_store_n(&proc_self, 0, __ATOMIC_RELAXED);
}

static void atfork_register(void) { pthread_atfork(NULL, NULL, atfork_child); }

/* Read state and start time of /proc/<id>/stat. 0, or -ENOENT when gone. */
static int proc_stat(pid_t id, char *state, unsigned long long *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)id);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -ENOENT;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return -ENOENT; /* ESRCH: the task is being torn down */
  buf[n] = 0;
  /* comm may hold spaces and parentheses: fields resume after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ') return -ENOENT;
  p += 2;
  *state = *p;
  /* Field 3 is the state; the start time is field 22. */
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  *start = p ? strtoull(p, NULL, 10) : 0;
  return 0;
}

static uint64_t make_who(pid_t id) {
  char st;
  unsigned long long start = 0;
  if (proc_stat(id, &st, &start) != 0) start = 0;
  return ((uint64_t)(uint32_t)start << 32) | (uint32_t)id;
}

pid_t bl__self_tid(void) {
  if (tls_tid) return tls_tid;
  pthread_once(&atfork_once, atfork_register);
  tls_tid = (pid_t)syscall(SYS_gettid);
  return tls_tid;
}

uint64_t bl__self_thread(void) {
  if (tls_thread) return tls_thread;
  tls_thread = make_who(bl__self_tid());
  return tls_thread;
}

uint64_t bl__self_process(void) {
  uint64_t w = __atomic_load_n(&proc_self, __ATOMIC_RELAXED);
  if (w) return w;
  pthread_once(&atfork_once, atfork_register);
  w = make_who(getpid());
  __atomic_store_n(&proc_self, w, __ATOMIC_RELAXED);
  return w;
}

/* Without /proc (not mounted), fall back to kill(id, 0): zombies and
 * recycled ids then look alive, which can delay recovery but never steals
 * from a live owner. */
static int proc_usable(void) {
  static int usable = -1;
  int u = __atomic_load_n(&usable, __ATOMIC_RELAXED);
  if (u < 0) {
    u = access("/proc/self/stat", R_OK) == 0;
    __atomic_store_n(&usable, u, __ATOMIC_RELAXED);
  }
  return u;
}

int bl__who_alive(uint64_t who) {
  pid_t id = BL__WHO_ID(who);
  if (id <= 0) return 0;
  if (!proc_usable()) return !(kill(id, 0) != 0 && errno == ESRCH);
  char st;
  unsigned long long start;
  if (proc_stat(id, &st, &start) != 0) return 0;
  /* A SIGKILLed child stays a zombie until reaped: dead for our purpose. */
  if (st == 'Z' || st == 'X' || st == 'x') return 0;
  uint32_t want = (uint32_t)(who >> 32);
  if (want && (uint32_t)start != want) return 0; /* id recycled */
  return 1;
}
