/* test_pool_methods.c: pool workers started by spawn (a re-executed image
 * of this test program) and forkserver (children of the caller cloned by
 * the server). Every pool semantics must hold there as under fork: results,
 * map, the real worker pid, the initializer and its argument, worker loss
 * and replacement, the soft limit (the shared page is a memfd there), the
 * hard limit, recycling, terminate. Also billiard's Process-N:M names for
 * the children of a spawn/forkserver child.
 *
 * Tasks are registered from a constructor: main() never runs in a spawn
 * child or in the forkserver (the contract docs/contexts.md states). Under
 * valgrind forkserver tests skip (valgrind refuses clone(CLONE_PARENT));
 * spawn runs there, on the death-pipe fallback carried across the exec. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "helpers.h"
#include "pool_tasks.h"
#include "poolint.h"

/* The worker's own name, as bl_current_process reports it there. */
static int tk_myname(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)a, (void)n;
  bl_process_info_t me;
  if (bl_current_process(&me) != 0) return bl_task_fail(c, "OSError", "no name", NULL);
  return bl_task_return(c, me.name, strlen(me.name) + 1);
}

static int pm_nop(const void *a, size_t n) {
  (void)a, (void)n;
  return 0;
}

/* In a spawn/forkserver child: a child it creates is named
 * Process-<its identity>:1 and runs (fork). 0 = both hold. */
static int pm_names(const void *a, size_t n) {
  (void)a, (void)n;
  bl_process_info_t me;
  if (bl_current_process(&me) != 0) return 10;
  bl_process_t *p = NULL;
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = "fork";
  if (bl_process_new(&p, "pm/nop", NULL, 0, &o) != 0) return 11;
  char want[160];
  snprintf(want, sizeof want, "%s:1", me.name);
  int rc = strcmp(bl_process_name(p), want) == 0 ? 0 : 12;
  if (rc == 0 && (bl_process_start(p) != 0 || bl_process_join(p, 30000) != 0)) rc = 13;
  int code = -1;
  if (rc == 0 && (bl_process_exitcode(p, &code) != 0 || code != 0)) rc = 14;
  bl_process_free(&p);
  return rc;
}

__attribute__((constructor)) static void reg(void) {
  t_register_pool_tasks();
  bl_register_task("myname", tk_myname);
  bl_register_target("pm/nop", pm_nop);
  bl_register_target("pm/names", pm_names);
}

TestSuite(pool_methods, .timeout = 120);

static void need(const char *method) {
  if (strcmp(method, "forkserver") == 0 && t_under_valgrind())
    cr_skip_test("valgrind refuses clone(CLONE_PARENT): no forkserver there");
}

static bl_pool_t *mpool(const char *method, unsigned n, void (*tweak)(bl_pool_options_t *)) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = n;
  o.start_method = method;
  if (tweak) tweak(&o);
  bl_pool_t *p = NULL;
  int rc = bl_pool_new(&p, &o);
  cr_assert_eq(rc, 0, "%s: bl_pool_new: %s", method, bl_strerror(rc));
  return p;
}

static int32_t apply_int(bl_pool_t *p, const char *task, int32_t arg, int *rc) {
  bl_result_t *r = NULL;
  *rc = t_apply_int(p, task, arg, NULL, &r);
  if (*rc) return -1;
  int32_t v = t_get_int(r, rc);
  bl_result_free(&r);
  return v;
}

static int is_worker(bl_pool_t *p, pid_t pid) {
  pid_t pids[8];
  int n = bl_pool_pids(p, pids, 8);
  for (int i = 0; i < n && i < 8; i++)
    if (pids[i] == pid) return 1;
  return 0;
}

/* ---- apply, map, identity, initializer ---- */

static int32_t initarg = 41;
static void with_init(bl_pool_options_t *o) {
  o->initializer = "init_ok";
  o->initarg = &initarg;
  o->initarg_len = sizeof initarg;
}

