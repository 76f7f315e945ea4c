/* driver.h: one driver process: started in its own process group with
 * stdin/stdout pipes; stdout is read as JSON lines (any length), stderr is
 * kept in a ring buffer whose tail is shown on failure. No threads: the
 * runner calls bc_driver_pump() (one poll()) in its waits. */
#ifndef BC_DRIVER_H
#define BC_DRIVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

#define BC_STDERR_RING 16384

typedef struct bc_driver {
  pid_t pid; /* also the process group id */
  int pidfd, in_fd, out_fd, err_fd;
  bc_buf_t outq;      /* bytes waiting to be written to stdin */
  size_t outq_off;
  bc_buf_t partial;   /* an incomplete stdout line */
  bc_strv_t lines;    /* complete stdout lines not taken yet */
  size_t lines_head;
  bool out_eof, exited;
  int status;         /* waitpid status once exited */
  char ring[BC_STDERR_RING];
  size_t ring_total;  /* bytes ever written to the ring */
} bc_driver_t;

/* The process group of the live driver (0 if none), for signal handlers
 * that must take it down when the harness is interrupted. */
extern volatile pid_t bc_driver_live_pgid;

/* argv[0] is looked up in PATH; env: NULL-terminated "K=V" overrides. */
int bc_driver_start(bc_driver_t **out, char *const argv[], char *const env[], char **err);
void bc_driver_send(bc_driver_t *d, const char *line); /* adds the '\n' */
/* One poll() of at most timeout_ms: moves data. Returns 0, or -errno. */
int bc_driver_pump(bc_driver_t *d, int timeout_ms);
char *bc_driver_take_line(bc_driver_t *d); /* malloc'd, NULL if none */
bool bc_driver_reap(bc_driver_t *d);       /* true once exited (never blocks) */
void bc_driver_close_stdin(bc_driver_t *d);
void bc_driver_signal_group(bc_driver_t *d, int sig);
char *bc_driver_stderr_tail(const bc_driver_t *d, int max_lines); /* malloc'd */
char *bc_driver_status_str(int status); /* "exited with status 3" */
/* Kills the group if the driver still runs, reaps it, frees. */
void bc_driver_free(bc_driver_t **d);

#endif
