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
 * as billiard's proxies reconnect after fork. Within a process, calls on
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

/* Queue (unbounded): get waits up to timeout_ms (< 0 forever) -> BL_EEMPTY. */
BL_API int bl_mqueue_put(bl_proxy_t *px, const void *val, size_t len);
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

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_MANAGER_H */
