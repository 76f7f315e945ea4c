/* sync.h: the shared layout of a Lock/RLock, for objects that embed one
 * (sharedctypes.c) and for Condition. Never installed. */
#ifndef BL_SYNC_H
#define BL_SYNC_H

#include <stdint.h>

#include <billiard/synchronize.h>

/* The lock word: 0 = free, else the holder's tid, plus BL__LOCK_WAITERS
 * when someone may sleep on it. */
#define BL__LOCK_WAITERS 0x80000000u
#define BL__LOCK_TID 0x3fffffffu

struct bl_lock {
  uint32_t word;
  uint32_t recursive;
  uint64_t owner;     /* bl__self_thread() of the holder, for liveness */
  uint32_t count;     /* RLock depth; only the holder touches it */
  uint32_t own_map;   /* 1: this lock heads its own mapping */
};

/* Initialise a lock placed in shared memory that someone else maps. */
void bl__lock_init(bl_lock_t *l, int recursive);

#endif /* BL_SYNC_H */
