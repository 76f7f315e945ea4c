/* manager.h: billiard's Manager/SyncManager: a server process that owns
 * shared objects (dict, list, Namespace, Queue, Lock, Event, Value) which
 * other processes use through proxies over authenticated Unix-socket
 * connections.
 *
 * Value model: keys (dict keys, Namespace attribute names) are NUL-
 * terminated strings of at most 4096 bytes; values are byte strings
 * (copy in on set, a malloc'd copy out on get, freed by the caller with
 * free()). Encode richer values yourself (e.g. JSON, or fixed structs).
 *
 * Authentication: billiard's HMAC challenge in both directions
 * (deliver_challenge / answer_challenge, HMAC-SHA256 from libcrypto)
 * with the manager's authkey; a wrong key gives BL_EAUTH
 * (AuthenticationError) on connect.
 *
 * Processes: a proxy made before fork() may be used in the child: each
 * process (by pid) opens its own authenticated connection on first use,
 * as billiard's proxies reconnect after fork (also when another thread of
 * the parent was inside a call at the fork). Within a process, calls on
 * proxies of one manager are serialised (one connection, one request at
 * a time); a blocking call (queue get, lock acquire, event wait) holds
 * that connection for its duration, so use separate managers handles
 * (bl_manager_connect) per thread for concurrent blocking calls.
 *
 * A dead manager: a call whose connection breaks returns BL_EEOF
 * (EOFError); a call that must connect while the manager is gone returns
 * -ECONNREFUSED (ConnectionRefusedError; BL_EEOF if the connect races the
 * dying server); after bl_manager_shutdown
 * every proxy call returns BL_ENOTRUNNING and creating an object returns
 * BL_ESTATE (billiard: AssertionError). No call hangs on a dead manager. */
#ifndef BILLIARD_MANAGER_H
#define BILLIARD_MANAGER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_manager bl_manager_t;
typedef struct bl_proxy bl_proxy_t;

#define BL_MANAGER_AUTHKEY_MAX 256

typedef struct bl_manager_options {
  size_t size;          /* set by bl_manager_options_init() */
  const void *authkey;  /* NULL = 32 random bytes; copied */
  size_t authkey_len;   /* 1..BL_MANAGER_AUTHKEY_MAX when authkey is set */
  uint64_t reserved[8]; /* must stay zero */
} bl_manager_options_t;

BL_API void bl_manager_options_init(bl_manager_options_t *o);

/* A manager handle, not started. o may be NULL. 0, -EINVAL, -ENOMEM. */
BL_API int bl_manager_new(bl_manager_t **m, const bl_manager_options_t *o);
/* Start the server process (forked; dies with its creator). 0, BL_ESTATE
 * when already started or shut down, -errno. */
BL_API int bl_manager_start(bl_manager_t *m);
/* A handle on a running manager at address (bl_manager_address) with
 * authkey; authenticates now: 0, BL_EAUTH, -ECONNREFUSED, -errno. Such a
 * handle cannot shut the server down (BL_ESTATE), as in billiard only the
 * starting process owns the server. */
BL_API int bl_manager_connect(bl_manager_t **m, const char *address,
                              const void *authkey, size_t authkey_len);
/* Stop the server and reap it. Idempotent: 0 again after the first.
 * Proxies stay allocated but their calls return BL_ENOTRUNNING. */
BL_API int bl_manager_shutdown(bl_manager_t *m);
/* Shut down (when started by this handle, in this process) and free. */
BL_API void bl_manager_free(bl_manager_t **m);

/* "@name" (a Linux abstract socket name), owned by m; NULL before start. */
BL_API const char *bl_manager_address(const bl_manager_t *m);
/* The server's pid (0 if not started by this handle). */
BL_API pid_t bl_manager_pid(const bl_manager_t *m);
/* The authkey (owned by m). */
BL_API const void *bl_manager_authkey(const bl_manager_t *m, size_t *len);

/* ---- creating shared objects: a new object on the server, and a proxy
 * to it (free with bl_proxy_free; the object lives until shutdown) ---- */