static void apply_map_identity(const char *method, int threads) {
  need(method);
  /* Every spawn worker is a new valgrind instance (seconds each). */
  if (!threads && t_under_valgrind()) cr_skip_test("slow under valgrind: threads = 1 covers it");
  bl_context_t const *ctx = NULL;
  cr_assert_eq(bl_get_context(method, &ctx), 0);
  bl_pool_options_t o;
  bl_context_pool_options(ctx, &o);
  cr_assert_str_eq(o.start_method, method);
  o.processes = 2;
  o.threads = threads;
  with_init(&o);
  bl_pool_t *p = NULL;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  int rc;
  cr_expect_eq(apply_int(p, "square", 7, &rc), 49);
  cr_expect_eq(rc, 0);
  cr_expect_eq(apply_int(p, "inited", 0, &rc), 41, "initializer argument");

  int32_t v[20];
  const void *args[20];
  size_t lens[20];
  for (int i = 0; i < 20; i++) v[i] = i, args[i] = &v[i], lens[i] = sizeof v[i];
  bl_result_t *m = NULL;
  cr_assert_eq(bl_pool_map(p, "square", args, lens, 20, NULL, &m, NULL), 0);
  /* The shared map path: these workers mapped the arena's memfd. */
  cr_expect_not_null(m->mj, "%s: map through the arena", method);
  for (size_t i = 0; i < 20; i++) {
    const void *it;
    size_t l;
    cr_assert_eq(bl_result_item(m, i, &it, &l), 0);
    cr_expect_eq(t_int(it, l), (int32_t)(i * i));
  }
  bl_result_free(&m);

  /* The pid a task reports is a real, live worker of this pool, and the
   * worker calls itself by the name the pool gives it. */
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "pid", 0, NULL, &r), 0);
  pid_t pid = t_get_int(r, &rc);
  cr_expect_eq(bl_result_worker_pid(r), pid);
  bl_result_free(&r);
  cr_expect(is_worker(p, pid), "%s: pid %d is not a worker", method, (int)pid);
  cr_expect_neq(pid, getpid());
  cr_assert_eq(t_apply_int(p, "myname", 0, NULL, &r), 0);
  const void *nm = NULL;
  size_t nl = 0;
  cr_assert_eq(bl_result_get(r, 30000, &nm, &nl, NULL), 0);
  char want[64];
  cr_assert_eq(bl_pool_worker_name(p, bl_result_worker_pid(r), want, sizeof want), 0);
  cr_expect_str_eq((const char *)nm, want);
  const char *prefix = strcmp(method, "spawn") == 0 ? "SpawnPoolWorker-" : "ForkServerPoolWorker-";
  cr_expect(strncmp(want, prefix, strlen(prefix)) == 0, "%s", want);
  bl_result_free(&r);
  cr_expect_eq(bl_pool_close(p), 0);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_methods, spawn_apply_map_identity) { apply_map_identity("spawn", 1); }
Test(pool_methods, forkserver_apply_map_identity) { apply_map_identity("forkserver", 1); }
Test(pool_methods, spawn_caller_driven) { apply_map_identity("spawn", 0); }
Test(pool_methods, forkserver_caller_driven) { apply_map_identity("forkserver", 0); }

/* ---- worker loss ---- */

static void worker_loss(const char *method) {
  need(method);
  bl_pool_t *p = mpool(method, 2, NULL);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "die", SIGKILL, NULL, &r), 0);
  bl_error_info_t err = {0};
  cr_assert_eq(bl_result_get(r, 30000, NULL, NULL, &err), BL_EWORKERLOST);
  char want[128];
  snprintf(want, sizeof want, "Worker exited prematurely: signal 9 (SIGKILL) Job: %llu.",
           (unsigned long long)bl_result_job_id(r));
  cr_expect_str_eq(err.message, want);
  bl_error_info_clear(&err);
  bl_result_free(&r);

  /* An external SIGKILL of the worker running a job, by its pid. */
  cr_assert_eq(t_apply_int(p, "csleep", 20000, NULL, &r), 0);
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_accepted(r) && t_now_ms() < end) bl_result_wait(r, 5);
  pid_t pid = bl_result_worker_pid(r);
  cr_assert_gt(pid, 0);
  cr_assert(is_worker(p, pid));
  cr_assert_eq(kill(pid, SIGKILL), 0); /* our own child */
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, NULL), BL_EWORKERLOST);
  bl_result_free(&r);

  /* Replaced: two workers again, and they work. */
  int rc;
  for (int i = 0; i < 4; i++) {
    cr_expect_eq(apply_int(p, "square", i, &rc), i * i);
    cr_expect_eq(rc, 0);
  }
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 2);
  cr_expect(!is_worker(p, pid));
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_methods, spawn_worker_loss) { worker_loss("spawn"); }
Test(pool_methods, forkserver_worker_loss) { worker_loss("forkserver"); }

