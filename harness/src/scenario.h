/* scenario.h: a scenario file loaded and validated (docs/scenario-format.md). */
#ifndef BC_SCENARIO_H
#define BC_SCENARIO_H

#include <jansson.h>
#include <stdbool.h>

#include "node.h"
#include "ops.h"
#include "util.h"

/* Errors, each "path:line:col: error: message". */
typedef struct bc_diag {
  const char *path;
  bc_strv_t errors;
} bc_diag_t;
void bc_diag_at(bc_diag_t *d, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef struct bc_step bc_step_t;
struct bc_step {
  const bc_op_t *op;
  int line, col;
  json_t *args;          /* arguments (protocol durations in seconds), no expect keys */
  json_t *expect;        /* expect: {...} or NULL (protocol ops: default {ok: true}) */
  json_t *expect_result; /* expect_result: {...} or NULL */
  json_t *expect_min;    /* expect_min: {field: number, ...} or NULL */
  json_t *expect_any;    /* get_all: list of checks or NULL */
  bc_step_t *steps;      /* repeat: the nested steps */
  size_t nsteps;
};

typedef struct bc_scenario {
  char *path;        /* as given */
  char *id;          /* path relative to the nearest "scenarios" directory */
  char *description, *ref;
  int desc_line, desc_col;
  bc_strv_t features, flags, faults, start_methods, invariants, env; /* env: "K=V" */
  double timeout_s;
  bc_step_t *steps;
  size_t nsteps;
} bc_scenario_t;

/* Known features (scenarios/features.txt: "name  description" lines). */
typedef struct bc_features {
  char *path;
  bc_strv_t names;
  bool ok; /* loaded */
} bc_features_t;
int bc_features_load(bc_features_t *f, const char *path, bc_diag_t *d);
void bc_features_free(bc_features_t *f);
/* The features file for a scenario path: the first DIR/scenarios/features.txt
 * or DIR/features.txt (DIR named "scenarios") walking up from it; else the
 * source tree's. Malloc'd. */
char *bc_features_path_for(const char *scenario_path);

/* Loads and validates. Returns NULL with errors in d. features may be NULL
 * (no feature check). */
bc_scenario_t *bc_scenario_load(const char *path, const bc_features_t *features, bc_diag_t *d);
void bc_scenario_free(bc_scenario_t **sc);
char *bc_scenario_id(const char *path);
bool bc_scenario_has_flag(const bc_scenario_t *sc, const char *flag);
bool bc_scenario_has_fault(const bc_scenario_t *sc, const char *fault);
/* The source tree (compiled in; BC_SOURCE_DIR env overrides). */
const char *bc_source_dir(void);

#endif
