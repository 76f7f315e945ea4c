/* timelimits.c: soft and hard time limits. Pure: no I/O, no clock.
 *
 * The supervisor stamps a job's deadlines with its own clock when the
 * worker's ACK arrives (the job has started), never from a worker's clock,
 * so a worker's clock skew cannot move them (billiard mixes clocks, §15). */
#include "internal.h"
#include "timelimits.h"

static uint64_t add_ms(uint64_t now, uint32_t ms) {
  return ms ? now + (uint64_t)ms * BL__NS_PER_MS : BL__TL_NEVER;
}

void bl__tl_start(bl__tl_t *tl, uint64_t now_ns, uint32_t soft_ms,
                  uint32_t hard_ms) {
  tl->soft_at = add_ms(now_ns, soft_ms);
  tl->hard_at = add_ms(now_ns, hard_ms);
  /* billiard checks hard first: a soft limit not before the hard one is
   * never signalled. */
  if (tl->soft_at >= tl->hard_at) tl->soft_at = BL__TL_NEVER;
  tl->soft_fired = tl->hard_fired = 0;
}

void bl__tl_stop(bl__tl_t *tl) {
  tl->soft_at = tl->hard_at = BL__TL_NEVER;
  tl->soft_fired = tl->hard_fired = 0;
}

bl__tl_action_t bl__tl_due(bl__tl_t *tl, uint64_t now_ns) {
  if (tl->hard_at != BL__TL_NEVER && !tl->hard_fired && now_ns >= tl->hard_at) {
    testcase(now_ns == tl->hard_at);
    tl->hard_fired = 1;
    tl->soft_fired = 1;
    return BL__TL_HARD;
  }
  if (tl->soft_at != BL__TL_NEVER && !tl->soft_fired && now_ns >= tl->soft_at) {
    testcase(now_ns == tl->soft_at);
    tl->soft_fired = 1;
    return BL__TL_SOFT;
  }
  return BL__TL_NONE;
}

uint64_t bl__tl_next(const bl__tl_t *tl) {
  uint64_t n = BL__TL_NEVER;
  if (!tl->soft_fired && tl->soft_at < n) n = tl->soft_at;
  if (!tl->hard_fired && tl->hard_at < n) n = tl->hard_at;
  return n;
}

int bl__tl_timeout_ms(uint64_t deadline, uint64_t now_ns, int cap_ms) {
  if (deadline == BL__TL_NEVER) return cap_ms;
  if (deadline <= now_ns) return 0;
  uint64_t ms = (deadline - now_ns + BL__NS_PER_MS - 1) / BL__NS_PER_MS;
  if (cap_ms >= 0 && ms > (uint64_t)cap_ms) return cap_ms;
  if (ms > 0x7fffffff) ms = 0x7fffffff;
  return (int)ms;
}