BL_API int bl_manager_dict(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_list(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_namespace(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_queue(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_lock(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_event(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_value(bl_manager_t *m, bl_proxy_t **px, const void *init,
                            size_t len);
/* The object id (for bl_proxy_attach on another handle of the manager). */
BL_API uint32_t bl_proxy_id(const bl_proxy_t *px);
/* A proxy to an existing object id on m; BL_ENOTFOUND if none. */
BL_API int bl_proxy_attach(bl_manager_t *m, uint32_t id, bl_proxy_t **px);
BL_API void bl_proxy_free(bl_proxy_t **px);

/* Every call: 0 (or a count), or an error as described above; a call on
 * a proxy of the wrong kind -> -EINVAL (billiard: AttributeError). */

/* dict: KeyError -> BL_ENOTFOUND. */
BL_API int bl_dict_set(bl_proxy_t *px, const char *key, const void *val, size_t len);
BL_API int bl_dict_get(bl_proxy_t *px, const char *key, void **val, size_t *len);
BL_API int bl_dict_del(bl_proxy_t *px, const char *key);
BL_API int bl_dict_len(bl_proxy_t *px, size_t *n);
/* The keys in insertion order (DictProxy.keys()): *keys is one malloc'd
 * block, a NULL-terminated array of *n strings; free(*keys) frees all. */
BL_API int bl_dict_keys(bl_proxy_t *px, char ***keys, size_t *n);

/* list: IndexError -> -ERANGE; negative indices count from the end. */
BL_API int bl_list_append(bl_proxy_t *px, const void *val, size_t len);
BL_API int bl_list_get(bl_proxy_t *px, long index, void **val, size_t *len);
BL_API int bl_list_set(bl_proxy_t *px, long index, const void *val, size_t len);
BL_API int bl_list_len(bl_proxy_t *px, size_t *n);

/* Namespace: attribute access; a missing attribute -> BL_ENOTFOUND. */
BL_API int bl_namespace_set(bl_proxy_t *px, const char *attr, const void *val,
                            size_t len);
BL_API int bl_namespace_get(bl_proxy_t *px, const char *attr, void **val,
                            size_t *len);

/* Queue: get waits up to timeout_ms (< 0 forever) -> BL_EEMPTY. A queue
 * is unbounded unless made with bl_manager_queue_bounded(maxsize > 0):
 * then put waits for room (bl_mqueue_put forever; bl_mqueue_put_wait up
 * to timeout_ms, 0 = non-blocking) -> BL_EFULL. */
BL_API int bl_manager_queue_bounded(bl_manager_t *m, bl_proxy_t **px, int maxsize);
BL_API int bl_mqueue_put(bl_proxy_t *px, const void *val, size_t len);
BL_API int bl_mqueue_put_wait(bl_proxy_t *px, const void *val, size_t len, int timeout_ms);
BL_API int bl_mqueue_get(bl_proxy_t *px, void **val, size_t *len, int timeout_ms);
BL_API int bl_mqueue_size(bl_proxy_t *px, size_t *n);

/* Lock (threading.Lock: not owner-checked): acquire waits up to
 * timeout_ms (< 0 forever; 0 = non-blocking) -> BL_ETIMEOUT; releasing an
 * unlocked lock -> BL_EOVERRELEASE. A holder that dies keeps it held. */
BL_API int bl_mlock_acquire(bl_proxy_t *px, int timeout_ms);
BL_API int bl_mlock_release(bl_proxy_t *px);

/* Event: wait returns 1 when set, 0 on timeout. */
BL_API int bl_mevent_set(bl_proxy_t *px);
BL_API int bl_mevent_clear(bl_proxy_t *px);
BL_API int bl_mevent_is_set(bl_proxy_t *px);
BL_API int bl_mevent_wait(bl_proxy_t *px, int timeout_ms);

/* Value: bytes. */
BL_API int bl_mvalue_set(bl_proxy_t *px, const void *val, size_t len);
BL_API int bl_mvalue_get(bl_proxy_t *px, void **val, size_t *len);

/* ---- the rest of SyncManager's types ---- */

/* JoinableQueue: billiard registers it as the same queue.Queue, so every
 * manager queue has task_done/join and this is bl_manager_queue. A put
 * counts as unfinished until a task_done; one task_done too many ->
 * BL_EOVERRELEASE (ValueError); join waits up to timeout_ms (< 0 forever)
 * for none unfinished -> BL_ETIMEOUT. */
BL_API int bl_manager_joinable_queue(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_mqueue_task_done(bl_proxy_t *px);
BL_API int bl_mqueue_join(bl_proxy_t *px, int timeout_ms);

/* RLock, Semaphore(value), BoundedSemaphore(value) (value 0..INT32_MAX):
 * use bl_macquire / bl_mrelease (which also take a Lock or a Condition).
 * An RLock (and a Condition's lock) is owned by the *connection*, i.e. by
 * the calling process's handle, as billiard's by the server thread serving
 * that connection: re-entrant there, and releasing it from elsewhere, or
 * unheld -> BL_EOVERRELEASE (RuntimeError). Releasing a BoundedSemaphore
 * above its value -> BL_EOVERRELEASE (ValueError). Acquire waits up to
 * timeout_ms (< 0 forever, 0 non-blocking) -> BL_ETIMEOUT. */
BL_API int bl_manager_rlock(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_manager_semaphore(bl_manager_t *m, bl_proxy_t **px, int value);
BL_API int bl_manager_bounded_semaphore(bl_manager_t *m, bl_proxy_t **px, int value);
BL_API int bl_macquire(bl_proxy_t *px, int timeout_ms);
BL_API int bl_mrelease(bl_proxy_t *px);

/* Condition (with its own RLock, as threading.Condition()): acquire and
 * release with bl_macquire / bl_mrelease. wait releases the lock, waits
 * up to timeout_ms (< 0 forever) for a notify and takes the lock back:
 * 1 notified, 0 timed out. notify wakes up to n waiters (n < 0: all,
 * notify_all), longest waiting first. wait or notify without holding the
 * lock -> BL_ESTATE (RuntimeError). */
BL_API int bl_manager_condition(bl_manager_t *m, bl_proxy_t **px);
BL_API int bl_mcond_wait(bl_proxy_t *px, int timeout_ms);
BL_API int bl_mcond_notify(bl_proxy_t *px, int n);

/* Barrier(parties, timeout): timeout_ms is the default for waits (< 0
 * none). wait returns the arrival index 0..parties-1; it waits up to
 * timeout_ms (BL_MANAGER_BARRIER_DEFAULT: the barrier's default, < 0
 * forever); a timeout breaks the barrier. A broken, aborted or reset
 * barrier fails its waiters with BL_EBROKENBARRIER; reset makes it usable
 * again. */
#define BL_MANAGER_BARRIER_DEFAULT (-2)
BL_API int bl_manager_barrier(bl_manager_t *m, bl_proxy_t **px, int parties,
                              int timeout_ms);
BL_API int bl_mbarrier_wait(bl_proxy_t *px, int timeout_ms);
BL_API int bl_mbarrier_abort(bl_proxy_t *px);
BL_API int bl_mbarrier_reset(bl_proxy_t *px);
BL_API int bl_mbarrier_info(bl_proxy_t *px, int *parties, int *n_waiting, int *broken);

/* Array: n elements (n <= 2^20), each a copy of fill (byte strings);
 * index as the list's (-ERANGE out of range); its length never changes. */
BL_API int bl_manager_array(bl_manager_t *m, bl_proxy_t **px, size_t n,
                            const void *fill, size_t fill_len);
BL_API int bl_marray_get(bl_proxy_t *px, long index, void **val, size_t *len);
BL_API int bl_marray_set(bl_proxy_t *px, long index, const void *val, size_t len);
BL_API int bl_marray_len(bl_proxy_t *px, size_t *n);

/* ---- user types: BaseManager.register(typeid, callable) ----
 * A type is a constructor and a table of named methods, all C functions
 * on byte strings that run in the manager process on the object's state.
 * They run one at a time under the manager's lock: they must not block.
 * Register before bl_manager_start (the server is forked with the table,
 * as billiard's server gets the class registry); a typeid registered
 * again replaces the old entry for managers started afterwards. */
#define BL_MANAGER_TYPEID_MAX 64
#define BL_MANAGER_TYPES_MAX 32

typedef struct bl_manager_method {
  const char *name;
  /* in/inlen: the call's argument. Returns >= 0 (the call's result) or a
   * negative error code; *out may be set to a malloc'd reply (freed by
   * the manager) of *outlen bytes. */
  int (*fn)(void *state, const void *in, size_t inlen, void **out, size_t *outlen);
} bl_manager_method_t;

typedef struct bl_manager_type {
  size_t size; /* set by bl_manager_type_init() */
  /* The object's state from the creation argument: 0 or a negative
   * error. Required. */
  int (*create)(const void *arg, size_t len, void **state);
  const bl_manager_method_t *methods; /* kept by the caller (static) */
  size_t nmethods;
  uint64_t reserved[4]; /* must stay zero */
} bl_manager_type_t;

BL_API void bl_manager_type_init(bl_manager_type_t *t);
/* 0; -EINVAL (bad typeid: empty or longer than BL_MANAGER_TYPEID_MAX, no
 * create, a method without name or fn); -ENOSPC past BL_MANAGER_TYPES_MAX. */
BL_API int bl_manager_register(const char *type_id, const bl_manager_type_t *type);
/* A new object of a registered type (BL_ENOTFOUND if the server does not
 * know the typeid; the constructor's error otherwise). */
BL_API int bl_manager_create(bl_manager_t *m, const char *type_id, const void *arg,
                             size_t len, bl_proxy_t **px);
/* Call a method: its result (>= 0) or error; BL_ENOTFOUND for an unknown
 * method. out/outlen may be NULL to drop the reply; else *out is a malloc'd
 * copy (empty: a 1-byte buffer, *outlen 0) the caller frees. */
BL_API int bl_proxy_call(bl_proxy_t *px, const char *method, const void *in,
                         size_t inlen, void **out, size_t *outlen);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_MANAGER_H */
