/* fault.h: libbilliard's fault points (libfiu), the only include for them.
 *
 * With -Dfault_injection=true, FIU_ENABLE is defined and each BL_FAULT*
 * point asks libfiu whether to fail; otherwise every point compiles to a
 * constant and no fiu_ symbol is referenced. Every point name used here must
 * be listed in fault/points.txt (a lint test checks both directions). Names
 * are <concern>/<operation>/<step>, concern = source file.
 *
 * The failinfo given when arming a point is the errno to simulate; without
 * one the point's default errno is used. */
#ifndef BL_FAULT_H
#define BL_FAULT_H

#include <stdint.h>
#include "fiu-local.h"

#ifdef FIU_ENABLE
/* Evaluates to 0 (no fault) or -errno (simulate that failure). The errno
 * is chosen out of line (errors.c) so each point adds one branch only. */
#define BL_FAULT(name, dflt) (bl__fault_fail(name) ? bl__fault_errno(dflt) : 0)
int bl__fault_errno(int dflt);
/* fiu_fail() under a process-wide lock that bl__fork() also holds across
 * fork(): libfiu's tables have locks of their own (a write lock even for a
 * lookup that fills its cache), and a child forked while another thread
 * held one would hang at its first fault point (reliability.md, Found 8). */
int bl__fault_fail(const char *name);
void bl__fault_fork_prepare(void);
void bl__fault_fork_parent(void);
void bl__fault_fork_child(void);
/* Crash point: the process dies by the signal given as failinfo (SIGKILL
 * by default), to simulate a worker lost at exactly this step. */
#define BL_FAULT_CRASH(name)                                                    \
  do {                                                                          \
    if (bl__fault_fail(name)) bl__fault_crash(fiu_failinfo());                  \
  } while (0)
void bl__fault_crash(void *failinfo);
#else
#define BL_FAULT(name, dflt) 0
#define BL_FAULT_CRASH(name) ((void)0)
#endif

#endif /* BL_FAULT_H */
