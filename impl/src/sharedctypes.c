/* sharedctypes.c: Value/Array/RawValue/RawArray.
 *
 * One mapping per object: a header (typecode, length, which lock to use and
 * room for an RLock of its own) followed by the zeroed elements. Nothing in
 * it is a pointer: a child handed the value maps it at another address. A
 * borrowed lock lives in its own mapping; this process's view remembers
 * where it is (a child gets it as the handle after the value). Release is the
 * kernel's business: each process unmaps its view (or dies) and the memory
 * goes with the last one. A reference count inside the segment would be
 * left too high by every process that crashes; the kernel's count is not. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <billiard/errors.h>
#include <billiard/sharedctypes.h>

#include "handle.h"
#include "internal.h"
#include "shm.h"
#include "sync.h"

enum { LK_NONE = 0, LK_OWN = 1, LK_BORROWED = 2 };

typedef struct val_shared {
  uint64_t n;
  uint32_t itemsize;
  uint32_t lock_kind;  /* LK_* */
  char typecode;
  struct bl_lock own;  /* used when the value made its own RLock */
} val_shared_t;

/* This process's view. */
struct bl_value {
  val_shared_t *sh;
  size_t maplen, n;
  uint32_t itemsize;
  char typecode;
  bl_lock_t *lock;     /* NULL = raw; &sh->own, borrowed, or attached */
  bl_lock_t *attached; /* a borrowed lock this view mapped itself */
};

#define DATA_OFF ((sizeof(val_shared_t) + 63) & ~(size_t)63)

int bl_typecode_size(char tc) {
  switch (tc) {
  case 'c': return (int)sizeof(char);
  case 'b': return (int)sizeof(signed char);
  case 'B': return (int)sizeof(unsigned char);
  case 'h': return (int)sizeof(short);
  case 'H': return (int)sizeof(unsigned short);
  case 'i': return (int)sizeof(int);
  case 'I': return (int)sizeof(unsigned int);
  case 'l': return (int)sizeof(long);
  case 'L': return (int)sizeof(unsigned long);
  case 'q': return (int)sizeof(long long);
  case 'Q': return (int)sizeof(unsigned long long);
  case 'f': return (int)sizeof(float);
  case 'd': return (int)sizeof(double);
  case 'u': return (int)sizeof(wchar_t);
  default: return -EINVAL;
  }
}

void bl_shared_options_init(bl_shared_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->lock = 1;
}

int bl_array_new(bl_value_t **out, char tc, size_t n,
                 const bl_shared_options_t *o) {
  BL_VALIDATE(out != NULL, -EINVAL);
  BL_VALIDATE(n >= 1, -EINVAL);
  bl_shared_options_t def;
  if (!o) {
    bl_shared_options_init(&def);
    o = &def;
  }
  BL_VALIDATE(o->size == sizeof *o, -EINVAL);
  for (size_t i = 0; i < BL__ARRAY_SIZE(o->reserved); i++)
    BL_VALIDATE(o->reserved[i] == 0, -EINVAL);
  int isz = bl_typecode_size(tc);
  if (isz < 0) return isz;
  BL_VALIDATE(n <= (SIZE_MAX - DATA_OFF) / (size_t)isz, -EINVAL);
  bl_value_t *v = calloc(1, sizeof *v);
  if (!v) return -ENOMEM;
  void *base;
  int rc = bl__shm_map(DATA_OFF + n * (size_t)isz, BL_HANDLE_VALUE, &base,
                       &v->maplen);
  if (rc) {
    free(v);
    return rc;
  }
  v->sh = base;
  v->sh->n = v->n = n;
  v->sh->itemsize = v->itemsize = (uint32_t)isz;
  v->sh->typecode = v->typecode = tc;
  if (o->lock) {
    if (o->use_lock) {
      v->sh->lock_kind = LK_BORROWED;
      bl__shm_tag(base, v->maplen)->flags |= BL__TAG_EXT_LOCK;
      v->lock = o->use_lock;
    } else {
      v->sh->lock_kind = LK_OWN;
      bl__lock_init(&v->sh->own, 1);
      v->lock = &v->sh->own;
    }
  }
  *out = v;
  return 0;
}

int bl_value_new(bl_value_t **out, char tc, const bl_shared_options_t *o) {
  return bl_array_new(out, tc, 1, o);
}

int bl_raw_array_new(bl_value_t **out, char tc, size_t n) {
  bl_shared_options_t o;
  bl_shared_options_init(&o);
  o.lock = 0;
  return bl_array_new(out, tc, n, &o);
}

