/* procinfo.h: who this process is (name, parent), shared by process.c,
 * spawn.c, forkserver.c and util.c; never installed. */
#ifndef BL_PROCINFO_H
#define BL_PROCINFO_H

#include <stddef.h>
#include <sys/types.h>

#include <billiard/util.h>

/* Record, in a freshly started child, its Process name and its parent's
 * pid (bl_current_process / bl_parent_process / log records). */
void bl__procinfo_set(const char *name, pid_t parent);

/* Implemented by process.c: in a freshly started spawn/forkserver child,
 * its Process identity ("3", "3:1"; NULL or "" = none), so that its own
 * children are named Process-<ident>:N as a fork child's are. */
void bl__process_set_identity(const char *ident);

/* Implemented by process.c: reap exited children of this process's set
 * and list the live ones (see bl_active_children). Weak in util.c, so a
 * program that never links process.o simply has no children. */
int bl__process_active(bl_process_info_t *out, size_t cap, size_t *n);

#endif /* BL_PROCINFO_H */
