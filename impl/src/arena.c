/* arena.c: extents of memory shared with a pool's workers (see arena.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "fault.h"

struct ext {
  size_t off, len;
};

struct bl__arena {
  atomic_int refs;
  int fd;            /* memfd (spawn/forkserver workers map it), or -1 */
  pthread_mutex_t mu;
  uint8_t *base;
  size_t size, page;
  struct ext *free;  /* free extents, by offset, never adjacent */
  size_t nfree, capfree;
};

/* A memfd of size bytes (sparse: nothing allocated), or -errno. */
static int arena_memfd(size_t size) {
  int e = BL_FAULT("arena/create/memfd", EMFILE);
  if (e) return -e;
  int fd = memfd_create("billiard-arena", MFD_CLOEXEC);
  if (fd < 0) return -errno;
  if (ftruncate(fd, (off_t)size) != 0) {
    e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int bl__arena_new(bl__arena_t **out, size_t size, int with_fd) {
  long pg = sysconf(_SC_PAGESIZE);
  size_t page = pg > 0 ? (size_t)pg : 4096;
  size = (size + page - 1) / page * page;
  bl__arena_t *a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  a->fd = -1;
  a->free = malloc(sizeof *a->free * 8);
  int e = a->free ? 0 : -ENOMEM;
  if (e == 0 && with_fd && (a->fd = arena_memfd(size)) < 0) e = a->fd;
  void *m = MAP_FAILED;
  if (e == 0) {
    m = mmap(NULL, size, PROT_READ | PROT_WRITE,
             with_fd ? MAP_SHARED | MAP_NORESERVE
                     : MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
             with_fd ? a->fd : -1, 0);
    if (m == MAP_FAILED) e = -errno;
  }
  if (e) {
    if (a->fd >= 0) close(a->fd);
    free(a->free);
    free(a);
    return e;
  }
  atomic_init(&a->refs, 1);
  pthread_mutex_init(&a->mu, NULL);
  a->base = m;
  a->size = size;
  a->page = page;
  a->free[0] = (struct ext){0, size};
  a->nfree = 1;
  a->capfree = 8;
  *out = a;
  return 0;
}

void bl__arena_ref(bl__arena_t *a) { atomic_fetch_add(&a->refs, 1); }

void bl__arena_unref(bl__arena_t *a) {
  if (!a || atomic_fetch_sub(&a->refs, 1) != 1) return;
  munmap(a->base, a->size);
  if (a->fd >= 0) close(a->fd);
  pthread_mutex_destroy(&a->mu);
  free(a->free);
  free(a);
}

uint8_t *bl__arena_base(const bl__arena_t *a) { return a->base; }
size_t bl__arena_size(const bl__arena_t *a) { return a->size; }
int bl__arena_fd(const bl__arena_t *a) { return a->fd; }

static size_t round_pages(const bl__arena_t *a, size_t n) {
  if (n > a->size) return 0;
  return (n + a->page - 1) / a->page * a->page;
}

int bl__arena_alloc(bl__arena_t *a, size_t n, size_t *off) {
  n = round_pages(a, n ? n : 1);
  if (!n || BL_FAULT("arena/alloc/extent", ENOMEM)) return -ENOMEM;
  int rc = -ENOMEM;
  pthread_mutex_lock(&a->mu);
  for (size_t i = 0; i < a->nfree; i++) { /* first fit: low pages stay warm */
    struct ext *e = &a->free[i];
    if (e->len < n) continue;
    *off = e->off;
    e->off += n;
    e->len -= n;
    if (!e->len) {
      memmove(e, e + 1, (a->nfree - i - 1) * sizeof *e);
      a->nfree--;
    }
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&a->mu);
  return rc;
}

void bl__arena_free(bl__arena_t *a, size_t off, size_t n) {
  n = round_pages(a, n ? n : 1);
  /* Pages far from the start are rarely reused soon: return them (the
   * extent reads as zeros if it is handed out again). */
  if (off + n > BL__ARENA_KEEP) {
    size_t from = off > BL__ARENA_KEEP ? off : BL__ARENA_KEEP;
    madvise(a->base + from, off + n - from, MADV_REMOVE);
  }
  pthread_mutex_lock(&a->mu);
  size_t i = 0;
  while (i < a->nfree && a->free[i].off < off) i++;
  int prev = i > 0 && a->free[i - 1].off + a->free[i - 1].len == off;
  int next = i < a->nfree && off + n == a->free[i].off;
  if (prev && next) {
    a->free[i - 1].len += n + a->free[i].len;
    memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof *a->free);
    a->nfree--;
  } else if (prev) {
    a->free[i - 1].len += n;
  } else if (next) {
    a->free[i].off = off;
    a->free[i].len += n;
  } else {
    if (a->nfree == a->capfree) {
      struct ext *g = realloc(a->free, 2 * a->capfree * sizeof *g);
      if (!g) { /* the extent is lost to this arena, not to the process */
        pthread_mutex_unlock(&a->mu);
        return;
      }
      a->free = g;
      a->capfree *= 2;
    }
    memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof *a->free);
    a->free[i] = (struct ext){off, n};
    a->nfree++;
  }
  pthread_mutex_unlock(&a->mu);
}
