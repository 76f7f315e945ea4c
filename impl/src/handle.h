/* handle.h: handing shared objects (queues, locks, values, ...) to a child
 * process by their memfds, the C analogue of pickling them into a
 * Process's arguments. The parent exports an object's fds
 * (bl_process_add_handle); the child, whatever the start method, finds them
 * in its handle table and maps them anew (bl_queue_attach, ...). Never
 * installed. */
#ifndef BL_HANDLE_H
#define BL_HANDLE_H

#include <stddef.h>
#include <stdint.h>

#include <billiard/process.h>

/* At most this many fds per process: what a spawn/forkserver bootstrap
 * carries (startmethod.h, BL__BOOT_MAX_FDS). */
#define BL__MAX_HANDLES 32

/* Per kind (queue.c, synchronize.c, sharedctypes.c): put the fds the
 * object needs in fds[0..1] (owned by the object: not duplicated). Returns
 * how many (1, or 2 for an object that borrows a lock), or -EINVAL (not a
 * shareable object of that kind), BL_ECLOSED (closed queue). */
int bl__queue_export(const void *obj, int *fds);
int bl__lock_export(const void *obj, int *fds);
int bl__semaphore_export(const void *obj, int *fds);
int bl__event_export(const void *obj, int *fds);
int bl__condition_export(const void *obj, int *fds);
int bl__barrier_export(const void *obj, int *fds);
int bl__value_export(const void *obj, int *fds);
/* Dispatch on kind (-EINVAL for an unknown kind). */
int bl__handle_export(int kind, const void *obj, int *fds);

/* In a started child: record its handles (the fds it received, at the
 * numbers the parent had). Called by process.c and spawn.c's bootstrap. */
void bl__handles_set(const int *fds, size_t n);
/* The fd of handle index if it holds kind: fd, -ERANGE (no such index),
 * -EINVAL (another kind). */
int bl__handle_fd(size_t index, uint32_t kind);

#endif /* BL_HANDLE_H */
