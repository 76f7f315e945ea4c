/* task.h: the registry of named functions that children run.
 *
 * Names, not pointers, cross into children, so that start methods which
 * re-exec the program (spawn, forkserver) can find the same function.
 * Register every function before starting processes or pools. */
#ifndef BILLIARD_TASK_H
#define BILLIARD_TASK_H

#include <stddef.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A Process target: runs in the child; its return value is the exit code
 * (0..255). arg/len are the bytes given at creation (len may be 0). */
typedef int (*bl_target_fn)(const void *arg, size_t len);

/* Opaque per-job context handed to pool tasks; see <billiard/pool.h>. */
typedef struct bl_task_ctx bl_task_ctx_t;
/* A Pool task: returns 0 after bl_task_return(), or a failure made with
 * bl_task_fail() (see <billiard/pool.h>). */
typedef int (*bl_task_fn)(bl_task_ctx_t *ctx, const void *arg, size_t len);

/* Register fn under name (copied; at most BL_TASK_NAME_MAX bytes).
 * -EEXIST when the name is taken by another function, -EINVAL on bad input,
 * -ENOMEM. Registering the same (name, fn) again is a no-op returning 0. */
#define BL_TASK_NAME_MAX 128
BL_API int bl_register_target(const char *name, bl_target_fn fn);
BL_API int bl_register_task(const char *name, bl_task_fn fn);

/* Look a name up: 0 and *fn set, or BL_ENOTFOUND. */
BL_API int bl_lookup_target(const char *name, bl_target_fn *fn);
BL_API int bl_lookup_task(const char *name, bl_task_fn *fn);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_TASK_H */
