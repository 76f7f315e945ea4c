/* connection.h: billiard.Pipe and Connection: message-framed byte pipes.
 *
 * Each message travels as billiard frames it: a 4-byte big-endian length,
 * then the bytes (2 GiB and more: -1, then an 8-byte length). Messages are
 * never torn or interleaved between threads of one process: sends and
 * receives each hold a per-connection lock (a send and a receive may run
 * at the same time). close and free must not race with other calls on the
 * same connection. Across processes, several writers on one connection
 * need their own locking, as in billiard.
 *
 * Errors, as billiard raises them:
 *   BL_ECLOSED      the connection was closed ("handle is closed")
 *   -EBADF          wrong direction: sending on a read-only end ("connection
 *                   is read-only") or receiving on a write-only one (both
 *                   are OSError in billiard)
 *   BL_EEOF         the peer closed before a new message began (EOFError)
 *   -EPIPE          the reader is gone (BrokenPipeError); SIGPIPE is never
 *                   raised by a send: sockets use MSG_NOSIGNAL, pipe writes
 *                   run with SIGPIPE blocked and a SIGPIPE they cause is
 *                   consumed, so the caller's disposition does not matter
 *   BL_EPROTOCOL    "bad message length": a length above maxlength, a
 *                   malformed header, or a message cut short. As in billiard
 *                   the stream cannot be trusted afterwards: a duplex
 *                   connection stops being readable, a read-only one is
 *                   closed
 *   BL_EBUFTOOSHORT recv_bytes_into's buffer is too small (BufferTooShort);
 *                   the message is kept, see bl_conn_take_pending()
 *   -EINVAL         bad arguments (offset/size outside the buffer)
 * Blocking calls restart after EINTR. */
#ifndef BILLIARD_CONNECTION_H
#define BILLIARD_CONNECTION_H

#include <stddef.h>
#include <billiard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_conn bl_conn_t;

/* send_bytes size meaning "from offset to the end of the buffer". */
#define BL_CONN_REST ((size_t)-1)

/* Create a connected pair. duplex: both ends read and write (socketpair).
 * Else *a is the reader and *b the writer (pipe2), like Pipe(False).
 * Every fd is close-on-exec. 0, or -errno (EMFILE...) with both NULL. */
BL_API int bl_pipe(bl_conn_t **a, bl_conn_t **b, int duplex);

/* Wrap an fd (ownership passes to the connection, also on error: the fd is
 * closed). At least one of readable/writable must be set. */
BL_API int bl_conn_from_fd(bl_conn_t **c, int fd, int readable, int writable);
/* In a child given the connection with bl_process_add_handle(p,
 * BL_HANDLE_CONNECTION, c) (<billiard/process.h>), any start method: a new
 * connection on a duplicate of the passed fd, readable/writable as the fd's
 * access mode (a pipe end one way, a socket both). 0; -ERANGE (no handle at
 * index); -EINVAL (that handle is not a pipe or socket); -errno. */
BL_API int bl_conn_attach(bl_conn_t **c, size_t index);

/* Send buf[offset .. offset+size) as one message; size = BL_CONN_REST for
 * the rest of the buffer. offset > len or offset + size > len -> -EINVAL.
 * Blocks until the whole message is written. */
BL_API int bl_conn_send_bytes(bl_conn_t *c, const void *buf, size_t len,
                              size_t offset, size_t size);

/* Receive one whole message into a malloc'd buffer (*out, never NULL on
 * success, even for an empty message; the caller frees it) of *len bytes.
 * maxlength = 0: no limit; a longer message -> BL_EPROTOCOL (see above). */
BL_API int bl_conn_recv_bytes(bl_conn_t *c, void **out, size_t *len,
                              size_t maxlength);

/* Receive one message into buf + offset (cap = buf's size). 0 and *len =
 * message size. offset > cap -> -EINVAL. A message longer than cap - offset
 * -> BL_EBUFTOOSHORT with *len = its size; the message is kept pending:
 * take it with bl_conn_take_pending(), or the next recv_bytes/
 * recv_bytes_into (with room) returns it before anything else. */
BL_API int bl_conn_recv_bytes_into(bl_conn_t *c, void *buf, size_t cap,
                                   size_t offset, size_t *len);

/* Hand over the message kept by BL_EBUFTOOSHORT (malloc'd, caller frees).
 * -ENOMSG when there is none. */
BL_API int bl_conn_take_pending(bl_conn_t *c, void **out, size_t *len);

/* Whether a message (or EOF) can be read without blocking: 1 or 0.
 * timeout_ms: 0 = check only, < 0 = wait forever. */
BL_API int bl_conn_poll(bl_conn_t *c, int timeout_ms);

/* The fd, or BL_ECLOSED. Owned by the connection. */
BL_API int bl_conn_fileno(const bl_conn_t *c);
BL_API int bl_conn_readable(const bl_conn_t *c); /* 1 or 0 */
BL_API int bl_conn_writable(const bl_conn_t *c); /* 1 or 0 */
BL_API int bl_conn_closed(const bl_conn_t *c);   /* 1 or 0 */

/* billiard's Pipe(duplex, rnonblock, wnonblock) and socket.setblocking:
 * blocking = 0 makes c non-blocking (both directions of a duplex end),
 * 1 (the default) blocking again. A non-blocking connection still never
 * tears a frame:
 *   receive (recv_bytes, recv_bytes_into): -EAGAIN when no byte of a new
 *     message is waiting; nothing is consumed. A message kept by
 *     BL_EBUFTOOSHORT still comes first, and EOF is still BL_EEOF. Once a
 *     message has begun, the rest of it is waited for.
 *   send: -EAGAIN, and nothing written, when the whole frame does not fit
 *     in the free buffer space now (pipe: capacity minus bytes queued;
 *     socket: half of SO_SNDBUF minus unsent bytes, as the kernel also
 *     charges its bookkeeping there). A frame that fits is written whole.
 * (billiard raises BlockingIOError for both and can tear a large frame.)
 * The fd's O_NONBLOCK flag is not changed. 0, BL_ECLOSED, -EINVAL. */
BL_API int bl_conn_set_blocking(bl_conn_t *c, int blocking);
/* 1 when c is blocking (the default), 0 when not. */
BL_API int bl_conn_blocking(const bl_conn_t *c);
/* Close the fd (idempotent: a second close returns 0). */
BL_API int bl_conn_close(bl_conn_t *c);
/* Close, free *c and set it to NULL. NULL-safe. */
BL_API void bl_conn_free(bl_conn_t **c);

#ifdef __cplusplus
}
#endif
#endif /* BILLIARD_CONNECTION_H */
