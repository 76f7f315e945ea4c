/* sched.h: runs scenario x port x repeat jobs, each in its own forked
 * harness process (so runs can go in parallel and a run's subreaper and
 * private /dev/shm stay its own); serial-flagged scenarios run alone. */
#ifndef BC_SCHED_H
#define BC_SCHED_H

#include "runner.h"

typedef struct bc_job {
  const bc_scenario_t *sc;
  const bc_port_t *port;
  unsigned repeat;
  const char *method; /* start method, NULL = the port's default */
} bc_job_t;

typedef void (*bc_on_result_fn)(json_t *rec, void *ctx); /* rec: borrowed */

/* Returns 0, or -EINTR when interrupted (SIGINT/SIGTERM). */
int bc_schedule(const bc_job_t *jobs, size_t n, unsigned parallel, const bc_run_opts_t *o,
                bc_on_result_fn cb, void *ctx);

#endif
