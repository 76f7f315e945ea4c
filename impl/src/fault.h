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
#define BL_FAULT(name, dflt) (fiu_fail(name) ? bl__fault_errno(dflt) : 0)
int bl__fault_errno(int dflt);
/* Crash point: the process dies by the signal given as failinfo (SIGKILL
 * by default), to simulate a worker lost at exactly this step. */
#define BL_FAULT_CRASH(name)                                                    \
  do {                                                                          \
    if (fiu_fail(name)) bl__fault_crash(fiu_failinfo());                        \
  } while (0)
void bl__fault_crash(void *failinfo);
#else
#define BL_FAULT(name, dflt) 0
#define BL_FAULT_CRASH(name) ((void)0)
#endif

#endif /* BL_FAULT_H */
