/* process.h: billiard.Process: run a registered target in a child process.
 *
 * A process runs a target registered with bl_register_target() (task.h),
 * found BY NAME in the child, with a copy of the bytes given at creation.
 * The start method is fork unless options choose "spawn" or "forkserver"
 * (or bl_set_start_method() changed the default, <billiard/context.h>);
 * every method finds the target by name in the child.
 *
 * Exit codes follow billiard: the target's return value (0..255), or -N
 * when the child was killed by signal N (-9 after SIGKILL, -15 after
 * terminate()).
 *
 * Thread-safety: join, is_alive, exitcode, terminate, kill and the getters
 * may be called concurrently on one process from several threads. new,
 * start, close and free must not race with any other call on the same
 * process. The set of started processes (for bl_process_teardown) is
 * guarded internally. Children are created with PR_SET_PDEATHSIG(SIGKILL):
 * Linux sends it when the creating THREAD exits, so start processes from
 * a thread that outlives them. See docs/process.md. */
#ifndef BILLIARD_PROCESS_H
#define BILLIARD_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_process bl_process_t;

typedef struct bl_process_options {
  size_t size;              /* set by bl_process_options_init() */
  const char *name;         /* NULL = "Process-N" (N: per-parent counter); copied */
  int daemon;               /* non-zero: terminated by bl_process_teardown() */
  const char *start_method; /* NULL = default (fork), "fork", "spawn", "forkserver" */
  int term_grace_ms;        /* teardown: SIGTERM, then SIGKILL after this; 0 = 1000 */
  uint64_t reserved[8];     /* must stay zero */
} bl_process_options_t;

/* Zero *o, set the defaults and o->size. */
BL_API void bl_process_options_init(bl_process_options_t *o);

/* Create an unstarted process that will run target(arg, len). target and
 * arg are copied (arg may be NULL when len is 0); o may be NULL for the
 * defaults. The name counter advances here, like billiard's constructor.
 * 0, -EINVAL (bad options, skipped _init, non-zero reserved, unknown
 * start method), -EMSGSIZE (len above 1 GiB), -ENOMEM, BL_ENOTSUPPORTED
 * (spawn/forkserver in a build without the start-method layer). On error *p
 * is NULL. */
BL_API int bl_process_new(bl_process_t **p, const char *target, const void *arg,
                          size_t len, const bl_process_options_t *o);

/* ---- handing shared objects to the child ----
 * The C analogue of passing a Queue or Lock in a billiard Process's args:
 * name the objects before start, and the child maps each one anew from
 * the fds it receives, whatever the start method (fork included: the same
 * code runs in every child). Nothing is shared by address. The child gets
 * an object back with the attach function of its kind, by index:
 * bl_queue_attach(), bl_lock_attach(), bl_semaphore_attach(),
 * bl_event_attach(), bl_condition_attach(), bl_barrier_attach(),
 * bl_value_attach(), bl_conn_attach(). See docs/sync.md. */
typedef enum bl_handle_kind {
  BL_HANDLE_QUEUE = 1,     /* bl_queue_t: Queue, JoinableQueue, SimpleQueue */
  BL_HANDLE_LOCK = 2,      /* bl_lock_t made by bl_lock_new/bl_rlock_new */
  BL_HANDLE_SEMAPHORE = 3, /* bl_semaphore_t (bounded or not) */
  BL_HANDLE_EVENT = 4,     /* bl_event_t */
  BL_HANDLE_CONDITION = 5, /* bl_condition_t */
  BL_HANDLE_BARRIER = 6,   /* bl_barrier_t (the action is not passed) */
  BL_HANDLE_VALUE = 7,     /* bl_value_t: Value, Array, RawValue, RawArray */
  BL_HANDLE_CONNECTION = 8 /* bl_conn_t (a Pipe end): its fd */
} bl_handle_kind_t;

