/* restart.c: restart-frequency limiter. Pure: no I/O, no clock, no malloc.
 *
 * Semantics of billiard's common.restart_state.step() (behaviour §6):
 *  1. if a window exists and now - T >= maxT: new window (T = now, R = 0);
 *  2. else if R >= maxR: R = 0 and trip;
 *  3. the first step opens the window (T = now); R += 1.
 * So the (maxR+1)-th counted restart inside one fixed window trips, and an
 * accepted job (bl__restart_reset) starts the count again. */
#include <stdio.h>

#include "internal.h"
#include "restart.h"

void bl__restart_init(bl__restart_t *st, unsigned max_r, uint64_t window_ns) {
  st->max_r = max_r;
  st->max_t_ns = window_ns;
  st->t_ns = 0;
  st->r = 0;
  st->has_t = 0;
}

int bl__restart_step(bl__restart_t *st, uint64_t now_ns) {
  if (st->max_r == 0) return 0;
  if (st->has_t && now_ns - st->t_ns >= st->max_t_ns) {
    testcase(now_ns - st->t_ns == st->max_t_ns);
    st->t_ns = now_ns;
    st->r = 0;
  } else if (st->r >= st->max_r) {
    testcase(st->r == st->max_r);
    st->r = 0;
    return BL_ERESTARTFREQ;
  }
  if (!st->has_t) {
    st->t_ns = now_ns;
    st->has_t = 1;
  }
  st->r++;
  return 0;
}

void bl__restart_reset(bl__restart_t *st) { st->r = 0; }

void bl__restart_message(const bl__restart_t *st, unsigned r, char *buf,
                         size_t cap) {
  snprintf(buf, cap, "%u in %gs", r, (double)st->max_t_ns / 1e9);
}
