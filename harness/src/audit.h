/* audit.h: leak audit around one driver run: processes left in the driver's
 * process group and new /dev/shm entries. */
#ifndef BC_AUDIT_H
#define BC_AUDIT_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/* Called in the per-run harness process before the driver starts: becomes a
 * child subreaper (orphaned workers are reaped by us) and, when permitted
 * (root), gives the run a private tmpfs on /dev/shm so entries are
 * attributed exactly even when scenarios run in parallel. */
typedef struct bc_audit {
  bool private_shm;
  bc_strv_t shm_before;
} bc_audit_t;
void bc_audit_begin(bc_audit_t *a);
/* Live (non-zombie) processes whose process group is pgid, or that are our
 * children (orphans we inherited as subreaper), as "PID (comm)". Call it
 * after the driver (our only direct child) was reaped. */
void bc_audit_group(pid_t pgid, bc_strv_t *out);
/* Reaps any exited children (we are their subreaper). */
void bc_audit_reap(void);
/* New /dev/shm entries since begin (not held by any live process, unless
 * the run has a private /dev/shm). */
void bc_audit_shm(const bc_audit_t *a, bc_strv_t *out);
void bc_audit_end(bc_audit_t *a);
/* Open fds of pid (informational: a driver's fds are its own business), or -1. */
int bc_audit_fd_count(pid_t pid);
/* pid's process group, or -1. */
pid_t bc_pgid_of(pid_t pid);

#endif