/* Pass obj (of kind) to p's child; before bl_process_start. Returns the
 * object's index in the child's handle table (0, 1, ... in call order), or:
 * -EINVAL (NULL, unknown kind, or obj not a shareable object of that kind,
 * e.g. the lock inside a Value or Condition: pass the owner instead),
 * BL_ECLOSED (a closed queue or connection), BL_ESTATE (already started), -E2BIG (more
 * than 32 handles), -errno. A Value or Condition made with a borrowed lock
 * takes two indices: the lock follows it (and can be attached on its own).
 * p holds its own reference to each object's memory until start succeeds
 * (the caller may free obj meanwhile). */
BL_API int bl_process_add_handle(bl_process_t *p, bl_handle_kind_t kind,
                                 const void *obj);

/* In a child: how many handles it was given (0 in a process not started
 * by bl_process_start), and the kind at index: bl_handle_kind_t, or -ERANGE
 * (no such index). */
BL_API int bl_process_handle_count(void);
BL_API int bl_process_handle_kind(size_t index);

/* Fork the child. Returns only after the child has found its target, so
 * a failure in the child (BL_ENOTFOUND for an unregistered name) or while
 * starting (fork, pipe, pidfd: -errno) is returned here; the process is
 * then left unstarted with nothing running and may be started again.
 * A second successful start -> BL_ESTATE ("cannot start a process twice");
 * start in a child of the creating process -> BL_ESTATE. */
BL_API int bl_process_start(bl_process_t *p);

/* Wait for the child to exit and reap it. timeout_ms < 0 waits forever.
 * 0 when it has exited (also on a repeated join), BL_ETIMEOUT when it is
 * still running (join may be called again), BL_ESTATE for an unstarted or
 * closed process, for joining oneself, or from a process other than the
 * parent ("can only join a child process"). */
BL_API int bl_process_join(bl_process_t *p, int timeout_ms);

/* 1 while started and not yet exited, else 0 (reaps an exited child).
 * BL_ESTATE from a process other than the parent. */
BL_API int bl_process_is_alive(bl_process_t *p);

/* Once the child has exited: 0 and *code (exit status, or -signal). Polls
 * and reaps without blocking. BL_ESTATE while not started or running. */
BL_API int bl_process_exitcode(bl_process_t *p, int *code);

BL_API pid_t bl_process_pid(const bl_process_t *p);       /* 0 before start */
BL_API const char *bl_process_name(const bl_process_t *p); /* owned by p */
BL_API int bl_process_daemon(const bl_process_t *p);

/* The child's pidfd: becomes readable (POLLIN) when the child exits, as
 * billiard's sentinel. Owned by p (closed by close/free); -1 before start
 * or after close. */
BL_API int bl_process_sentinel(const bl_process_t *p);

/* Send SIGTERM / SIGKILL through the pidfd. 0 when sent, and also 0 when
 * the child has already exited or been reaped (billiard ignores that
 * case): the pidfd never reaches a recycled pid. BL_ESTATE before start or
 * after close. */
BL_API int bl_process_terminate(bl_process_t *p);
BL_API int bl_process_kill(bl_process_t *p);

/* Release the pidfd and the child's bookkeeping; the object stays valid
 * for the getters. BL_ESTATE ("Cannot close a process while it is still
 * running") if the child has not exited; unstarted or exited -> 0. */
BL_API int bl_process_close(bl_process_t *p);

/* Free *p and set it to NULL. A still-running child is left running (it
 * will die by PDEATHSIG with its creator; kill and join it first). */
BL_API void bl_process_free(bl_process_t **p);

/* Tear down this process's set: SIGTERM every live daemon child, SIGKILL
 * those still alive after their grace, and reap them all. Non-daemon
 * children are left alone. Also runs at exit() (atexit) and in a child
 * after its target returns (like billiard's _exit_function). Returns how
 * many daemon children were torn down. */
BL_API int bl_process_teardown(void);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_PROCESS_H */
