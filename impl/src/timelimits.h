/* timelimits.h: soft and hard deadlines of the job a worker runs. */
#ifndef BL_TIMELIMITS_H
#define BL_TIMELIMITS_H

#include <stdint.h>

typedef enum { BL__TL_NONE = 0, BL__TL_SOFT, BL__TL_HARD } bl__tl_action_t;

#define BL__TL_NEVER UINT64_MAX

/* One running job's limits, on the supervisor's clock. */
typedef struct bl__tl {
  uint64_t soft_at, hard_at;  /* BL__TL_NEVER = none */
  int soft_fired, hard_fired;
} bl__tl_t;

/* Limits start now (ms; 0 = none). Equal limits: only the hard one. */
void bl__tl_start(bl__tl_t *tl, uint64_t now_ns, uint32_t soft_ms,
                  uint32_t hard_ms);
void bl__tl_stop(bl__tl_t *tl);
/* What is due at now_ns, at most once each; hard is checked first, and a
 * due hard limit swallows a soft one due at the same time. */
bl__tl_action_t bl__tl_due(bl__tl_t *tl, uint64_t now_ns);
/* The next pending deadline, or BL__TL_NEVER. */
uint64_t bl__tl_next(const bl__tl_t *tl);
/* Milliseconds from now until deadline for epoll_wait: rounded up so a
 * limit is never checked early, 0 if due, -1 for BL__TL_NEVER, capped at
 * cap_ms when cap_ms >= 0. */
int bl__tl_timeout_ms(uint64_t deadline, uint64_t now_ns, int cap_ms);

#endif /* BL_TIMELIMITS_H */