int bl_raw_value_new(bl_value_t **out, char tc) {
  return bl_raw_array_new(out, tc, 1);
}

void bl_value_free(bl_value_t **v) {
  if (!v || !*v) return;
  bl_lock_free(&(*v)->attached);
  bl__shm_unmap((*v)->sh, (*v)->maplen);
  free(*v);
  *v = NULL;
}

int bl__value_export(const void *obj, int *fds) {
  const bl_value_t *v = obj;
  int fd = bl__shm_fd_of(v->sh, BL_HANDLE_VALUE);
  if (fd < 0) return fd;
  fds[0] = fd;
  if (v->sh->lock_kind != LK_BORROWED) return 1;
  int rc = bl__lock_export(v->lock, fds + 1);
  return rc < 0 ? rc : 2;
}

int bl_value_attach(bl_value_t **out, size_t index) {
  BL_VALIDATE(out != NULL, -EINVAL);
  *out = NULL;
  int fd = bl__handle_fd(index, BL_HANDLE_VALUE);
  if (fd < 0) return fd;
  bl_value_t *v = calloc(1, sizeof *v);
  if (!v) return -ENOMEM;
  void *base;
  int rc = bl__shm_attach(fd, BL_HANDLE_VALUE, &base, &v->maplen);
  if (rc) {
    free(v);
    return rc;
  }
  v->sh = base;
  /* Copy the geometry into the view and check it against the mapping, so
   * nothing another process writes later can send an access out of it. */
  v->n = (size_t)v->sh->n;
  v->itemsize = v->sh->itemsize;
  v->typecode = v->sh->typecode;
  int isz = bl_typecode_size(v->typecode);
  if (isz < 0 || (uint32_t)isz != v->itemsize || v->n == 0 ||
      v->n > (v->maplen - DATA_OFF - sizeof(bl__shm_tag_t)) / v->itemsize ||
      v->sh->lock_kind > LK_BORROWED) {
    bl_value_free(&v);
    return -EINVAL;
  }
  if (v->sh->lock_kind == LK_OWN) {
    v->lock = &v->sh->own;
  } else if (v->sh->lock_kind == LK_BORROWED) {
    /* The borrowed lock was passed right after the value. */
    rc = bl_lock_attach(&v->attached, index + 1);
    if (rc) {
      bl_value_free(&v);
      return rc == -ERANGE ? -EINVAL : rc;
    }
    v->lock = v->attached;
  }
  *out = v;
  return 0;
}

bl_lock_t *bl_value_get_lock(bl_value_t *v) { return v ? v->lock : NULL; }
char bl_value_typecode(const bl_value_t *v) { return v ? v->typecode : 0; }
size_t bl_value_len(const bl_value_t *v) { return v ? v->n : 0; }
size_t bl_value_itemsize(const bl_value_t *v) { return v ? v->itemsize : 0; }
void *bl_value_ptr(bl_value_t *v) {
  return v ? (char *)v->sh + DATA_OFF : NULL;
}

/* One element as the widest type of its kind. */
typedef struct num {
  int is_float;
  int is_unsigned;
  int64_t i;
  uint64_t u;
  double d;
} num_t;

static void load(const bl_value_t *v, const void *p, num_t *x) {
  memset(x, 0, sizeof *x);
  switch (v->typecode) {
  case 'c': x->i = *(const char *)p; break;
  case 'b': x->i = *(const signed char *)p; break;
  case 'B': x->i = *(const unsigned char *)p; break;
  case 'h': x->i = *(const short *)p; break;
  case 'H': x->i = *(const unsigned short *)p; break;
  case 'i': x->i = *(const int *)p; break;
  case 'I': x->i = *(const unsigned int *)p; break;
  case 'l': x->i = *(const long *)p; break;
  case 'L': x->u = *(const unsigned long *)p; x->is_unsigned = 1; break;
  case 'q': x->i = *(const long long *)p; break;
  case 'Q': x->u = *(const unsigned long long *)p; x->is_unsigned = 1; break;
  case 'u': x->i = *(const wchar_t *)p; break;
  case 'f': x->d = *(const float *)p; x->is_float = 1; break;
  case 'd': x->d = *(const double *)p; x->is_float = 1; break;
  }
  if (x->is_unsigned) {
    x->i = (int64_t)x->u;
    x->d = (double)x->u;
  } else if (x->is_float) {
    x->i = (int64_t)0; /* filled on demand with a range check */
  } else {
    x->u = (uint64_t)x->i;
    x->d = (double)x->i;
  }
}

