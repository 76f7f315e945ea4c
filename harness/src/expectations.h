/* expectations.h: per-port expectations (harness/expectations/<port>.yaml):
 * known failures and skips, each with a reason. */
#ifndef BC_EXPECTATIONS_H
#define BC_EXPECTATIONS_H

#include "scenario.h"

typedef struct bc_expect_entry {
  char *id, *reason;
  int line, col;
} bc_expect_entry_t;

typedef struct bc_expectations {
  char *path, *port;
  bc_expect_entry_t *known, *skip;
  size_t nknown, nskip;
} bc_expectations_t;

/* Loads and validates one file (errors into d). 0 or negative. */
int bc_expectations_load(bc_expectations_t *e, const char *path, bc_diag_t *d);
void bc_expectations_free(bc_expectations_t *e);
/* The reason for scenario id under start method (NULL = unknown): an entry
 * "id@method" for that method, else "id"; NULL if not listed. */
const char *bc_expectations_known(const bc_expectations_t *e, const char *id, const char *method);
const char *bc_expectations_skip(const bc_expectations_t *e, const char *id, const char *method);
/* Lint: every entry names an existing scenario (ROOT/id). */
void bc_expectations_lint(const bc_expectations_t *e, const char *scenarios_root, bc_diag_t *d);

#endif
