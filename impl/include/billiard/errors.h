/* errors.h: libbilliard's error model.
 *
 * Every function returns 0 (or a non-negative count) on success and a
 * negative code on failure. OS failures are -errno. billiard's own outcomes
 * sit at -5000 and below, beyond any negated errno (errno values are < 4096),
 * so the two never collide. The table below is the single source of the enum,
 * the names, the messages and the billiard exception name that the conformance
 * harness compares across ports. */
#ifndef BILLIARD_ERRORS_H
#define BILLIARD_ERRORS_H

#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, billiard exception, message) */
#define BL_ERROR_MAP(X)                                                            \
  X(PROCESS,       -5001, "ProcessError",          "process error")                 \
  X(TIMEOUT,       -5002, "TimeoutError",          "operation timed out")           \
  X(AUTH,          -5003, "AuthenticationError",   "authentication failed")         \
  X(BUFTOOSHORT,   -5004, "BufferTooShort",        "receive buffer too short")      \
  X(TIMELIMIT,     -5005, "TimeLimitExceeded",     "hard time limit exceeded")      \
  X(SOFTTIMELIMIT, -5006, "SoftTimeLimitExceeded", "soft time limit exceeded")      \
  X(WORKERLOST,    -5007, "WorkerLostError",       "worker process lost")           \
  X(TERMINATED,    -5008, "Terminated",            "task terminated")               \
  X(RESTARTFREQ,   -5009, "RestartFreqExceeded",   "too many worker restarts")      \
  X(TASK,          -5010, "TaskError",             "task raised an error")          \
  X(EOF,           -5011, "EOFError",              "peer closed the connection")    \
  X(PROTOCOL,      -5012, "OSError",               "bad message length or frame")   \
  X(FULL,          -5013, "Full",                  "queue is full")                 \
  X(EMPTY,         -5014, "Empty",                 "queue is empty")                \
  X(NOTRUNNING,    -5015, "ValueError",            "Pool not running")              \
  X(STATE,         -5016, "AssertionError",        "invalid call in this state")    \
  X(CLOSED,        -5017, "OSError",               "handle is closed")              \
  X(OVERRELEASE,   -5018, "ValueError",            "released too many times")       \
  X(BROKENBARRIER, -5019, "BrokenBarrierError",    "barrier is broken")             \
  X(OWNERDEAD,     -5020, "OwnerDead",             "acquired; previous owner died") \
  X(NOTFOUND,      -5021, "LookupError",           "no function registered under that name") \
  X(ENCODING,      -5022, "MaybeEncodingError",    "result could not be sent")      \
  X(NOTSUPPORTED,  -5023, "NotImplementedError",   "not supported")

enum bl_error {
#define BL__X(name, val, exc, msg) BL_E##name = (val),
  BL_ERROR_MAP(BL__X)
#undef BL__X
};

/* Lowest and highest reserved billiard codes. */
#define BL_ERROR_FIRST BL_EPROCESS
#define BL_ERROR_LAST  BL_ENOTSUPPORTED

/* Human-readable message; strerror(-err) for OS codes; "unknown error" else.
 * Never returns NULL; the string is static. */
BL_API const char *bl_strerror(int err);
/* Symbolic name: "BL_EWORKERLOST", or "EPIPE" for -EPIPE, "OK" for 0. */
BL_API const char *bl_err_name(int err);
/* billiard exception name: "WorkerLostError"; "OSError" for OS codes. */
BL_API const char *bl_err_exception(int err);
/* Non-zero when err is one of libbilliard's reserved codes. */
BL_API int bl_err_is_billiard(int err);

/* Detail of a failure that carries text: a task's raised error (type name,
 * message, traceback), a lost worker's "Worker exited prematurely: ..." line,
 * a time limit. Owned by whoever holds it; free with bl_error_info_clear(). */
typedef struct bl_error_info {
  int code;          /* a BL_E* code or -errno */
  char *type;        /* exception type name; NULL = bl_err_exception(code) */
  char *message;     /* may be NULL */
  char *traceback;   /* may be NULL */
} bl_error_info_t;

/* Fill *info with copies of the strings (any may be NULL). 0 or -ENOMEM. */
BL_API int bl_error_info_set(bl_error_info_t *info, int code, const char *type,
                             const char *message, const char *traceback);
/* Release the strings and zero *info. Safe on a zeroed struct. */
BL_API void bl_error_info_clear(bl_error_info_t *info);
/* Effective type name: info->type, else the code's exception name. */
BL_API const char *bl_error_info_type(const bl_error_info_t *info);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_ERRORS_H */
