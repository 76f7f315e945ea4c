/* sweep.h: shared between fault-sweep's driver (sweep.c) and its workloads. */
#ifndef BL_SWEEP_H
#define BL_SWEEP_H

#include <stdarg.h>
#include <stdatomic.h>

/* Lives in a memfd mapped MAP_SHARED before the run process forks its
 * workers, so every process that hits the point counts into the same place
 * (a per-process counter would restart from the parent's count at fork). */
typedef struct sw_shared {
  atomic_long hits;   /* times the point was evaluated, all processes */
  atomic_long fired;  /* times it failed */
  long n;             /* fail the Nth hit (transient) or the Nth and later */
  int persistent;
  long jobs, ok, errors, bad; /* written by the run process only */
  atomic_long q_next, q_got, q_done; /* queue workload: consumer progress */
  int run_pid, crash_point;   /* crash points never fire in the run process */
  int fd_before, fd_after, children_left;
  char detail[1024];
} sw_shared_t;

#define SW_MAX_ACCEPT 16
typedef struct sw_accept {
  int n;
  char name[SW_MAX_ACCEPT][48];
} sw_accept_t;

int sw_accepts(const sw_accept_t *a, const char *name);
/* 0 = every check passed; writes the verdict details into *shared. */
int sw_run_workload(const char *name, sw_shared_t *shared, const sw_accept_t *acc);

#endif
