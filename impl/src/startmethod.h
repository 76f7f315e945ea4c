/* startmethod.h: the start-method layer behind Process and the pool's
 * workers: method resolution (context.c), spawn's re-exec (spawn.c), the
 * forkserver client (forkserver.c). Never installed. */
#ifndef BL_STARTMETHOD_H
#define BL_STARTMETHOD_H

#include <stddef.h>
#include <sys/types.h>

enum bl__method { BL__M_FORK = 0, BL__M_SPAWN = 1, BL__M_FORKSERVER = 2 };

/* name NULL -> the default method (fixing it, like billiard's default
 * context); else the named one. The method, or -EINVAL. */
int bl__method_resolve(const char *name);
const char *bl__method_name(int method);

/* Copies of the settings (free() them); NULL when unset. */
char *bl__context_executable(void);
/* NULL-terminated malloc'd array of malloc'd names (bl__strv_free), or
 * NULL when empty. */
char **bl__context_preload(void);
void bl__strv_free(char **v);

/* The bootstrap a spawn or forkserver child needs: what to run. */
typedef struct bl__boot {
  const char *target, *name;
  /* The Process identity ("3", "3:1"; NULL or "" = none): the child's own
   * children are named Process-<ident>:N, as a fork child's are. */
  const char *ident;
  const void *arg;
  size_t len;
  pid_t parent; /* the process that started it (bl_parent_process) */
  /* Fds the child gets at the same numbers (a pool worker's pipes, a
   * Connection): kept across spawn's exec, sent by SCM_RIGHTS to the
   * forkserver. They arrive close-on-exec, as bl__pipe made them. */
  const int *fds;
  size_t nfds; /* at most BL__BOOT_MAX_FDS */
} bl__boot_t;
#define BL__BOOT_MAX_FDS 32

/* Serialise b into one malloc'd buffer / parse it back into *b, whose
 * strings live in *owned (malloc'd, NUL-terminated; free it after use).
 * 0, -ENOMEM, BL_EPROTOCOL. */
int bl__boot_encode(const bl__boot_t *b, void **buf, size_t *len);
int bl__boot_decode(const void *buf, size_t len, bl__boot_t *b, char **owned);
/* In a started child: look the target up, report on status_w (int32 0 or
 * the error), record the Process identity, run, tear down, exit. buf is
 * freed before the target runs' exit. Never returns. */
_Noreturn void bl__boot_run(const bl__boot_t *b, int status_w, void *buf);
/* Re-execute the program image with the environment variable marker
 * ("NAME=value") added; on failure write -errno to status_w and exit. */
_Noreturn void bl__exec_self(const char *marker, int status_w);
/* The forkserver's main loop, entered from spawn.c's constructor in the
 * re-executed server image. Never returns. */
_Noreturn void bl__forkserver_main(int sock, int status_w);

/* The pool's worker loop as a boot target (worker.c): bl__boot_run runs
 * it for this reserved name without a registry lookup. arg: the worker's
 * settings and fds (supervisor.c encodes, worker.c decodes). */
#define BL__POOL_WORKER_TARGET "billiard.pool.worker"
int bl__pool_worker_target(const void *arg, size_t len);

/* In a child just made by bl__fork (spawn): re-execute the program image
 * so that libbilliard's constructor runs b's target there. Under the
 * death-pipe fallback (no pidfds) the child's own death pipe is passed
 * along with b's fds, so the parent sees it alive until it really exits. status_w is
 * the start-status fd: the new image writes an int32 0 once it found the
 * target (then runs it), or its error (BL_ENOTFOUND); an exec failure is
 * written here as -errno. Never returns. */
_Noreturn void bl__spawn_exec(const bl__boot_t *b, int status_w);

/* Ask this process's forkserver (started on first use) for a child that
 * runs b; it reports its start status on status_w (as above; the fd is
 * passed to the server and may be closed by the caller afterwards). The
 * child is a child of the caller (CLONE_PARENT): reap it with waitpid,
 * watch it with a pidfd (there is no death-pipe fallback: valgrind, the
 * only place without pidfds, refuses CLONE_PARENT anyway). It has no
 * parent-death signal: its parent thread is whichever thread started the
 * server, so it outlives its starter as Python's forkserver children do
 * (a pool worker still leaves at EOF on its task pipe).
 * 0 and *pid, or -errno / BL_ENOTFOUND / BL_EPROCESS (server start). */
int bl__forkserver_start(const bl__boot_t *b, int status_w, pid_t *pid);
/* Stop the server (also done at exit). Returns its pid before, 0 if none. */
pid_t bl__forkserver_stop(void);
pid_t bl__forkserver_pid(void);

#endif /* BL_STARTMETHOD_H */
