/* errors.c: the error table's strings, and bl_error_info_t. */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <billiard/errors.h>

#include "fault.h"
#include "internal.h"

int bl__debug_validate;

__attribute__((constructor)) static void bl__errors_init(void) {
  const char *e = getenv("BL_DEBUG_VALIDATE");
  bl__debug_validate = e && *e && strcmp(e, "0") != 0;
}

void bl__validate_failed(const char *file, int line, const char *cond) {
  if (bl__debug_validate)
    fprintf(stderr, "libbilliard: %s:%d: check failed: %s\n", file, line, cond);
}

_Noreturn void bl__never_failed(const char *file, int line, const char *cond) {
  fprintf(stderr, "libbilliard: %s:%d: impossible condition: %s\n", file, line,
          cond);
  bl__coverage_flush();
  abort();
}

#ifdef BL_COVERAGE
extern void __gcov_dump(void);
extern void __gcov_reset(void);
#endif
void bl__coverage_flush(void) {
#ifdef BL_COVERAGE
  /* A checkpoint: write the counts so far, then count from zero. */
  __gcov_dump();  /* GCOVR_EXCL_LINE: lines after the dump are not counted */
  __gcov_reset(); /* GCOVR_EXCL_LINE */
#endif
}

#ifdef FIU_ENABLE
/* A point armed without failinfo simulates its default errno. */
int bl__fault_errno(int dflt) {
  void *fi = fiu_failinfo();
  return fi ? -(int)(intptr_t)fi : -dflt;
}

/* Recursive: an atfork handler may fork again (its bl__fork evaluates a
 * point and takes the lock while the outer fork holds it). */
static pthread_mutex_t fault_mu;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void fault_mu_init(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&fault_mu, &a);
  pthread_mutexattr_destroy(&a);
}

int bl__fault_fail(const char *name) {
  pthread_once(&fault_once, fault_mu_init);
  pthread_mutex_lock(&fault_mu);
  int r = fiu_fail(name);
  pthread_mutex_unlock(&fault_mu);
  return r;
}

void bl__fault_fork_prepare(void) {
  pthread_once(&fault_once, fault_mu_init);
  pthread_mutex_lock(&fault_mu);
}
void bl__fault_fork_parent(void) { pthread_mutex_unlock(&fault_mu); }
/* The child's only thread is the one that locked it: start afresh. */
void bl__fault_fork_child(void) { fault_mu_init(); }
#endif

struct entry {
  int code;
  const char *name, *exc, *msg;
};

static const struct entry table[] = {
#define BL__X(name, val, exc, msg) {val, "BL_E" #name, exc, msg},
    BL_ERROR_MAP(BL__X)
#undef BL__X
};

static const struct entry *find(int err) {
  for (size_t i = 0; i < BL__ARRAY_SIZE(table); i++)
    if (table[i].code == err) return &table[i];
  return NULL;
}

BL_API int bl_err_is_billiard(int err) { return find(err) != NULL; }

BL_API const char *bl_strerror(int err) {
  const struct entry *e = find(err);
  if (e) return e->msg;
  if (err == 0) return "success";
  if (err < 0 && err > -4096) return strerror(-err);
  return "unknown error";
}

BL_API const char *bl_err_name(int err) {
  const struct entry *e = find(err);
  if (e) return e->name;
  if (err == 0) return "OK";
  if (err < 0 && err > -4096) {
    const char *n = strerrorname_np(-err);
    if (n) return n;
  }
  return "UNKNOWN";
}

BL_API const char *bl_err_exception(int err) {
  const struct entry *e = find(err);
  if (e) return e->exc;
  if (err < 0 && err > -4096) {
    /* Python maps these errnos to OSError subclasses; the harness compares
     * exception names, so use the same ones. */
    switch (-err) {
    case EPIPE: case ESHUTDOWN: return "BrokenPipeError";
    case ECONNRESET: return "ConnectionResetError";
    case EINTR: return "InterruptedError";
    default: return "OSError";
    }
  }
  return "Exception";
}

/* malloc + memcpy, not strdup(): glibc's strdup allocates through an
 * internal alias that allocation-failure tests (libfiu's preload) cannot
 * reach, which would leave every caller's -ENOMEM path untestable. */
char *bl__strdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  return d ? memcpy(d, s, n) : NULL;
}

char *bl__asprintf(const char *fmt, ...) {
  va_list ap;
  char *out = NULL;
  va_start(ap, fmt);
  if (vasprintf(&out, fmt, ap) < 0) out = NULL;
  va_end(ap);
  return out;
}

BL_API int bl_error_info_set(bl_error_info_t *info, int code, const char *type,
                             const char *message, const char *traceback) {
  BL_VALIDATE(info != NULL, -EINVAL);
  bl_error_info_t n = {code, bl__strdup(type), bl__strdup(message),
                       bl__strdup(traceback)};
  if ((type && !n.type) || (message && !n.message) ||
      (traceback && !n.traceback)) {
    bl_error_info_clear(&n);
    return -ENOMEM;
  }
  bl_error_info_clear(info);
  *info = n;
  return 0;
}

BL_API void bl_error_info_clear(bl_error_info_t *info) {
  if (!info) return;
  free(info->type);
  free(info->message);
  free(info->traceback);
  memset(info, 0, sizeof *info);
}

BL_API const char *bl_error_info_type(const bl_error_info_t *info) {
  if (!info) return NULL;
  return info->type ? info->type : bl_err_exception(info->code);
}

#include <billiard/billiard.h>
BL_API const char *bl_version(void) { return BL_VERSION_STRING; }
