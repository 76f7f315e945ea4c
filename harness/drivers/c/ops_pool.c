/* ops_pool.c: pool.*, result.* and iter.* ops, and the pool's events.
 *
 * A pool's callbacks arrive on its supervisor thread (or, threads=false,
 * on the driver's stepping thread) and only touch job records under
 * bcd.lock. A job
 * record exists before its submission (it is the callbacks' user pointer);
 * the submission itself runs under bcd.lock so that on_timeout_set, which
 * only knows the job id, always finds the record registered. */
#include "bcd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bcd_iter {
  char *name;
  bl_imap_t *it;
} bcd_iter_t;

typedef struct pool_rec {
  bcd_pool_t p;
  char *initarg;
  /* threads=false: the pool has no supervisor thread and the caller drives
   * it. The harness issues no call while it waits for events, so the
   * driver is that caller: a thread of its own steps the pool. */
  int stepper;
  pthread_t th;
  atomic_int stop;
} pool_rec_t;

/* ---- values ---- */
/* A resolved result's value: the task's JSON, or the list of a map job. */
static json_t *result_value(bl_result_t *r, int is_map, const void *v,
                            size_t len) {
  if (!is_map)
    return bcd_parse(v, len);
  json_t *list = json_array();
  size_t n = bl_result_count(r);
  for (size_t i = 0; i < n; i++) {
    const void *iv;
    size_t il;
    json_t *x = bl_result_item(r, i, &iv, &il) == 0 ? bcd_parse(iv, il)
                                                    : json_null();
    json_array_append_new(list, x ? x : json_null());
  }
  return list;
}

static json_t *error_json(const bl_error_info_t *err) {
  return json_pack("{s:s,s:s}", "type", bl_error_info_type(err), "message",
                   err->message ? err->message : "");
}

/* ---- pool callbacks (supervisor thread) ---- */
static void on_up(bl_pool_t *pool, pid_t pid, void *user) {
  (void)pool;
  bcd_pool_t *p = user;
  bcd_event("worker.up", json_pack("{s:s,s:i}", "pool", p->name, "pid",
                                   (int)pid));
}

static void on_down(bl_pool_t *pool, pid_t pid, int status, void *user) {
  (void)pool;
  bcd_pool_t *p = user;
  bcd_event("worker.down", json_pack("{s:s,s:i,s:i}", "pool", p->name, "pid",
                                     (int)pid, "exitcode", status));
}

/* The name of job id. apply_async registers its job only after the
 * submission returned (it may wait for a putlocks slot, which needs these
 * callbacks to go on), so a hook can run first: wait for the registration,
 * boundedly. */
static char *job_name_of(uint64_t id) {
  char *name = NULL;
  struct timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += 5;
  pthread_mutex_lock(&bcd.lock);
  for (;;) {
    for (bcd_job_t *j = bcd.jobs; j && !name; j = j->next)
      if (j->has_id && j->id == id)
        name = strdup(j->name);
    /* Only a submission in flight can register it (pool.apply's jobs are
     * never registered: no name, no wait). */
    if (name || !bcd.submitting ||
        pthread_cond_timedwait(&bcd.jobs_cv, &bcd.lock, &end) != 0)
      break;
  }
  pthread_mutex_unlock(&bcd.lock);
  return name;
}

static json_t *secs_or_null(uint32_t ms) {
  return ms ? json_real((double)ms / 1000.0) : json_null();
}

static void on_tset(bl_pool_t *pool, uint64_t job, uint32_t soft_ms,
                    uint32_t hard_ms, void *user) {
  (void)pool;
  (void)user;
  char *name = job_name_of(job);
  if (name == NULL) /* pool.apply's own job: no handle */
    return;
  bcd_event("timeout.set", json_pack("{s:s,s:o,s:o}", "job", name, "soft",
                                     secs_or_null(soft_ms), "hard",
                                     secs_or_null(hard_ms)));
  free(name);
}

static void on_tcancel(bl_pool_t *pool, uint64_t job, void *user) {
  (void)pool;
  (void)user;
  char *name = job_name_of(job);
  if (name == NULL)
    return;
  bcd_event("timeout.cancel", json_pack("{s:s}", "job", name));
  free(name);
}

