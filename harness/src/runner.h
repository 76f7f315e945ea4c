/* runner.h: runs one scenario on one port once and judges it. The result is
 * a JSON record (see harness/README.md) so it can cross a pipe from the
 * per-run process to the scheduler and go straight into the reports. */
#ifndef BC_RUNNER_H
#define BC_RUNNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "expectations.h"
#include "scenario.h"

#include "proto.h" /* BC_PROTOCOL */

typedef enum {
  BC_PASS, BC_FAIL, BC_XFAIL, BC_XPASS, BC_SKIP, BC_TIMEOUT, BC_CRASH, BC_OUTCOMES
} bc_outcome_t;
const char *bc_outcome_name(bc_outcome_t o);
int bc_outcome_parse(const char *s); /* -1 if unknown */
bool bc_outcome_bad(bc_outcome_t o); /* fail, xpass, timeout, crash */

typedef struct bc_port {
  char *name;   /* "c", "python-billiard", ...; for --port-cmd: "cmd" until the hello */
  char **argv;  /* NULL-terminated, owned */
  bool is_c;    /* the C driver (ASan runtime first in LD_PRELOAD for libfaketime) */
  bool from_cmd;
} bc_port_t;

typedef struct bc_run_opts {
  uint64_t seed;
  double multiplier;
  bool verbose;
  const char *asan_runtime; /* prepended to LD_PRELOAD for the C port, or NULL */
  /* The expectations of a port (NULL if none): skips are honoured before a
   * named port starts, or after the hello for a --port-cmd port. */
  const bc_expectations_t *(*expectations)(const char *port);
} bc_run_opts_t;

/* Runs and returns the record: {protocol, scenario, port, repeat, outcome,
 * duration_ms, message, start_method?, step?, expected?, got?, stderr?, impl?,
 * timeline[]}.
 * The outcome is raw (pass/fail/skip/timeout/crash); expectations are
 * applied by bc_apply_expectations(). */
/* method: the start method to run under (sent as start_method with pool.new
 * and process.start; a skip if the port or the scenario lacks it), or NULL
 * for the port's default (its first announced method, recorded). */
json_t *bc_run_scenario(const bc_scenario_t *sc, const bc_port_t *port, unsigned repeat,
                        const char *method, const bc_run_opts_t *o);
/* pass->xpass / fail,timeout,crash->xfail for known failures. */
void bc_apply_expectations(json_t *rec, const bc_expectations_t *e);

#endif
