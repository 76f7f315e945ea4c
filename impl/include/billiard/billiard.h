/* billiard.h: the whole public API of libbilliard in one include. */
#ifndef BILLIARD_BILLIARD_H
#define BILLIARD_BILLIARD_H

#include <billiard/export.h>
#include <billiard/errors.h>
#include <billiard/clock.h>
#include <billiard/task.h>
#include <billiard/queue.h>
#include <billiard/synchronize.h>
#include <billiard/sharedctypes.h>
#include <billiard/process.h>
#include <billiard/connection.h>
#include <billiard/result.h>
#include <billiard/pool.h>
#include <billiard/util.h>
#include <billiard/context.h>
#include <billiard/manager.h>

#define BL_VERSION_MAJOR 0
#define BL_VERSION_MINOR 1
#define BL_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif
/* "0.1.0": the version of the library actually linked. */
BL_API const char *bl_version(void);
#ifdef __cplusplus
}
#endif

#endif /* BILLIARD_BILLIARD_H */
