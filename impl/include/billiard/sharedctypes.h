/* sharedctypes.h: Value, Array, RawValue and RawArray in shared memory
 * (billiard.sharedctypes).
 *
 * Typecodes as in billiard/array: 'c' char, 'b' signed char, 'B' unsigned
 * char, 'h' short, 'H' unsigned short, 'i' int, 'I' unsigned int, 'l' long,
 * 'L' unsigned long, 'q' long long, 'Q' unsigned long long, 'f' float,
 * 'd' double, 'u' wchar_t. Memory is zeroed. Integer stores wrap silently
 * like ctypes (Value('b') set to 200 reads back -56).
 *
 * A Value is an Array of length 1: one type serves both. A fork child
 * created afterwards shares it by address; a child of any start method gets
 * it with bl_process_add_handle() (<billiard/process.h>) and
 * bl_value_attach(). bl_value_free() unmaps it in the calling process; the memory is released when the last process that
 * maps it frees it or exits (no name ever appears in /dev/shm). */
#ifndef BILLIARD_SHAREDCTYPES_H
#define BILLIARD_SHAREDCTYPES_H

#include <stddef.h>
#include <stdint.h>
#include <billiard/export.h>
#include <billiard/synchronize.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_value bl_value_t;

typedef struct bl_shared_options {
  size_t size;         /* set by bl_shared_options_init() */
  int lock;            /* 1 (default): synchronized, 0: no lock (billiard's
                          lock=False) */
  bl_lock_t *use_lock; /* with lock = 1: use this existing Lock/RLock
                          (borrowed; must outlive the value); NULL = a new
                          RLock in the value's own memory */
  uint64_t reserved[4];
} bl_shared_options_t;

BL_API void bl_shared_options_init(bl_shared_options_t *o);

/* o NULL = synchronized with its own RLock. Unknown typecode → -EINVAL. */
BL_API int bl_value_new(bl_value_t **out, char typecode,
                        const bl_shared_options_t *o);
/* n >= 1 elements. */
BL_API int bl_array_new(bl_value_t **out, char typecode, size_t n,
                        const bl_shared_options_t *o);
/* No lock at all (billiard's RawValue/RawArray). */
BL_API int bl_raw_value_new(bl_value_t **out, char typecode);
BL_API int bl_raw_array_new(bl_value_t **out, char typecode, size_t n);
BL_API void bl_value_free(bl_value_t **v);
/* In a child given the value with bl_process_add_handle(): map it here,
 * with its lock (its own RLock, or the borrowed lock passed as the next
 * handle). 0; -ERANGE (no handle at index); -EINVAL (not a value); -errno. */
BL_API int bl_value_attach(bl_value_t **out, size_t index);

/* The lock (get_lock()), or NULL for a raw object. */
BL_API bl_lock_t *bl_value_get_lock(bl_value_t *v);
BL_API char bl_value_typecode(const bl_value_t *v);
BL_API size_t bl_value_len(const bl_value_t *v);       /* elements */
BL_API size_t bl_value_itemsize(const bl_value_t *v);  /* bytes each */
/* The elements themselves, for typed access (e.g. (int32_t *) for 'i').
 * Unsynchronized: hold bl_value_get_lock() around compound updates. */
BL_API void *bl_value_ptr(bl_value_t *v);

/* Element i as an integer / a double, converting as C does. A synchronized
 * object takes its lock around each access (as billiard's .value does).
 * 0, -ERANGE (i out of bounds), or a lock error. */
BL_API int bl_value_get_i64(bl_value_t *v, size_t i, int64_t *out);
BL_API int bl_value_set_i64(bl_value_t *v, size_t i, int64_t x);
BL_API int bl_value_get_u64(bl_value_t *v, size_t i, uint64_t *out);
BL_API int bl_value_set_u64(bl_value_t *v, size_t i, uint64_t x);
BL_API int bl_value_get_f64(bl_value_t *v, size_t i, double *out);
BL_API int bl_value_set_f64(bl_value_t *v, size_t i, double x);

/* Size in bytes of one element of typecode, or -EINVAL if unknown. */
BL_API int bl_typecode_size(char typecode);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_SHAREDCTYPES_H */
