/* bcd.h: internals of bc-driver-c, the billiard-conform driver of the C port.
 *
 * The driver speaks protocol v1 (harness/INTERPRETING.md) on stdin/stdout and
 * exposes libbilliard through its public headers only. Commands run one at a
 * time in the main thread; pools call back on their supervisor threads, so
 * output goes through one mutex and the job table through another. */
#ifndef BCD_H
#define BCD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include <billiard/billiard.h>

#define BCD_PROTOCOL 1

/* ---- errors of one command ---- */
typedef struct bcd_err {
  char type[96];      /* billiard exception name, or "Unsupported" */
  char message[512];
  const char *code;   /* "BL_E..." or NULL */
} bcd_err_t;

/* Set e and return NULL (for use as `return bcd_fail(...)`). */
json_t *bcd_fail(bcd_err_t *e, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A libbilliard failure: rc's exception name (info's type when it has one),
 * info's message, else `what: bl_strerror(rc)`. Returns NULL. */
json_t *bcd_fail_rc(bcd_err_t *e, int rc, const bl_error_info_t *info,
                    const char *what);
json_t *bcd_unsupported(bcd_err_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- handles ---- */
typedef enum bcd_kind {
  BCD_POOL = 1, BCD_JOB, BCD_ITER, BCD_PROCESS, BCD_CONN, BCD_QUEUE,
  BCD_LOCK, BCD_EVENT, BCD_COND, BCD_BARRIER, BCD_VALUE, BCD_ARRAY,
  BCD_MANAGER, BCD_PROXY, BCD_KIND_MAX
} bcd_kind_t;

typedef struct bcd_handle {
  char *name;
  bcd_kind_t kind;
  void *obj;                      /* the record of that kind */
  void (*destroy)(void *obj);     /* teardown, run in kind order */
  struct bcd_handle *next;
} bcd_handle_t;

typedef struct bcd_pool {
  char *name;
  bl_pool_t *pool;
} bcd_pool_t;

typedef struct bcd_job {
  char *name;
  bcd_pool_t *pool;
  bl_result_t *r;
  int is_map;
  /* Under bcd.lock: written by the callbacks on the supervisor thread. */
  uint64_t id;
  int has_id;
  pid_t pid;                      /* last worker that accepted it, 0 = none */
  int busy;                       /* accepted and not yet ready */
  int ready;
  struct bcd_job *next;           /* bcd.jobs */
} bcd_job_t;

typedef struct bcd_driver {
  pthread_mutex_t out_lock;       /* whole lines on stdout */
  pthread_mutex_t lock;           /* job table (callbacks vs main thread) */
  uint64_t t0_ns;                 /* hello time, real CLOCK_MONOTONIC */
  bl_offset_clock_t clock;        /* given to every pool: clock.jump */
  bcd_handle_t *handles;
  bcd_job_t *jobs;
  unsigned nanon;                 /* invented handle names */
  int timens;                     /* clock.worker_offset applied */
  int npools, nprocesses;
} bcd_driver_t;

extern bcd_driver_t bcd;

/* ---- output ---- */
/* Write msg (stolen) as one line on stdout, adding "v". */
void bcd_emit(json_t *msg);
/* An event: fields (stolen, may be NULL) plus "event" and "t". */
void bcd_event(const char *name, json_t *fields);
void bcd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- arguments ---- */
const char *bcd_str(const json_t *a, const char *key);
int bcd_has(const json_t *a, const char *key);     /* present and not null */
double bcd_num(const json_t *a, const char *key, double dflt);
int bcd_bool(const json_t *a, const char *key, int dflt);
/* Seconds -> ms, clamped to [0, INT_MAX]. */
int bcd_ms(double seconds);
/* Timeout argument: absent -> dflt, null -> -1 (forever), else ms. */
int bcd_timeout_ms(const json_t *a, const char *key, int dflt);
/* Signal name ("SIGKILL", "KILL") or number; -1 if unknown. */
int bcd_signum(const json_t *v);
/* args as JSON text (malloc'd; "{}" for NULL). */
char *bcd_dump(const json_t *v);
/* Parse a task's JSON text result (len 0 -> null). NULL if malformed. */
json_t *bcd_parse(const void *buf, size_t len);
/* A JSON string of arbitrary bytes (invalid UTF-8 replaced). */
json_t *bcd_bytes_json(const void *buf, size_t len);
/* Protocol byte payload: a string or {"repeat":s,"n":N} -> malloc'd bytes. */
int bcd_payload(const json_t *v, char **out, size_t *len);
/* {"len":N,"sha256":hex} */
json_t *bcd_digest(const void *buf, size_t len);
void bcd_sha256_hex(const void *buf, size_t len, char hex[65]);

/* ---- handles ---- */
/* The name for a new handle: args "as", else an invented one (malloc'd).
 * NULL with e set when it exists already. */
char *bcd_new_name(const json_t *a, const char *prefix, bcd_err_t *e);
bcd_handle_t *bcd_add(char *name, bcd_kind_t kind, void *obj,
                      void (*destroy)(void *));
/* The object named by a[key], of that kind; NULL with e set. */
void *bcd_lookup(const json_t *a, const char *key, bcd_kind_t kind,
                 bcd_err_t *e);
/* Lookup by name only (also usable in a forked child). */
void *bcd_find(const char *name, bcd_kind_t kind);

/* ---- ops ---- */
typedef json_t *(*bcd_op_fn)(json_t *args, bcd_err_t *e);
typedef struct bcd_op {
  const char *name;
  bcd_op_fn fn;
} bcd_op_t;

extern const bcd_op_t bcd_ops_pool[];
extern const bcd_op_t bcd_ops_process[];
extern const bcd_op_t bcd_ops_sync[];
extern const bcd_op_t bcd_ops_misc[];
extern const bcd_op_t bcd_ops_manager[];

/* Features contributed by the optional parts (NULL-terminated). */
extern const char *const bcd_features_sync[];

/* ---- tasks (tasks.c) ---- */
int bcd_register_tasks(void);
int bcd_target_self_contained(const char *name); /* runs under spawn/forkserver */
int bcd_register_sync_targets(void);   /* ops_sync.c */
int bcd_register_manager_targets(void); /* ops_manager.c */
json_t *bcd_task_names(void);

/* ---- misc (ops_misc.c) ---- */
void bcd_fault_init(void);
void bcd_fault_fini(void);
int bcd_fault_build(void);        /* 1 in a fault-injection build */
int bcd_timens_possible(void);
void bcd_wake_pools(void);        /* after clock.jump */

#endif /* BCD_H */
