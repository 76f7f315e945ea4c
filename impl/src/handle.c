/* handle.c: the child's table of handed-over objects and the per-kind
 * export dispatch (handle.h). */
#include "handle.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <billiard/connection.h>
#include <billiard/errors.h>

#include "internal.h"
#include "shm.h"

/* Written once by the starting child before its target runs (single
 * threaded then), read-only afterwards. */
static int table[BL__MAX_HANDLES];
static size_t count;

void bl__handles_set(const int *fds, size_t n) {
  if (NEVER(n > BL__MAX_HANDLES)) n = BL__MAX_HANDLES;
  if (n) memcpy(table, fds, n * sizeof *fds);
  count = n;
}

int bl__handle_export(int kind, const void *obj, int *fds) {
  switch (kind) {
  case BL_HANDLE_QUEUE: return bl__queue_export(obj, fds);
  case BL_HANDLE_LOCK: return bl__lock_export(obj, fds);
  case BL_HANDLE_SEMAPHORE: return bl__semaphore_export(obj, fds);
  case BL_HANDLE_EVENT: return bl__event_export(obj, fds);
  case BL_HANDLE_CONDITION: return bl__condition_export(obj, fds);
  case BL_HANDLE_BARRIER: return bl__barrier_export(obj, fds);
  case BL_HANDLE_VALUE: return bl__value_export(obj, fds);
  case BL_HANDLE_CONNECTION: {
    int fd = bl_conn_fileno(obj);
    if (fd < 0 || bl_conn_closed(obj)) return BL_ECLOSED;
    fds[0] = fd;
    return 1;
  }
  default: return -EINVAL;
  }
}

/* The kind behind a table fd: a billiard mapping's trailer, else a pipe or
 * socket is a Connection. */
static int fd_kind(int fd) {
  bl__shm_tag_t tag;
  if (bl__shm_peek(fd, &tag) == 0) return (int)tag.kind;
  struct stat st;
  if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
    return BL_HANDLE_CONNECTION;
  return -EINVAL;
}

int bl__handle_fd(size_t index, uint32_t kind) {
  if (index >= count) return -ERANGE;
  int k = fd_kind(table[index]);
  if (k < 0 || (uint32_t)k != kind) return -EINVAL;
  return table[index];
}

BL_API int bl_process_handle_count(void) { return (int)count; }

BL_API int bl_process_handle_kind(size_t index) {
  if (index >= count) return -ERANGE;
  return fd_kind(table[index]);
}

BL_API int bl_conn_attach(bl_conn_t **c, size_t index) {
  BL_VALIDATE(c != NULL, -EINVAL);
  *c = NULL;
  int fd = bl__handle_fd(index, BL_HANDLE_CONNECTION);
  if (fd < 0) return fd;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  int acc = fl & O_ACCMODE;
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return -errno;
  /* bl_conn_from_fd owns own from here, closing it on failure. */
  return bl_conn_from_fd(c, own, acc != O_WRONLY, acc != O_RDONLY);
}