static void on_pool_error(bl_pool_t *pool, int code, const char *message,
                          void *user) {
  (void)pool;
  bcd_pool_t *p = user;
  bcd_event("pool.error",
            json_pack("{s:s,s:{s:s,s:s}}", "pool", p->name, "error", "type",
                      bl_err_exception(code), "message",
                      message ? message : bl_strerror(code)));
}

/* ---- on_process_exit: runs in the worker as it leaves, so it reports
 * through a pipe (one write of one line, atomic below PIPE_BUF) that a
 * relay thread in the driver turns into worker.exit events. ---- */
static int exit_pipe[2] = {-1, -1};

static void on_exit_hook(pid_t pid, int exitcode, void *user) {
  bcd_pool_t *p = user;
  char line[256];
  int n = snprintf(line, sizeof line, "%s %d %d\n", p->name, (int)pid,
                   exitcode);
  if (n > 0 && (size_t)n < sizeof line &&
      write(exit_pipe[1], line, (size_t)n) != n) {
    /* nothing to do in a leaving worker: the event is simply missing */
  }
}

static void *exit_relay(void *arg) {
  (void)arg;
  char buf[4096];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(exit_pipe[0], buf + have, sizeof buf - 1 - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return NULL;
    have += (size_t)n;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      char pool[200];
      int pid, code;
      if (sscanf(line, "%199s %d %d", pool, &pid, &code) == 3)
        bcd_event("worker.exit", json_pack("{s:s,s:i,s:i}", "pool", pool,
                                           "pid", pid, "exitcode", code));
      line = nl + 1;
    }
    have -= (size_t)(line - buf);
    memmove(buf, line, have);
  }
}

/* The relay starts with the first pool that asks; the pipe and the thread
 * live as long as the driver (workers forked later need the write end). */
static int exit_relay_start(void) {
  if (exit_pipe[0] >= 0)
    return 0;
  if (pipe2(exit_pipe, O_CLOEXEC) != 0)
    return -errno;
  pthread_t th;
  if (pthread_create(&th, NULL, exit_relay, NULL) != 0)
    return -EAGAIN;
  pthread_detach(th);
  return 0;
}

/* ---- job callbacks (supervisor thread) ---- */
static void mark_ready(bcd_job_t *j, bl_result_t *r) {
  pthread_mutex_lock(&bcd.lock);
  if (!j->has_id) {
    j->id = bl_result_job_id(r);
    j->has_id = 1;
  }
  j->ready = 1;
  j->busy = 0;
  pthread_mutex_unlock(&bcd.lock);
}

static void on_result(bl_result_t *r, const void *v, size_t len, void *user) {
  bcd_job_t *j = user;
  mark_ready(j, r);
  bcd_event("job.ready", json_pack("{s:s,s:b}", "job", j->name, "ok", 1));
  json_t *val = result_value(r, j->is_map, v, len);
  bcd_event("job.callback", json_pack("{s:s,s:o}", "job", j->name, "value",
                                      val ? val : json_null()));
}

static void on_error(bl_result_t *r, const bl_error_info_t *err, void *user) {
  bcd_job_t *j = user;
  mark_ready(j, r);
  bcd_event("job.ready", json_pack("{s:s,s:b}", "job", j->name, "ok", 0));
  bcd_event("job.error_callback", json_pack("{s:s,s:o}", "job", j->name,
                                            "error", error_json(err)));
}

static void on_accept(bl_result_t *r, pid_t pid, void *user) {
  bcd_job_t *j = user;
  pthread_mutex_lock(&bcd.lock);
  if (!j->has_id) {
    j->id = bl_result_job_id(r);
    j->has_id = 1;
  }
  j->pid = pid;
  if (!j->ready)
    j->busy = 1;
  pthread_mutex_unlock(&bcd.lock);
  bcd_event("job.accepted", json_pack("{s:s,s:i}", "job", j->name, "pid",
                                      (int)pid));
}

/* ---- records ---- */
static void *step_main(void *arg) {
  pool_rec_t *r = arg;
  while (!atomic_load(&r->stop))
    bl_pool_step(r->p.pool, 50); /* BL_ERESTARTFREQ: on_pool_error told */
  return NULL;
}

