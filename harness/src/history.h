/* history.h: the each-job-resolves-once invariant. Jobs are tracked by
 * handle: job.ready events counted, the first result.get answer kept. */
#ifndef BC_HISTORY_H
#define BC_HISTORY_H

#include <jansson.h>

typedef struct bc_history {
  json_t *jobs;  /* handle -> {"ready": n, "answer": s|null, "submitted": bool} */
  json_t *order; /* handles in first-seen order */
} bc_history_t;

void bc_history_init(bc_history_t *h);
void bc_history_free(bc_history_t *h);
void bc_history_submit(bc_history_t *h, const char *job);
void bc_history_ready(bc_history_t *h, const char *job);
/* Records an answer; -1 (and *prev = the first answer) if it differs. */
int bc_history_answer(bc_history_t *h, const char *job, const char *answer, char **prev);
size_t bc_history_count(const bc_history_t *h);
const char *bc_history_job(const bc_history_t *h, size_t i);
int bc_history_ready_count(const bc_history_t *h, const char *job);
const char *bc_history_first_answer(const bc_history_t *h, const char *job);

#endif