/* ---- time limits ---- */

static void limits(const char *method) {
  need(method);
  bl_pool_t *p = mpool(method, 1, NULL);
  /* Soft: the flag lives in the memfd page the worker mapped itself. */
  bl_apply_options_t ao;
  bl_apply_options_init(&ao);
  ao.soft_time_limit_ms = 100;
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "csleep", 20000, &ao, &r), 0);
  const void *v = NULL;
  size_t l = 0;
  cr_assert_eq(bl_result_get(r, 30000, &v, &l, NULL), 0);
  cr_expect_str_eq((const char *)v, "soft");
  bl_result_free(&r);

  /* Hard: fails the job, the worker is killed and replaced. */
  bl_apply_options_init(&ao);
  ao.time_limit_ms = 200;
  cr_assert_eq(t_apply_int(p, "sleep", 20000, &ao, &r), 0);
  bl_error_info_t e = {0};
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &e), BL_ETIMELIMIT);
  cr_expect_str_eq(e.message, "TimeLimitExceeded(0.2,)");
  bl_error_info_clear(&e);
  pid_t old = bl_result_worker_pid(r);
  bl_result_free(&r);
  int rc;
  pid_t now = apply_int(p, "pid", 0, &rc);
  cr_expect_eq(rc, 0);
  cr_expect_neq(now, old);
  cr_expect(is_worker(p, now));
  bl_pool_free(&p);
}

Test(pool_methods, spawn_time_limits) { limits("spawn"); }
Test(pool_methods, forkserver_time_limits) { limits("forkserver"); }

/* ---- recycling ---- */

static void maxtasks2(bl_pool_options_t *o) { o->maxtasksperchild = 2; }

static void recycling(const char *method) {
  need(method);
  bl_pool_t *p = mpool(method, 1, maxtasks2);
  pid_t pids[6];
  int rc, n = t_under_valgrind() ? 4 : 6;
  for (int i = 0; i < n; i++) {
    pids[i] = apply_int(p, "pid", 0, &rc);
    cr_assert_eq(rc, 0);
  }
  for (int i = 0; i < n; i += 2) {
    cr_expect_eq(pids[i], pids[i + 1]);
    if (i + 2 < n) cr_expect_neq(pids[i], pids[i + 2]);
  }
  bl_pool_close(p);
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  bl_pool_free(&p);
}

Test(pool_methods, spawn_maxtasksperchild) { recycling("spawn"); }
Test(pool_methods, forkserver_maxtasksperchild) { recycling("forkserver"); }

/* ---- terminate ---- */

static void terminate(const char *method) {
  need(method);
  bl_pool_t *p = mpool(method, 2, NULL);
  bl_result_t *r[6];
  for (int i = 0; i < 6; i++) cr_assert_eq(t_apply_int(p, "sleep", 20000, NULL, &r[i]), 0);
  uint64_t end = t_now_ms() + 30000;
  while (!bl_result_accepted(r[0]) && t_now_ms() < end) bl_result_wait(r[0], 5);
  pid_t pids[2];
  cr_assert_eq(bl_pool_pids(p, pids, 2), 2);
  uint64_t t0 = t_now_ms();
  cr_assert_eq(bl_pool_terminate(p), 0);
  cr_expect_lt(t_now_ms() - t0, 15000); /* loose: nobody slept 20 s */
  for (int i = 0; i < 6; i++) {
    bl_error_info_t e = {0};
    cr_expect_eq(bl_result_get(r[i], 0, NULL, NULL, &e), BL_ETERMINATED);
    bl_error_info_clear(&e);
    bl_result_free(&r[i]);
  }
  cr_expect_eq(bl_pool_join(p, 30000), 0);
  cr_expect_eq(bl_pool_pids(p, NULL, 0), 0);
  /* Reaped: no such process is left (our children, not recycled yet). */
  for (int i = 0; i < 2; i++) cr_expect_eq(kill(pids[i], 0), -1);
  bl_pool_free(&p);
}

Test(pool_methods, spawn_terminate) { terminate("spawn"); }
Test(pool_methods, forkserver_terminate) { terminate("forkserver"); }

/* ---- options and start failures ---- */

static void exit_cb(pid_t pid, int code, void *u) { (void)pid, (void)code, (void)u; }

