/* report.h: what a run tells people: live progress, the closing summary,
 * and --json / --junit / --tap / --report (HTML) outputs. */
#ifndef BC_REPORT_H
#define BC_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runner.h"

typedef struct bc_report {
  json_t *recs; /* every record, in completion order */
  size_t total, done;
  bool tap, verbose, tty; /* tty: a live counter line under the progress */
  unsigned counts[BC_OUTCOMES];
  FILE *out;
} bc_report_t;

void bc_report_init(bc_report_t *r, size_t total, bool tap, bool verbose);
void bc_report_free(bc_report_t *r);
void bc_report_add(bc_report_t *r, json_t *rec); /* prints the progress line */
/* Detail line, then "N passed, N failed, N skipped". Returns the exit code. */
int bc_report_summary(bc_report_t *r, uint64_t seed);
int bc_report_json(const bc_report_t *r, const char *path);
int bc_report_junit(const bc_report_t *r, const char *path);
int bc_report_html(const bc_report_t *r, const char *dir, uint64_t seed);
void bc_report_sort(bc_report_t *r); /* by scenario, port, repeat */

/* "port/start_method" (or "port" for a record without a method): the
 * column a run belongs to in the terminal line and the HTML matrix. */
char *bc_report_column(const json_t *rec);

#endif