static void pool_destroy(void *o) {
  pool_rec_t *r = o;
  if (r->stepper) {
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
  }
  bl_pool_free(&r->p.pool);
  free(r->initarg);
  free(r);
}

static void job_destroy(void *o) {
  bcd_job_t *j = o;
  bl_result_free(&j->r);
  free(j);
}

static void iter_destroy(void *o) {
  bcd_iter_t *it = o;
  bl_imap_free(&it->it);
  free(it);
}

/* ---- pool.new ---- */
static json_t *pids_json(bl_pool_t *pool) {
  pid_t pids[1024];
  int n = bl_pool_pids(pool, pids, sizeof pids / sizeof pids[0]);
  json_t *a = json_array();
  for (int i = 0; i < n && i < 1024; i++)
    json_array_append_new(a, json_integer(pids[i]));
  return a;
}

static json_t *op_pool_new(json_t *a, bcd_err_t *e) {
  const char *method = bcd_str(a, "start_method");
  const bl_context_t *ctx;
  if (method && bl_get_context(method, &ctx) != 0) /* Pool(context=...) */
    return bcd_fail(e, "ValueError", "cannot find context for '%s'", method);
  /* Workers start under the given method (NULL = the default); the task
   * catalogue is registered from a constructor, so a spawn or forkserver
   * worker (a fresh image of the driver) finds it (tasks.c). */
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.start_method = method;
  o.threads = bcd_bool(a, "threads", 1);
  if (bcd_has(a, "processes")) {
    double n = bcd_num(a, "processes", 0);
    /* The C API reads 0 as "online CPUs" (the omitted default); an explicit
     * 0 cannot be passed through, and a pool of no worker is refused. */
    if (n < 1)
      return bcd_fail(e, "ValueError", "Number of processes must be at least 1");
    o.processes = (unsigned)n;
  }
  if (bcd_has(a, "maxtasksperchild"))
    o.maxtasksperchild = (unsigned)bcd_num(a, "maxtasksperchild", 0);
  if (bcd_has(a, "max_memory_per_child"))
    o.max_memory_per_child_kib =
        (uint64_t)bcd_num(a, "max_memory_per_child", 0);
  if (bcd_has(a, "time_limit"))
    o.time_limit_ms = (uint32_t)bcd_ms(bcd_num(a, "time_limit", 0));
  if (bcd_has(a, "soft_time_limit"))
    o.soft_time_limit_ms = (uint32_t)bcd_ms(bcd_num(a, "soft_time_limit", 0));
  if (bcd_has(a, "lost_worker_timeout"))
    o.lost_worker_timeout_ms =
        (uint32_t)bcd_ms(bcd_num(a, "lost_worker_timeout", 0));
  if (json_object_get(a, "max_restarts")) /* null = billiard's None: off */
    o.max_restarts = (unsigned)bcd_num(a, "max_restarts", 0);
  if (bcd_has(a, "max_restart_freq"))
    o.max_restart_freq_ms = (uint32_t)bcd_ms(bcd_num(a, "max_restart_freq", 0));
  if (bcd_has(a, "allow_restart"))
    o.allow_restart = bcd_bool(a, "allow_restart", 0);
  if (bcd_has(a, "enable_timeouts"))
    o.enable_timeouts = bcd_bool(a, "enable_timeouts", 0);
  if (bcd_has(a, "synack"))
    o.synack = bcd_bool(a, "synack", 0);
  if (bcd_has(a, "putlocks"))
    o.putlocks = bcd_bool(a, "putlocks", 0);
  if (bcd_has(a, "semaphore")) /* billiard's semaphore: its initial value */
    o.putlock_slots = (unsigned)bcd_num(a, "semaphore", 0);
  if (bcd_bool(a, "on_process_exit", 0)) {
    /* A function pointer (and its pipe) means nothing in a spawn or
     * forkserver worker's fresh image: libbilliard refuses it there. */
    const char *m = method ? method : bl_get_start_method(0);
    if (strcmp(m, "fork") != 0)
      return bcd_unsupported(e, "on_process_exit needs fork workers (start "
                                "method %s)", m);
    if (exit_relay_start() != 0)
      return bcd_fail(e, "OSError", "cannot start the on_process_exit relay");
    o.on_process_exit = on_exit_hook;
  }
  char *name = bcd_new_name(a, "pool", e);
  if (name == NULL)
    return NULL;
  pool_rec_t *rec = calloc(1, sizeof *rec);
  if (rec == NULL) {
    free(name);
    return bcd_fail(e, "MemoryError", "out of memory");
  }
  rec->p.name = name;
  json_t *ini = json_object_get(a, "initializer");
  if (json_is_object(ini)) {
    o.initializer = bcd_str(ini, "task");
    rec->initarg = bcd_dump(json_object_get(ini, "args"));
    o.initarg = rec->initarg;
    o.initarg_len = strlen(rec->initarg);
  }
  o.clock = &bcd.clock.clock;
  o.on_process_up = on_up;
  o.on_process_down = on_down;
  o.on_timeout_set = on_tset;
  o.on_timeout_cancel = on_tcancel;
  o.on_pool_error = on_pool_error;
  o.user = &rec->p;
  int rc = bl_pool_new(&rec->p.pool, &o);
  if (rc != 0) {
    free(rec->initarg);
    free(rec);
    free(name);
    if (rc == -EINVAL)
      return bcd_fail(e, "ValueError", "invalid pool options");
    return bcd_fail_rc(e, rc, NULL, "pool.new");
  }
  if (!o.threads) {
    rec->stepper = pthread_create(&rec->th, NULL, step_main, rec) == 0;
    if (!rec->stepper) {
      bl_pool_free(&rec->p.pool);
      free(rec->initarg);
      free(rec);
      free(name);
      return bcd_fail(e, "OSError", "cannot start the stepping thread");
    }
  }
  bcd_add(name, BCD_POOL, rec, pool_destroy);
  bcd.npools++;
  return json_pack("{s:s,s:o}", "pool", name, "pids", pids_json(rec->p.pool));
}