/* Store the bit pattern of u (wrapping like ctypes) or the double d. */
static void store(bl_value_t *v, void *p, uint64_t u, double d, int from_float) {
  switch (v->typecode) {
  case 'c': *(char *)p = (char)u; break;
  case 'b': *(signed char *)p = (signed char)u; break;
  case 'B': *(unsigned char *)p = (unsigned char)u; break;
  case 'h': *(short *)p = (short)u; break;
  case 'H': *(unsigned short *)p = (unsigned short)u; break;
  case 'i': *(int *)p = (int)u; break;
  case 'I': *(unsigned int *)p = (unsigned int)u; break;
  case 'l': *(long *)p = (long)u; break;
  case 'L': *(unsigned long *)p = (unsigned long)u; break;
  case 'q': *(long long *)p = (long long)u; break;
  case 'Q': *(unsigned long long *)p = (unsigned long long)u; break;
  case 'u': *(wchar_t *)p = (wchar_t)u; break;
  case 'f': *(float *)p = from_float ? (float)d : (float)(int64_t)u; break;
  case 'd': *(double *)p = from_float ? d : (double)(int64_t)u; break;
  }
}

static int is_float_tc(char tc) { return tc == 'f' || tc == 'd'; }

static int with_lock(bl_value_t *v) {
  if (!v->lock) return 0;
  int rc = bl_lock_acquire(v->lock, -1);
  return BL_ACQUIRED(rc) ? 0 : rc;
}
static void without_lock(bl_value_t *v) {
  if (v->lock) bl_lock_release(v->lock);
}

static int access_elem(bl_value_t *v, size_t i, num_t *get, const num_t *set) {
  BL_VALIDATE(v != NULL, -EINVAL);
  if (i >= v->n) return -ERANGE;
  /* Converting a double outside an integer element's range is undefined in
   * C: refuse it. */
  if (set && set->is_float && !is_float_tc(v->typecode) &&
      !(set->d > -9.3e18 && set->d < 1.8e19))
    return -ERANGE;
  int rc = with_lock(v);
  if (rc) return rc;
  void *p = (char *)bl_value_ptr(v) + i * v->itemsize;
  if (get) load(v, p, get);
  if (set) {
    uint64_t u = set->is_float
                     ? (set->d < 0 ? (uint64_t)(int64_t)set->d : (uint64_t)set->d)
                     : set->u;
    store(v, p, u, set->d, set->is_float);
  }
  without_lock(v);
  return 0;
}

int bl_value_get_i64(bl_value_t *v, size_t i, int64_t *out) {
  BL_VALIDATE(out != NULL, -EINVAL);
  num_t x;
  int rc = access_elem(v, i, &x, NULL);
  if (rc) return rc;
  if (x.is_float) {
    if (!(x.d > -9.3e18 && x.d < 9.2e18)) return -ERANGE;
    x.i = (int64_t)x.d;
  }
  *out = x.i;
  return 0;
}

int bl_value_get_u64(bl_value_t *v, size_t i, uint64_t *out) {
  BL_VALIDATE(out != NULL, -EINVAL);
  num_t x;
  int rc = access_elem(v, i, &x, NULL);
  if (rc) return rc;
  if (x.is_float) {
    if (!(x.d > -1.0 && x.d < 1.8e19)) return -ERANGE;
    x.u = (uint64_t)x.d;
  }
  *out = x.u;
  return 0;
}

int bl_value_get_f64(bl_value_t *v, size_t i, double *out) {
  BL_VALIDATE(out != NULL, -EINVAL);
  num_t x;
  int rc = access_elem(v, i, &x, NULL);
  if (rc) return rc;
  *out = x.d;
  return 0;
}

int bl_value_set_i64(bl_value_t *v, size_t i, int64_t val) {
  num_t x = {0, 0, val, (uint64_t)val, 0};
  if (v && is_float_tc(v->typecode)) {
    x.is_float = 1;
    x.d = (double)val;
  }
  return access_elem(v, i, NULL, &x);
}

int bl_value_set_u64(bl_value_t *v, size_t i, uint64_t val) {
  num_t x = {0, 1, (int64_t)val, val, 0};
  if (v && is_float_tc(v->typecode)) {
    x.is_float = 1;
    x.d = (double)val;
  }
  return access_elem(v, i, NULL, &x);
}

int bl_value_set_f64(bl_value_t *v, size_t i, double val) {
  num_t x = {1, 0, 0, 0, val};
  return access_elem(v, i, NULL, &x);
}
