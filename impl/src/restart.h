/* restart.h: the restart-frequency limiter (billiard's restart_state). */
#ifndef BL_RESTART_H
#define BL_RESTART_H

#include <stddef.h>
#include <stdint.h>

/* State: R counted restarts in the window that started at T. */
typedef struct bl__restart {
  unsigned max_r;     /* 0 = the limiter is off */
  uint64_t max_t_ns;  /* window length */
  uint64_t t_ns;      /* window start; valid when has_t */
  unsigned r;
  int has_t;
} bl__restart_t;

void bl__restart_init(bl__restart_t *st, unsigned max_r, uint64_t window_ns);
/* Count one restart at now_ns: 0, or BL_ERESTARTFREQ when it is the
 * (max_r+1)-th in the current window (R is then reset to 0). */
int bl__restart_step(bl__restart_t *st, uint64_t now_ns);
/* A job was accepted: the pool works, forget counted restarts. */
void bl__restart_reset(bl__restart_t *st);
/* billiard's message '%r in %rs', e.g. "2 in 10s" or "3 in 0.5s". */
void bl__restart_message(const bl__restart_t *st, unsigned r, char *buf,
                         size_t cap);

#endif /* BL_RESTART_H */