static bcd_pool_t *get_pool(json_t *a, bcd_err_t *e) {
  pool_rec_t *r = bcd_lookup(a, "pool", BCD_POOL, e);
  return r ? &r->p : NULL;
}

/* ---- submitting ---- */
static void apply_opts(bl_apply_options_t *ao, json_t *a, bcd_job_t *j) {
  bl_apply_options_init(ao);
  if (j != NULL) {
    ao->callback = on_result;
    ao->error_callback = on_error;
    ao->accept_callback = on_accept;
    ao->user = j;
  }
  if (bcd_has(a, "time_limit"))
    ao->time_limit_ms = (uint32_t)bcd_ms(bcd_num(a, "time_limit", 0));
  if (bcd_has(a, "soft_time_limit"))
    ao->soft_time_limit_ms = (uint32_t)bcd_ms(bcd_num(a, "soft_time_limit", 0));
  if (bcd_has(a, "chunksize") && bcd_num(a, "chunksize", 0) > 0)
    ao->chunksize = (size_t)bcd_num(a, "chunksize", 0);
}

typedef struct items {
  size_t n;
  char **blobs;
  size_t *lens;
} items_t;

static void items_free(items_t *it) {
  for (size_t i = 0; i < it->n; i++)
    free(it->blobs[i]);
  free(it->blobs);
  free(it->lens);
}

static int items_of(json_t *a, items_t *it) {
  json_t *arr = json_object_get(a, "items");
  it->n = json_is_array(arr) ? json_array_size(arr) : 0;
  it->blobs = calloc(it->n ? it->n : 1, sizeof *it->blobs);
  it->lens = calloc(it->n ? it->n : 1, sizeof *it->lens);
  if (!it->blobs || !it->lens)
    return -ENOMEM;
  for (size_t i = 0; i < it->n; i++) {
    it->blobs[i] = bcd_dump(json_array_get(arr, i));
    if (it->blobs[i] == NULL)
      return -ENOMEM;
    it->lens[i] = strlen(it->blobs[i]);
  }
  return 0;
}

static bcd_job_t *job_new(json_t *a, bcd_pool_t *p, int is_map,
                          bcd_err_t *e) {
  char *name = bcd_new_name(a, "job", e);
  if (name == NULL)
    return NULL;
  bcd_job_t *j = calloc(1, sizeof *j);
  if (j == NULL) {
    free(name);
    bcd_fail(e, "MemoryError", "out of memory");
    return NULL;
  }
  j->name = name;
  j->pool = p;
  j->is_map = is_map;
  return j;
}

