/* sched.c: the scheduler: a poll() loop over the result pipes of up to N
 * forked run processes. */
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver.h"

static volatile sig_atomic_t interrupted;

static void on_parent_signal(int sig) { interrupted = sig; }

/* In a run process: take the driver's group down, then leave. */
static void on_child_signal(int sig) {
  pid_t pg = bc_driver_live_pgid;
  if (pg > 0) kill(-pg, SIGKILL);
  _exit(128 + sig);
}

typedef struct slot {
  pid_t pid;
  int fd;
  size_t job;
  bc_buf_t out;
} slot_t;

static void write_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int start(slot_t *s, const bc_job_t *job, size_t idx, const bc_run_opts_t *o) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    return -e;
  }
  if (pid == 0) {
    close(p[0]);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    struct sigaction sa = {.sa_handler = on_child_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    json_t *rec = bc_run_scenario(job->sc, job->port, job->repeat, job->method, o);
    char *s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (s) write_all(p[1], s, strlen(s));
    free(s);
    close(p[1]);
    fflush(NULL);
    _exit(0);
  }
  close(p[1]);
  s->pid = pid;
  s->fd = p[0];
  s->job = idx;
  s->out = (bc_buf_t){0};
  return 0;
}

/* The record of a finished run, or a crash record if the run process died. */
static json_t *finish(slot_t *s, const bc_job_t *job) {
  int st = 0;
  while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
  }
  close(s->fd);
  json_t *rec = s->out.len ? json_loads(s->out.s, 0, NULL) : NULL;
  bc_buf_free(&s->out);
  if (!rec) {
    char *why = WIFSIGNALED(st) ? bc_asprintf("killed by signal %d", WTERMSIG(st))
                                : bc_asprintf("exit status %d", WEXITSTATUS(st));
    char *m = bc_asprintf("the harness run process died (%s) without a result", why);
    rec = json_pack("{s:i, s:s, s:s, s:i, s:s, s:i, s:s, s:[]}", "protocol", BC_PROTOCOL,
                    "scenario", job->sc->id, "port", job->port->name, "repeat", (int)job->repeat,
                    "outcome", "crash", "duration_ms", 0, "message", m, "timeline");
    free(why);
    free(m);
    if (job->method) json_object_set_new(rec, "start_method", json_string(job->method));
  }
  s->pid = 0;
  s->fd = -1;
  return rec;
}

int bc_schedule(const bc_job_t *jobs, size_t n, unsigned parallel, const bc_run_opts_t *o,
                bc_on_result_fn cb, void *ctx) {
  if (parallel < 1) parallel = 1;
  slot_t *slots = bc_xcalloc(parallel, sizeof *slots);
  struct pollfd *pfd = bc_xcalloc(parallel, sizeof *pfd);
  size_t *map = bc_xcalloc(parallel, sizeof *map);
  struct sigaction sa = {.sa_handler = on_parent_signal}, old_int, old_term;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN);
  size_t next = 0, running = 0;
  bool serial_running = false;
  int rc = 0;
  while ((next < n || running) && !interrupted) {
    /* Start what may start: a serial job waits for an empty slate and then
     * runs alone. */
    while (next < n && !serial_running && !interrupted) {
      bool serial = bc_scenario_has_flag(jobs[next].sc, "serial");
      if (running >= parallel || (serial && running)) break;
      size_t i = 0;
      while (slots[i].pid) i++;
      int e = start(&slots[i], &jobs[next], next, o);
      if (e < 0) {
        if (!running) { /* nothing will free resources: report and move on */
          json_t *rec = json_pack("{s:i, s:s, s:s, s:i, s:s, s:i, s:s, s:[]}", "protocol",
                                  BC_PROTOCOL, "scenario", jobs[next].sc->id, "port",
                                  jobs[next].port->name, "repeat", (int)jobs[next].repeat,
                                  "outcome", "crash", "duration_ms", 0, "message",
                                  "cannot fork a run process", "timeline");
          if (jobs[next].method)
            json_object_set_new(rec, "start_method", json_string(jobs[next].method));
          cb(rec, ctx);
          json_decref(rec);
          next++;
        }
        break;
      }
      running++;
      serial_running = serial;
      next++;
    }
    size_t np = 0;
    for (size_t i = 0; i < parallel; i++)
      if (slots[i].pid) {
        map[np] = i;
        pfd[np++] = (struct pollfd){slots[i].fd, POLLIN, 0};
      }
    if (!np) continue;
    if (poll(pfd, (nfds_t)np, -1) < 0) {
      if (errno != EINTR) {
        rc = -errno;
        break;
      }
      continue;
    }
    for (size_t x = 0; x < np; x++) {
      slot_t *s = &slots[map[x]];
      if (!pfd[x].revents) continue;
      char buf[65536];
      ssize_t r = read(s->fd, buf, sizeof buf);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r > 0) {
        bc_buf_add(&s->out, buf, (size_t)r);
        continue;
      }
      json_t *rec = finish(s, &jobs[s->job]);
      running--;
      serial_running = false;
      cb(rec, ctx);
      json_decref(rec);
    }
  }
  if (interrupted) {
    for (size_t i = 0; i < parallel; i++)
      if (slots[i].pid) kill(slots[i].pid, SIGTERM);
    for (size_t i = 0; i < parallel; i++)
      if (slots[i].pid) {
        int st;
        while (waitpid(slots[i].pid, &st, 0) < 0 && errno == EINTR) {
        }
        close(slots[i].fd);
        bc_buf_free(&slots[i].out);
      }
    rc = -EINTR;
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  free(slots);
  free(pfd);
  free(map);
  return rc;
}
