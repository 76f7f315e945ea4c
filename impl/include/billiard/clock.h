/* clock.h: the injectable monotonic clock.
 *
 * Deadlines (time limits, restart windows, lost-worker grace) are computed
 * from a bl_clock_t so that tests and the conformance harness can skew or
 * step monotonic time, which libfaketime cannot do on its own. */
#ifndef BILLIARD_CLOCK_H
#define BILLIARD_CLOCK_H

#include <stdint.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_clock {
  /* Nanoseconds on a monotonic timeline; must never go backwards. */
  uint64_t (*now_ns)(void *ud);
  void *ud;
} bl_clock_t;

/* Time from c, or CLOCK_MONOTONIC when c is NULL. */
BL_API uint64_t bl_clock_now(const bl_clock_t *c);
/* CLOCK_MONOTONIC in nanoseconds. */
BL_API uint64_t bl_monotonic_ns(void);

/* A clock that is the real monotonic clock plus an adjustable offset, for
 * skew injection: bl_offset_clock_init(&oc); o.clock = &oc.clock;
 * bl_offset_clock_jump(&oc, 5 * 1000000000LL) moves it 5 s ahead. The
 * offset never makes the clock go backwards below its last reading. */
typedef struct bl_offset_clock {
  bl_clock_t clock;
  int64_t offset_ns;   /* accessed atomically */
  uint64_t last_ns;    /* accessed atomically */
} bl_offset_clock_t;

BL_API void bl_offset_clock_init(bl_offset_clock_t *oc);
BL_API void bl_offset_clock_jump(bl_offset_clock_t *oc, int64_t delta_ns);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_CLOCK_H */