/* Under bcd.lock. */
static void job_register(bcd_job_t *j) {
  if (!j->has_id) {
    j->id = bl_result_job_id(j->r);
    j->has_id = 1;
  }
  j->next = bcd.jobs;
  bcd.jobs = j;
  pthread_cond_broadcast(&bcd.jobs_cv);
}

static json_t *op_apply_async(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  const char *task = bcd_str(a, "task");
  if (p == NULL)
    return NULL;
  if (task == NULL)
    return bcd_fail(e, "ValueError", "missing task");
  bcd_job_t *j = job_new(a, p, 0, e);
  if (j == NULL)
    return NULL;
  char *arg = bcd_dump(json_object_get(a, "args"));
  bl_apply_options_t ao;
  apply_opts(&ao, a, j);
  /* Not under bcd.lock: with putlocks the call waits for a job to resolve,
   * and the job callbacks (supervisor thread) take that lock. */
  bl_result_t *r = NULL;
  pthread_mutex_lock(&bcd.lock);
  bcd.submitting++;
  pthread_mutex_unlock(&bcd.lock);
  int rc = bl_pool_apply_async(p->pool, task, arg, strlen(arg), &ao, &r);
  pthread_mutex_lock(&bcd.lock);
  bcd.submitting--;
  pthread_cond_broadcast(&bcd.jobs_cv);
  j->r = r;
  if (rc == 0)
    job_register(j);
  pthread_mutex_unlock(&bcd.lock);
  free(arg);
  if (rc != 0) {
    free(j->name);
    free(j);
    return bcd_fail_rc(e, rc, NULL, "apply_async");
  }
  bcd_add(j->name, BCD_JOB, j, job_destroy);
  return json_pack("{s:s}", "job", j->name);
}

/* Wait for r and answer {value} or its error. */
static json_t *get_value(bl_result_t *r, int is_map, int timeout_ms,
                         bcd_err_t *e) {
  const void *v = NULL;
  size_t len = 0;
  bl_error_info_t err = {0};
  int rc = bl_result_get(r, timeout_ms, &v, &len, &err);
  if (rc == BL_ETIMEOUT) {
    bl_error_info_clear(&err);
    bcd_fail(e, "TimeoutError", "result not ready in time");
    e->code = "BL_ETIMEOUT";
    return NULL;
  }
  if (rc != 0) {
    bcd_fail_rc(e, rc, &err, "result.get");
    bl_error_info_clear(&err);
    return NULL;
  }
  json_t *val = result_value(r, is_map, v, len);
  if (val == NULL)
    return bcd_fail(e, "ValueError", "the task returned malformed JSON");
  return json_pack("{s:o}", "value", val);
}

static json_t *op_apply(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  const char *task = bcd_str(a, "task");
  if (p == NULL)
    return NULL;
  if (task == NULL)
    return bcd_fail(e, "ValueError", "missing task");
  char *arg = bcd_dump(json_object_get(a, "args"));
  bl_apply_options_t ao;
  apply_opts(&ao, a, NULL);
  bl_result_t *r = NULL;
  int rc = bl_pool_apply_async(p->pool, task, arg, strlen(arg), &ao, &r);
  free(arg);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "apply");
  json_t *res = get_value(r, 0, bcd_timeout_ms(a, "timeout", -1), e);
  bl_result_free(&r);
  return res;
}

typedef int (*map_fn)(bl_pool_t *, const char *, const void *const *,
                      const size_t *, size_t, const bl_apply_options_t *,
                      bl_result_t **);

static json_t *map_async(json_t *a, bcd_err_t *e, map_fn fn) {
  bcd_pool_t *p = get_pool(a, e);
  const char *task = bcd_str(a, "task");
  if (p == NULL)
    return NULL;
  if (task == NULL)
    return bcd_fail(e, "ValueError", "missing task");
  items_t it = {0};
  if (items_of(a, &it) != 0) {
    items_free(&it);
    return bcd_fail(e, "MemoryError", "out of memory");
  }
  bcd_job_t *j = job_new(a, p, 1, e);
  if (j == NULL) {
    items_free(&it);
    return NULL;
  }
  bl_apply_options_t ao;
  apply_opts(&ao, a, j);
  pthread_mutex_lock(&bcd.lock);
  int rc = fn(p->pool, task, (const void *const *)it.blobs, it.lens, it.n,
              &ao, &j->r);
  if (rc == 0)
    job_register(j);
  pthread_mutex_unlock(&bcd.lock);
  items_free(&it);
  if (rc != 0) {
    free(j->name);
    free(j);
    return bcd_fail_rc(e, rc, NULL, "map_async");
  }
  bcd_add(j->name, BCD_JOB, j, job_destroy);
  return json_pack("{s:s}", "job", j->name);
}