Test(pool_methods, options_checked) {
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  cr_expect_null(o.start_method);
  o.processes = 1;
  bl_pool_t *p = NULL;
  o.start_method = "vfork";
  cr_expect_eq(bl_pool_new(&p, &o), -EINVAL);
  o.start_method = "spawn";
  o.on_process_exit = exit_cb;
  cr_expect_eq(bl_pool_new(&p, &o), BL_ENOTSUPPORTED);
  cr_expect_null(p);
  o.start_method = "fork"; /* fine there */
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  char name[64];
  pid_t pid;
  cr_assert_eq(bl_pool_pids(p, &pid, 1), 1);
  cr_assert_eq(bl_pool_worker_name(p, pid, name, sizeof name), 0);
  cr_expect(strncmp(name, "ForkPoolWorker-", 15) == 0, "%s", name);
  bl_pool_free(&p);
}

Test(pool_methods, spawn_of_a_bad_executable_fails_pool_new) {
  int fds = t_count_fds();
  cr_assert_eq(bl_set_executable("/nonexistent/billiard-program"), 0);
  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 2;
  o.start_method = "spawn";
  bl_pool_t *p = NULL;
  cr_expect_eq(bl_pool_new(&p, &o), -ENOENT);
  cr_expect_null(p);
  cr_assert_eq(bl_set_executable(NULL), 0);
  cr_expect_eq(t_count_fds(), fds);
}

/* ---- Process-N:M from spawn/forkserver children ---- */

static void names(const char *method) {
  need(method);
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = method;
  bl_process_t *p = NULL;
  cr_assert_eq(bl_process_new(&p, "pm/names", NULL, 0, &o), 0);
  cr_assert_eq(bl_process_start(p), 0);
  cr_assert_eq(bl_process_join(p, 60000), 0);
  int code = -1;
  cr_assert_eq(bl_process_exitcode(p, &code), 0);
  cr_expect_eq(code, 0, "%s: child check %d", method, code);
  bl_process_free(&p);
}

Test(pool_methods, spawn_child_names_its_children_n_m) { names("spawn"); }
Test(pool_methods, forkserver_child_names_its_children_n_m) { names("forkserver"); }

/* ---- the registration contract ---- */

static int tk_late(bl_task_ctx_t *c, const void *a, size_t n) { return tk_square(c, a, n); }
static int tk_late_init(bl_task_ctx_t *c, const void *a, size_t n) {
  (void)c, (void)a, (void)n;
  return 0;
}

/* Registered at run time, as in main(): known here, unknown in a spawn
 * worker's fresh image. The job fails there (LookupError), the worker
 * lives on; a late initializer makes every worker exit 1 until the
 * restart limiter breaks the pool. */
Test(pool_methods, spawn_needs_constructor_registration) {
  cr_assert_eq(bl_register_task("pm/late", tk_late), 0);
  cr_assert_eq(bl_register_task("pm/late_init", tk_late_init), 0);
  bl_pool_t *p = mpool("spawn", 1, NULL);
  bl_result_t *r = NULL;
  cr_assert_eq(t_apply_int(p, "pm/late", 3, NULL, &r), 0);
  bl_error_info_t err = {0};
  cr_expect_eq(bl_result_get(r, 30000, NULL, NULL, &err), BL_ENOTFOUND);
  cr_expect_str_eq(bl_error_info_type(&err), "LookupError");
  cr_expect_str_eq(err.message, "pm/late");
  bl_error_info_clear(&err);
  bl_result_free(&r);
  int rc;
  cr_expect_eq(apply_int(p, "square", 3, &rc), 9);
  bl_pool_free(&p);

  bl_pool_options_t o;
  bl_pool_options_init(&o);
  o.processes = 1;
  o.start_method = "spawn";
  o.initializer = "pm/late_init";
  o.max_restarts = 1;
  o.max_restart_freq_ms = 60000;
  cr_assert_eq(bl_pool_new(&p, &o), 0);
  rc = bl_pool_apply_async(p, "noop", NULL, 0, NULL, &r);
  if (rc == 0) {
    cr_expect_eq(bl_result_get(r, 60000, NULL, NULL, NULL), BL_ERESTARTFREQ);
    bl_result_free(&r);
  } else {
    cr_expect_eq(rc, BL_ENOTRUNNING); /* broke before the submit */
  }
  cr_expect_eq(bl_pool_state(p), BL_POOL_BROKEN);
  bl_pool_free(&p);
}
