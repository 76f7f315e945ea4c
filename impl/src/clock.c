/* clock.c: monotonic time, and the offset clock used to inject skew. */
#include <stdatomic.h>
#include <time.h>

#include <billiard/clock.h>

#include "internal.h"

BL_API uint64_t bl_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * BL__NS_PER_S + (uint64_t)ts.tv_nsec;
}

BL_API uint64_t bl_clock_now(const bl_clock_t *c) {
  if (c && c->now_ns) return c->now_ns(c->ud);
  return bl_monotonic_ns();
}

static uint64_t offset_now(void *ud) {
  bl_offset_clock_t *oc = ud;
  int64_t off = atomic_load_explicit((_Atomic int64_t *)&oc->offset_ns,
                                     memory_order_relaxed);
  int64_t t = (int64_t)bl_monotonic_ns() + off;
  uint64_t now = t < 0 ? 0 : (uint64_t)t;
  /* A monotonic clock must not go backwards: a negative jump stalls the
   * clock until real time catches up, as a time namespace would not, but
   * as every deadline computation assumes. */
  _Atomic uint64_t *last = (_Atomic uint64_t *)&oc->last_ns;
  uint64_t prev = atomic_load(last);
  while (now > prev && !atomic_compare_exchange_weak(last, &prev, now)) {
  }
  return now > prev ? now : prev;
}

BL_API void bl_offset_clock_init(bl_offset_clock_t *oc) {
  if (!oc) return;
  oc->clock.now_ns = offset_now;
  oc->clock.ud = oc;
  atomic_store((_Atomic int64_t *)&oc->offset_ns, 0);
  atomic_store((_Atomic uint64_t *)&oc->last_ns, 0);
}

BL_API void bl_offset_clock_jump(bl_offset_clock_t *oc, int64_t delta_ns) {
  if (!oc) return;
  atomic_fetch_add((_Atomic int64_t *)&oc->offset_ns, delta_ns);
}