static json_t *op_map_async(json_t *a, bcd_err_t *e) {
  return map_async(a, e, bl_pool_map_async);
}

static json_t *op_starmap_async(json_t *a, bcd_err_t *e) {
  return map_async(a, e, bl_pool_starmap_async);
}

static json_t *map_sync(json_t *a, bcd_err_t *e, map_fn fn) {
  bcd_pool_t *p = get_pool(a, e);
  const char *task = bcd_str(a, "task");
  if (p == NULL)
    return NULL;
  if (task == NULL)
    return bcd_fail(e, "ValueError", "missing task");
  items_t it = {0};
  if (items_of(a, &it) != 0) {
    items_free(&it);
    return bcd_fail(e, "MemoryError", "out of memory");
  }
  bl_apply_options_t ao;
  apply_opts(&ao, a, NULL);
  bl_result_t *r = NULL;
  int rc = fn(p->pool, task, (const void *const *)it.blobs, it.lens, it.n,
              &ao, &r);
  items_free(&it);
  if (rc != 0)
    return bcd_fail_rc(e, rc, NULL, "map");
  json_t *res = get_value(r, 1, bcd_timeout_ms(a, "timeout", -1), e);
  bl_result_free(&r);
  return res;
}

static json_t *op_map(json_t *a, bcd_err_t *e) {
  return map_sync(a, e, bl_pool_map_async);
}

static json_t *op_starmap(json_t *a, bcd_err_t *e) {
  return map_sync(a, e, bl_pool_starmap_async);
}

typedef int (*imap_fn)(bl_pool_t *, const char *, const void *const *,
                       const size_t *, size_t, const bl_apply_options_t *,
                       bl_imap_t **);

static json_t *imap(json_t *a, bcd_err_t *e, imap_fn fn) {
  bcd_pool_t *p = get_pool(a, e);
  const char *task = bcd_str(a, "task");
  if (p == NULL)
    return NULL;
  if (task == NULL)
    return bcd_fail(e, "ValueError", "missing task");
  char *name = bcd_new_name(a, "iter", e);
  if (name == NULL)
    return NULL;
  items_t it = {0};
  bcd_iter_t *rec = calloc(1, sizeof *rec);
  if (rec == NULL || items_of(a, &it) != 0) {
    items_free(&it);
    free(rec);
    free(name);
    return bcd_fail(e, "MemoryError", "out of memory");
  }
  bl_apply_options_t ao;
  apply_opts(&ao, a, NULL);
  int rc = fn(p->pool, task, (const void *const *)it.blobs, it.lens, it.n,
              &ao, &rec->it);
  items_free(&it);
  if (rc != 0) {
    free(rec);
    free(name);
    return bcd_fail_rc(e, rc, NULL, "imap");
  }
  rec->name = name;
  bcd_add(name, BCD_ITER, rec, iter_destroy);
  return json_pack("{s:s}", "iter", name);
}

static json_t *op_imap(json_t *a, bcd_err_t *e) {
  return imap(a, e, bl_pool_imap);
}

static json_t *op_imap_unordered(json_t *a, bcd_err_t *e) {
  return imap(a, e, bl_pool_imap_unordered);
}

