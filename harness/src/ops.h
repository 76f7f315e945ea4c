/* ops.h: the vocabulary of scenarios: step operations (the ONE op table),
 * the task catalogue, events, fault classes, flags, invariants, signals.
 * Source of truth: harness/INTERPRETING.md §4-§6 and docs/scenario-format.md. */
#ifndef BC_OPS_H
#define BC_OPS_H

#include <stdbool.h>

typedef enum {
  BC_H_PROTOCOL = 0, /* sent to the driver */
  BC_H_WAIT_EVENT,
  BC_H_EXPECT_EVENTS,
  BC_H_NO_EVENT,
  BC_H_KILL_WORKER,
  BC_H_STOP_WORKER,
  BC_H_CONT_WORKER,
  BC_H_KILL_PROCESS,
  BC_H_SLEEP,
  BC_H_MARK,
  BC_H_EXPECT_ELAPSED,
  BC_H_WALL_JUMP,
  BC_H_SUBMIT_MANY,
  BC_H_GET_ALL,
  BC_H_CHAOS,
  BC_H_REPEAT,
} bc_hop_t;

typedef struct bc_op {
  const char *name;
  bc_hop_t hop;          /* BC_H_PROTOCOL for driver operations */
  const char *args;      /* harness ops: allowed arguments, space-separated;
                            a trailing "*" also allows event match fields */
  const char *required;  /* harness ops: required arguments */
  const char *shorthand; /* harness ops: what a scalar value stands for */
  bool makes_job;        /* protocol ops whose ok reply creates a job handle */
} bc_op_t;

const bc_op_t *bc_op_find(const char *name);
const bc_op_t *bc_op_at(unsigned i); /* NULL past the end */

/* NULL-terminated catalogues. */
extern const char *const bc_tasks[];          /* pool tasks + initializer tasks */
extern const char *const bc_targets[];        /* process.start targets */
extern const char *const bc_events[];
extern const char *const bc_fault_classes[];
extern const char *const bc_flags[];
extern const char *const bc_invariants[];
extern const char *const bc_top_keys[];
extern const char *const bc_required_top_keys[];
extern const char *const bc_duration_keys[];  /* protocol args holding durations */
extern const char *const bc_handle_keys[];    /* protocol args naming handles */

bool bc_in_list(const char *const *list, const char *s);
char *bc_list_join(const char *const *list); /* "a, b, c" (malloc'd) */
int bc_signal_number(const char *name);      /* "SIGKILL"/"KILL"/"9" -> 9; -1 if unknown */
const char *bc_signal_name(int sig);

#endif
