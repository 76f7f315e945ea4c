/* arena.h: memory shared with a pool's fork workers, carved into
 * page-aligned extents. A map job gathers its arguments into an extent and
 * the workers write its results there (docs/pool.md, "Shared map path"),
 * so neither travels through a pipe nor the supervisor.
 *
 * The region is one MAP_SHARED|MAP_NORESERVE mapping made before the first
 * worker starts: fork workers inherit it at the same address, spawn and
 * forkserver workers map its memfd wherever (the jobs' heads are offsets);
 * only pages that are touched cost memory. Extents come lowest address
 * first, so a pool's maps reuse the same warm pages; freed pages beyond
 * BL__ARENA_KEEP are given back to the kernel. Reference-counted: results
 * may outlive their pool. Thread-safe (its own mutex). */
#ifndef BL_ARENA_H
#define BL_ARENA_H

#include <stddef.h>
#include <stdint.h>

#ifndef BL__ARENA_SIZE
#define BL__ARENA_SIZE ((size_t)256 << 20)
#endif
#ifndef BL__ARENA_KEEP
#define BL__ARENA_KEEP ((size_t)16 << 20)
#endif

typedef struct bl__arena bl__arena_t;

/* 0, or -errno (no mapping: the pool sends everything through pipes).
 * with_fd: backed by a memfd kept open (close-on-exec), so that a
 * spawn/forkserver worker can map it too (bl__arena_fd); else anonymous,
 * for fork workers, which inherit the mapping. */
int bl__arena_new(bl__arena_t **out, size_t size, int with_fd);
/* The memfd behind the arena, or -1. */
int bl__arena_fd(const bl__arena_t *a);
void bl__arena_ref(bl__arena_t *a);
void bl__arena_unref(bl__arena_t *a);
uint8_t *bl__arena_base(const bl__arena_t *a);
size_t bl__arena_size(const bl__arena_t *a);
/* n bytes (rounded up to pages) at base + *off. 0 or -ENOMEM (full). */
int bl__arena_alloc(bl__arena_t *a, size_t n, size_t *off);
/* Give back an extent from bl__arena_alloc (same n). */
void bl__arena_free(bl__arena_t *a, size_t off, size_t n);

#endif /* BL_ARENA_H */