static json_t *op_iter_next(json_t *a, bcd_err_t *e) {
  bcd_iter_t *it = bcd_lookup(a, "iter", BCD_ITER, e);
  if (it == NULL)
    return NULL;
  const void *v = NULL;
  size_t len = 0;
  bl_error_info_t err = {0};
  int rc = bl_imap_next(it->it, bcd_timeout_ms(a, "timeout", -1), &v, &len,
                        &err);
  if (rc == 0) {
    bl_error_info_clear(&err);
    json_t *val = bcd_parse(v, len);
    if (val == NULL)
      return bcd_fail(e, "ValueError", "the task returned malformed JSON");
    return json_pack("{s:o}", "value", val);
  }
  if (rc == BL_EEOF) {
    bl_error_info_clear(&err);
    return bcd_fail(e, "StopIteration", "%s", "");
  }
  if (rc == BL_ETIMEOUT) {
    bl_error_info_clear(&err);
    bcd_fail(e, "TimeoutError", "no item in time");
    e->code = "BL_ETIMEOUT";
    return NULL;
  }
  bcd_fail_rc(e, rc, &err, "iter.next");
  bl_error_info_clear(&err);
  return NULL;
}

/* ---- lifecycle ---- */
static json_t *ok_or(int rc, bcd_err_t *e, const char *what) {
  return rc == 0 ? json_object() : bcd_fail_rc(e, rc, NULL, what);
}

static json_t *op_close(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  return p ? ok_or(bl_pool_close(p->pool), e, "close") : NULL;
}

static json_t *op_terminate(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  return p ? ok_or(bl_pool_terminate(p->pool), e, "terminate") : NULL;
}

static json_t *op_join(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  if (p == NULL)
    return NULL;
  int rc = bl_pool_join(p->pool, bcd_timeout_ms(a, "timeout", -1));
  if (rc == BL_ETIMEOUT) {
    bcd_fail(e, "TimeoutError", "pool.join did not return in time");
    e->code = "BL_ETIMEOUT";
    return NULL;
  }
  if (rc == BL_ESTATE && bl_pool_state(p->pool) == BL_POOL_RUN) {
    bcd_fail(e, "AssertionError", "%s", "");
    e->code = "BL_ESTATE";
    return NULL;
  }
  return ok_or(rc, e, "join");
}

static unsigned n_arg(json_t *a) {
  double n = bcd_num(a, "n", 1);
  return n < 0 ? 0 : (unsigned)n;
}

static json_t *op_grow(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  return p ? ok_or(bl_pool_grow(p->pool, n_arg(a)), e, "grow") : NULL;
}

static json_t *op_shrink(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  if (p == NULL)
    return NULL;
  int rc = bl_pool_shrink(p->pool, n_arg(a));
  if (rc == -EBUSY)
    return bcd_fail(e, "ValueError", "Can't shrink pool. All processes busy!");
  return ok_or(rc, e, "shrink");
}

static json_t *op_restart(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  return p ? ok_or(bl_pool_restart(p->pool), e, "restart") : NULL;
}

static int pid_arg(const json_t *v) {
  if (json_is_integer(v))
    return (int)json_integer_value(v);
  if (json_is_string(v))
    return atoi(json_string_value(v));
  return 0;
}

static json_t *op_terminate_job(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  if (p == NULL)
    return NULL;
  int sig = 0;
  if (bcd_has(a, "signal") &&
      (sig = bcd_signum(json_object_get(a, "signal"))) < 0)
    return bcd_fail(e, "ValueError", "unknown signal");
  if (bcd_has(a, "job")) {
    bcd_job_t *j = bcd_lookup(a, "job", BCD_JOB, e);
    if (j == NULL)
      return NULL;
    return ok_or(bl_pool_terminate_job(p->pool, j->r, sig), e,
                 "terminate_job");
  }
  pid_t pid = pid_arg(json_object_get(a, "pid"));
  if (pid <= 0)
    return bcd_fail(e, "ValueError", "terminate_job needs a job or a pid");
  /* billiard's terminate_job(pid): fenced on the job that pid runs (D8). */
  uint64_t id = 0;
  int found = 0;
  pthread_mutex_lock(&bcd.lock);
  for (bcd_job_t *j = bcd.jobs; j; j = j->next)
    if (j->pool == p && j->busy && j->pid == pid && j->has_id) {
      id = j->id;
      found = 1;
      break;
    }
  pthread_mutex_unlock(&bcd.lock);
  if (!found)
    return bcd_fail(e, "ProcessLookupError", "no job known to run on pid %d",
                    (int)pid);
  return ok_or(bl_pool_terminate_job_pid(p->pool, pid, id, sig), e,
               "terminate_job");
}

