/* context.h: start methods and contexts (billiard.context): fork, spawn
 * and forkserver; get_context, set_start_method, set_executable,
 * set_forkserver_preload.
 *
 * fork (the default): the child is a fork of the caller and runs the
 *   target found by name in the registry (task.h).
 * spawn: the child is a fork that immediately re-executes the program
 *   image (/proc/self/exe, or bl_set_executable()). A constructor in
 *   libbilliard recognises the spawn child before main() runs, reads the
 *   target name, Process name and argument bytes from an inherited fd and
 *   runs the target; main() never runs in a spawn child. The C analogue of
 *   Python's "the target must be importable": REGISTER TARGETS FROM A
 *   CONSTRUCTOR in the program (__attribute__((constructor)) calling
 *   bl_register_target), so that the fresh image knows them before
 *   libbilliard's constructor looks; link libbilliard statically (or put
 *   the registrations in a shared object loaded before libbilliard) so
 *   that libbilliard's constructor runs after them. A name not registered
 *   in the new image makes bl_process_start() return BL_ENOTFOUND (the
 *   child reports it, nothing keeps running).
 * forkserver: on first use a server is started as a spawn-like re-exec of
 *   the program; it calls the preload targets (bl_set_forkserver_preload)
 *   once, then forks one child per request received over a Unix socket
 *   (the start-status fd travels with SCM_RIGHTS). Children are created
 *   with CLONE_PARENT, so they are children of the requesting process,
 *   which reaps and signals them exactly as fork children. The server
 *   exits when the process that started it exits (or at exit()).
 *
 * Thread-safety: all functions are safe to call from any thread. */
#ifndef BILLIARD_CONTEXT_H
#define BILLIARD_CONTEXT_H

#include <stddef.h>
#include <billiard/export.h>
#include <billiard/pool.h>
#include <billiard/process.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_context bl_context_t;

/* The context of a start method: "fork", "spawn", "forkserver", or NULL
 * for the default context (which fixes the start method as
 * bl_get_start_method(0) does). Contexts are static: never freed.
 * 0, -EINVAL for an unknown name (billiard: ValueError). */
BL_API int bl_get_context(const char *method, const bl_context_t **ctx);
/* The method name of a context ("fork", ...). */
BL_API const char *bl_context_start_method(const bl_context_t *ctx);
/* Initialise *o (bl_process_options_init) for a process of this context:
 * o->start_method = the context's method (ctx.Process in billiard). */
BL_API void bl_context_process_options(const bl_context_t *ctx,
                                       bl_process_options_t *o);

/* Initialise *o (bl_pool_options_init) for a pool of this context:
 * o->start_method = the context's method (ctx.Pool in billiard). */
BL_API void bl_context_pool_options(const bl_context_t *ctx,
                                    bl_pool_options_t *o);

/* Set the default start method for Processes and Pools created with
 * start_method = NULL. Once a method is set (or fixed by a call that used
 * the default), setting again without force -> BL_ESTATE (billiard:
 * RuntimeError('context has already been set')). method NULL with force
 * resets to "not set". -EINVAL for an unknown name. */
BL_API int bl_set_start_method(const char *method, int force);
/* The current default method. When none is set: NULL if allow_none, else
 * "fork" is fixed as the default and returned. The string is static. */
BL_API const char *bl_get_start_method(int allow_none);
/* NULL-terminated static list of methods available here, the default
 * first: {"fork", "spawn", "forkserver", NULL}. */
BL_API const char *const *bl_get_all_start_methods(void);

/* The program image that spawn children and the forkserver execute
 * (copied; NULL = /proc/self/exe, the default). It must be a program
 * linked with libbilliard that registers the same target names. */
BL_API int bl_set_executable(const char *path);

/* Targets (registered names) that the forkserver calls once, with no
 * argument, before it forks any child (billiard: modules it imports).
 * names is NULL-terminated and copied; NULL clears the list. Affects a
 * server started after the call. A preload name not registered in the
 * server image, or a preload returning non-zero, fails the forkserver
 * start (BL_ENOTFOUND / BL_EPROCESS from bl_process_start). */
BL_API int bl_set_forkserver_preload(const char *const *names);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_CONTEXT_H */
