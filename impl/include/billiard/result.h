/* result.h: the asynchronous result of a pool job (billiard's ApplyResult
 * and MapResult).
 *
 * A result is resolved exactly once, with a value or an error. The pool and
 * the caller each hold a reference; bl_result_free() drops the caller's, so
 * a result may be freed before or after it resolves, and outlives its pool.
 * All functions are thread-safe. */
#ifndef BILLIARD_RESULT_H
#define BILLIARD_RESULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <billiard/errors.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_result bl_result_t;

/* Per-job callbacks (see bl_apply_options_t in <billiard/pool.h>). */
typedef void (*bl_result_cb)(bl_result_t *r, const void *value, size_t len,
                             void *user);
typedef void (*bl_error_cb)(bl_result_t *r, const bl_error_info_t *err,
                            void *user);
typedef void (*bl_accept_cb)(bl_result_t *r, pid_t pid, void *user);

/* Wait up to timeout_ms (< 0 = forever) and return the job's outcome:
 * 0 with *value, *len (owned by r, valid until bl_result_free; for map jobs
 * *value is NULL and *len the item count, see bl_result_item), or the job's
 * error code with err (if non-NULL) filled with a copy the caller clears
 * with bl_error_info_clear(). BL_ETIMEOUT when not ready in time: nothing
 * is consumed, call again. value/len/err may be NULL. */
BL_API int bl_result_get(bl_result_t *r, int timeout_ms, const void **value,
                         size_t *len, bl_error_info_t *err);
/* Wait up to timeout_ms: 0 = ready, BL_ETIMEOUT otherwise. */
BL_API int bl_result_wait(bl_result_t *r, int timeout_ms);
/* 1 when resolved, else 0. */
BL_API int bl_result_ready(const bl_result_t *r);
/* 1 = succeeded, 0 = failed, BL_ESTATE when not ready (billiard's
 * AssertionError). */
BL_API int bl_result_successful(const bl_result_t *r);
/* 1 once a worker accepted the job (map: every chunk), else 0. */
BL_API int bl_result_accepted(const bl_result_t *r);
/* Pid of the worker that accepted the job (map: the last chunk accepted),
 * 0 before. */
BL_API pid_t bl_result_worker_pid(const bl_result_t *r);
/* The job id (one counter per process, from 0 as in billiard). */
BL_API uint64_t bl_result_job_id(const bl_result_t *r);
/* Map results: the item count, and item i (0 and *value, *len owned by r, or
 * BL_ESTATE when the job has not succeeded, -ERANGE for a bad index). */
BL_API size_t bl_result_count(const bl_result_t *r);
BL_API int bl_result_item(const bl_result_t *r, size_t i, const void **value,
                          size_t *len);
/* Drop the caller's reference; *r = NULL. */
BL_API void bl_result_free(bl_result_t **r);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_RESULT_H */