static json_t *op_info(json_t *a, bcd_err_t *e) {
  bcd_pool_t *p = get_pool(a, e);
  if (p == NULL)
    return NULL;
  /* A pool stopped by the restart limiter (BROKEN) refuses work like a
   * closed one; billiard closes its pool on a trip, so report CLOSE. */
  static const char *const states[] = {"RUN", "CLOSE", "TERMINATE", "CLOSE"};
  int st = bl_pool_state(p->pool);
  json_t *busy = json_object();
  pthread_mutex_lock(&bcd.lock);
  for (bcd_job_t *j = bcd.jobs; j; j = j->next) {
    if (j->pool != p || !j->busy || j->pid <= 0)
      continue;
    char key[24];
    snprintf(key, sizeof key, "%d", (int)j->pid);
    json_t *l = json_object_get(busy, key);
    if (l == NULL) {
      l = json_array();
      json_object_set_new(busy, key, l);
    }
    json_array_append_new(l, json_string(j->name));
  }
  pthread_mutex_unlock(&bcd.lock);
  return json_pack("{s:s,s:o,s:o,s:b}", "state",
                   st >= 0 && st <= 3 ? states[st] : "RUN", "pids",
                   pids_json(p->pool), "busy", busy, "broken",
                   st == BL_POOL_BROKEN);
}

/* ---- results ---- */
static json_t *op_get(json_t *a, bcd_err_t *e) {
  bcd_job_t *j = bcd_lookup(a, "job", BCD_JOB, e);
  return j ? get_value(j->r, j->is_map, bcd_timeout_ms(a, "timeout", -1), e)
           : NULL;
}

static json_t *op_wait(json_t *a, bcd_err_t *e) {
  bcd_job_t *j = bcd_lookup(a, "job", BCD_JOB, e);
  if (j == NULL)
    return NULL;
  int rc = bl_result_wait(j->r, bcd_timeout_ms(a, "timeout", -1));
  return json_pack("{s:b}", "ready", rc == 0);
}

static json_t *op_ready(json_t *a, bcd_err_t *e) {
  bcd_job_t *j = bcd_lookup(a, "job", BCD_JOB, e);
  return j ? json_pack("{s:b}", "ready", bl_result_ready(j->r) == 1) : NULL;
}

static json_t *op_successful(json_t *a, bcd_err_t *e) {
  bcd_job_t *j = bcd_lookup(a, "job", BCD_JOB, e);
  if (j == NULL)
    return NULL;
  int rc = bl_result_successful(j->r);
  if (rc < 0)
    return bcd_fail_rc(e, rc, NULL, "successful");
  return json_pack("{s:b}", "successful", rc == 1);
}

static json_t *op_pid(json_t *a, bcd_err_t *e) {
  bcd_job_t *j = bcd_lookup(a, "job", BCD_JOB, e);
  if (j == NULL)
    return NULL;
  pid_t pid = bl_result_worker_pid(j->r);
  return json_pack("{s:o}", "pid", pid > 0 ? json_integer(pid) : json_null());
}

const bcd_op_t bcd_ops_pool[] = {
    {"pool.new", op_pool_new},
    {"pool.apply_async", op_apply_async},
    {"pool.apply", op_apply},
    {"pool.map_async", op_map_async},
    {"pool.starmap_async", op_starmap_async},
    {"pool.map", op_map},
    {"pool.starmap", op_starmap},
    {"pool.imap", op_imap},
    {"pool.imap_unordered", op_imap_unordered},
    {"iter.next", op_iter_next},
    {"pool.close", op_close},
    {"pool.terminate", op_terminate},
    {"pool.join", op_join},
    {"pool.grow", op_grow},
    {"pool.shrink", op_shrink},
    {"pool.restart", op_restart},
    {"pool.terminate_job", op_terminate_job},
    {"pool.info", op_info},
    {"result.get", op_get},
    {"result.wait", op_wait},
    {"result.ready", op_ready},
    {"result.successful", op_successful},
    {"result.pid", op_pid},
    {NULL, NULL},
};

void bcd_wake_pools(void) {
  for (bcd_handle_t *h = bcd.handles; h; h = h->next)
    if (h->kind == BCD_POOL)
      bl_pool_wakeup(((pool_rec_t *)h->obj)->p.pool);
}
