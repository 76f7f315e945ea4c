/* handle.c: the child's table of handed-over objects and the per-kind
 * export dispatch (handle.h). */
#include "handle.h"

#include <errno.h>
#include <string.h>

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
  default: return -EINVAL;
  }
}

int bl__handle_fd(size_t index, uint32_t kind) {
  if (index >= count) return -ERANGE;
  bl__shm_tag_t tag;
  int rc = bl__shm_peek(table[index], &tag);
  if (rc) return rc == -EBADF ? -EINVAL : rc;
  if (tag.kind != kind) return -EINVAL;
  return table[index];
}

BL_API int bl_process_handle_count(void) { return (int)count; }

BL_API int bl_process_handle_kind(size_t index) {
  if (index >= count) return -ERANGE;
  bl__shm_tag_t tag;
  int rc = bl__shm_peek(table[index], &tag);
  if (rc) return rc == -EBADF ? -EINVAL : rc;
  return (int)tag.kind;
}
