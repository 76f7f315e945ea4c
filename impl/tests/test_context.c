/* test_context.c: the default start method (set once unless forced),
 * contexts, and Processes under spawn (re-exec; the target found by the
 * pre-main constructor) and forkserver (server, preload, cleanup). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <billiard/context.h>
#include <billiard/errors.h>
#include <billiard/process.h>
#include <billiard/task.h>
#include <billiard/util.h>

#include "helpers.h"
#include "internal.h"
#include "startmethod.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

/* Set in the test process before a start: a fork child sees it, a spawn
 * child (fresh image) does not. */
static int touched;
static int preloaded;

static int t_ret(const void *arg, size_t len) {
  int v = 0;
  if (len == sizeof v) memcpy(&v, arg, sizeof v);
  return v;
}
static int t_touched(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return touched;
}
static int t_preloaded(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return preloaded;
}
static int t_preload(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  preloaded = 42;
  return 0;
}
/* 0 if the argument is n bytes of the pattern i*7. */
static int t_big(const void *arg, size_t len) {
  const unsigned char *b = arg;
  if (len != 200000) return 2;
  for (size_t i = 0; i < len; i++)
    if (b[i] != (unsigned char)(i * 7)) return 3;
  return 0;
}
static int t_identity(const void *arg, size_t len) {
  pid_t want;
  if (len != sizeof want) return 10;
  memcpy(&want, arg, sizeof want);
  bl_process_info_t me;
  pid_t pp = 0;
  if (bl_current_process(&me) || strcmp(me.name, "spawned") != 0) return 11;
  if (bl_parent_process(&pp) != 1 || pp != want) return 12;
  return 0;
}

/* Registered in a constructor: visible in re-executed images too (the
 * contract spawn documents). */
__attribute__((constructor)) static void reg(void) {
  bl_register_target("ctx/ret", t_ret);
  bl_register_target("ctx/touched", t_touched);
  bl_register_target("ctx/preloaded", t_preloaded);
  bl_register_target("ctx/preload", t_preload);
  bl_register_target("ctx/big", t_big);
  bl_register_target("ctx/identity", t_identity);
}

static void skip_under_valgrind(void) {
  /* valgrind refuses clone(CLONE_PARENT): no forkserver there. (spawn
   * runs: its child keeps the death pipe, valgrind's stand-in for a
   * pidfd, across the exec.) */
  if (t_under_valgrind()) cr_skip_test("forkserver: valgrind refuses clone(CLONE_PARENT)");
}

/* Run target under method; return its exit code, or the start error. */
static int run(const char *method, const char *target, const void *arg, size_t len,
               const char *name) {
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = method;
  o.name = name;
  bl_process_t *p = NULL;
  int rc = bl_process_new(&p, target, arg, len, &o);
  if (rc) return rc;
  rc = bl_process_start(p);
  if (rc == 0) {
    cr_assert_eq(bl_process_join(p, 60000), 0);
    cr_assert_eq(bl_process_exitcode(p, &rc), 0);
  }
  bl_process_free(&p);
  return rc;
}

/* ---- default method and contexts ---- */

Test(context, set_start_method_once_unless_forced) {
  cr_expect_null(bl_get_start_method(1));
  cr_expect_eq(bl_set_start_method("spawn", 0), 0);
  cr_expect_str_eq(bl_get_start_method(0), "spawn");
  cr_expect_eq(bl_set_start_method("fork", 0), BL_ESTATE);
  cr_expect_str_eq(bl_get_start_method(1), "spawn");
  cr_expect_eq(bl_set_start_method("forkserver", 1), 0);
  cr_expect_str_eq(bl_get_start_method(1), "forkserver");
  cr_expect_eq(bl_set_start_method("bogus", 1), -EINVAL);
  cr_expect_eq(bl_set_start_method(NULL, 0), -EINVAL);
  cr_expect_eq(bl_set_start_method(NULL, 1), 0); /* reset */
  cr_expect_null(bl_get_start_method(1));
}

Test(context, using_the_default_fixes_it) {
  cr_expect_str_eq(bl_get_start_method(0), "fork");
  cr_expect_eq(bl_set_start_method("spawn", 0), BL_ESTATE);
}

Test(context, get_context_and_all_methods) {
  const char *const *all = bl_get_all_start_methods();
  cr_assert_str_eq(all[0], "fork");
  cr_expect_str_eq(all[1], "spawn");
  cr_expect_str_eq(all[2], "forkserver");
  cr_expect_null(all[3]);
  const bl_context_t *c = NULL;
  cr_assert_eq(bl_get_context("spawn", &c), 0);
  cr_expect_str_eq(bl_context_start_method(c), "spawn");
  bl_process_options_t o;
  bl_context_process_options(c, &o);
  cr_expect_eq(o.size, sizeof o);
  cr_expect_str_eq(o.start_method, "spawn");
  cr_expect_eq(bl_get_context("nope", &c), -EINVAL);
  cr_expect_null(c);
  cr_expect_null(bl_get_start_method(1)); /* a named context fixes nothing */
  cr_assert_eq(bl_get_context(NULL, &c), 0);
  cr_expect_str_eq(bl_context_start_method(c), "fork");
  cr_expect_str_eq(bl_get_start_method(1), "fork");
}

Test(context, bad_settings) {
  cr_expect_eq(bl_set_executable(""), -EINVAL);
  const char *empty[] = {"", NULL};
  cr_expect_eq(bl_set_forkserver_preload(empty), -EINVAL);
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = "thread";
  bl_process_t *p = NULL;
  cr_expect_eq(bl_process_new(&p, "ctx/ret", NULL, 0, &o), -EINVAL);
}

/* ---- spawn ---- */

Test(context, spawn_runs_target_in_a_fresh_image) {
  int v = 7;
  touched = 5;
  cr_expect_eq(run("spawn", "ctx/ret", &v, sizeof v, NULL), 7);
  cr_expect_eq(run("spawn", "ctx/touched", NULL, 0, NULL), 0);
  cr_expect_eq(run("fork", "ctx/touched", NULL, 0, NULL), 5);
}

Test(context, default_method_spawn_applies_to_processes) {
  cr_assert_eq(bl_set_start_method("spawn", 0), 0);
  touched = 9;
  cr_expect_eq(run(NULL, "ctx/touched", NULL, 0, NULL), 0);
}

Test(context, spawn_passes_large_argument_name_and_parent) {
  unsigned char *big = malloc(200000);
  for (size_t i = 0; i < 200000; i++) big[i] = (unsigned char)(i * 7);
  cr_expect_eq(run("spawn", "ctx/big", big, 200000, NULL), 0);
  free(big);
  pid_t me = getpid();
  cr_expect_eq(run("spawn", "ctx/identity", &me, sizeof me, "spawned"), 0);
}

static int t_runtime_only(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return 0;
}

Test(context, spawn_missing_target_is_a_start_failure) {
  /* Registered at run time only: the re-executed image does not have it,
   * exactly like a function defined in Python's __main__ under spawn. */
  cr_assert_eq(bl_register_target("ctx/runtime-only", t_runtime_only), 0);
  int before = t_count_fds();
  bl_process_options_t o;
  bl_process_options_init(&o);
  o.start_method = "spawn";
  bl_process_t *p = NULL;
  cr_assert_eq(bl_process_new(&p, "ctx/runtime-only", NULL, 0, &o), 0);
  cr_expect_eq(bl_process_start(p), BL_ENOTFOUND);
  cr_expect_eq(bl_process_pid(p), 0);
  size_t n = 99;
  cr_expect_eq(bl_active_children(NULL, 0, &n), 0);
  cr_expect_eq(n, 0);
  bl_process_free(&p);
  cr_expect_eq(t_count_fds(), before);
  /* Under fork the same name is found. */
  cr_expect_eq(run("fork", "ctx/runtime-only", NULL, 0, NULL), 0);
}

Test(context, spawn_bad_executable_reports_exec_error) {
  cr_assert_eq(bl_set_executable("/nonexistent/billiard-program"), 0);
  cr_expect_eq(run("spawn", "ctx/ret", NULL, 0, NULL), -ENOENT);
  cr_assert_eq(bl_set_executable(NULL), 0);
  cr_expect_eq(run("spawn", "ctx/ret", NULL, 0, NULL), 0);
}

Test(context, spawn_exec_fault_point) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  fiu_init(0);
  cr_assert_eq(fiu_enable("spawn/exec/execve", 1, (void *)(intptr_t)EACCES, 0), 0);
  cr_expect_eq(run("spawn", "ctx/ret", NULL, 0, NULL), -EACCES);
  fiu_disable("spawn/exec/execve");
  cr_expect_eq(run("spawn", "ctx/ret", NULL, 0, NULL), 0);
#endif
}

/* ---- forkserver ---- */

Test(context, forkserver_runs_children_of_the_caller) {
  skip_under_valgrind();
  int v = 3;
  touched = 4;
  cr_expect_eq(run("forkserver", "ctx/ret", &v, sizeof v, NULL), 3);
  pid_t srv = bl__forkserver_pid();
  cr_assert_gt(srv, 0);
  /* One server for all: the second start reuses it. */
  cr_expect_eq(run("forkserver", "ctx/touched", NULL, 0, NULL), 0);
  cr_expect_eq(bl__forkserver_pid(), srv);
  cr_expect_eq(run("forkserver", "ctx/missing", NULL, 0, NULL), BL_ENOTFOUND);
  cr_expect_eq(bl__forkserver_pid(), srv);
  /* Stopping reaps it (it is our child: waitpid succeeded inside). */
  cr_expect_eq(bl__forkserver_stop(), srv);
  cr_expect_eq(kill(srv, 0), -1);
  cr_expect_eq(bl__forkserver_pid(), 0);
}

Test(context, forkserver_preload_runs_once_in_server) {
  skip_under_valgrind();
  const char *pre[] = {"ctx/preload", NULL};
  cr_assert_eq(bl_set_forkserver_preload(pre), 0);
  cr_expect_eq(run("forkserver", "ctx/preloaded", NULL, 0, NULL), 42);
  cr_expect_eq(run("spawn", "ctx/preloaded", NULL, 0, NULL), 0);
  bl__forkserver_stop();
  const char *bad[] = {"ctx/not-registered", NULL};
  cr_assert_eq(bl_set_forkserver_preload(bad), 0);
  cr_expect_eq(run("forkserver", "ctx/ret", NULL, 0, NULL), BL_ENOTFOUND);
  cr_expect_eq(bl__forkserver_pid(), 0);
  cr_assert_eq(bl_set_forkserver_preload(NULL), 0);
}

Test(context, forkserver_dies_with_its_owner) {
  skip_under_valgrind();
  int p[2];
  cr_assert_eq(bl__pipe(p), 0);
  pid_t c = t_fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    int rc = run("forkserver", "ctx/ret", NULL, 0, NULL);
    pid_t srv = bl__forkserver_pid();
    (void)bl__write_full(p[1], &srv, sizeof srv);
    t_exit(rc == 0 ? 0 : 1); /* leaves without atexit: PDEATHSIG must act */
  }
  pid_t srv = 0;
  cr_assert_eq(bl__read_full(p[0], &srv, sizeof srv), 0);
  cr_expect_eq(t_wait_exit(c), 0);
  cr_assert_gt(srv, 0);
  /* Not our child: watch it through a pidfd (ESRCH: already gone). */
  long fd = syscall(SYS_pidfd_open, srv, 0);
  if (fd >= 0) {
    cr_expect_eq(bl__poll_fd((int)fd, POLLIN, 30000), 1);
    close((int)fd);
  } else {
    cr_expect_eq(errno, ESRCH);
  }
  close(p[0]);
  close(p[1]);
}

static int t_block(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  pause();
  return 0;
}
__attribute__((constructor)) static void reg_block(void) { bl_register_target("ctx/block", t_block); }

Test(context, spawn_and_forkserver_children_take_signals) {
  skip_under_valgrind();
  const char *methods[] = {"spawn", "forkserver"};
  for (int i = 0; i < 2; i++) {
    bl_process_options_t o;
    bl_process_options_init(&o);
    o.start_method = methods[i];
    bl_process_t *p = NULL;
    cr_assert_eq(bl_process_new(&p, "ctx/block", NULL, 0, &o), 0);
    cr_assert_eq(bl_process_start(p), 0);
    cr_expect_eq(bl_process_is_alive(p), 1);
    cr_expect_eq(bl_process_join(p, 10), BL_ETIMEOUT);
    cr_assert_eq(bl_process_terminate(p), 0);
    cr_assert_eq(bl_process_join(p, 30000), 0);
    int code = 0;
    cr_assert_eq(bl_process_exitcode(p, &code), 0);
    cr_expect_eq(code, -SIGTERM, "%s: exit code %d", methods[i], code);
    bl_process_free(&p);
  }
}

Test(context, forkserver_socketpair_fault_point) {
#ifndef FIU_ENABLE
  cr_skip_test("fault injection not compiled in");
#else
  skip_under_valgrind();
  fiu_init(0);
  cr_assert_eq(fiu_enable("forkserver/start/socketpair", 1, (void *)(intptr_t)EMFILE,
                          FIU_ONETIME), 0);
  cr_expect_eq(run("forkserver", "ctx/ret", NULL, 0, NULL), -EMFILE);
  cr_expect_eq(bl__forkserver_pid(), 0);
  cr_expect_eq(run("forkserver", "ctx/ret", NULL, 0, NULL), 0);
#endif
}

/* arg: int n, then n fd numbers; fd i must be open, close-on-exec, and
 * hold "fd<i>". 0 when all do. */
static int t_read_fds(const void *arg, size_t len) {
  int v[8];
  if (len < sizeof(int) || len > sizeof v) return 20;
  memcpy(v, arg, len);
  if (v[0] < 0 || v[0] > 7) return 20;
  for (int i = 0; i < v[0]; i++) {
    int fd = v[1 + i];
    char want[4] = {'f', 'd', (char)('0' + i), 0}, got[4] = {0};
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) return 21 + i;
    if (bl__read_full(fd, got, 3) != 0 || memcmp(got, want, 3) != 0) return 30 + i;
  }
  return 0;
}
__attribute__((constructor)) static void reg_fds(void) {
  bl_register_target("ctx/read_fds", t_read_fds);
}

/* Start ctx/read_fds with two pipes' read ends passed through boot.fds
 * (the pool's hook), under spawn or forkserver; its exit code. */
static int run_with_fds(int method) {
  int a[2], b[2], st[2];
  cr_assert_eq(bl__pipe(a), 0);
  cr_assert_eq(bl__pipe(b), 0);
  cr_assert_eq(bl__pipe(st), 0);
  cr_assert_eq(bl__write_full(a[1], "fd0", 3), 0);
  cr_assert_eq(bl__write_full(b[1], "fd1", 3), 0);
  int arg[3] = {2, a[0], b[0]};
  int fds[2] = {a[0], b[0]};
  bl__boot_t boot = {.target = "ctx/read_fds", .name = "fds", .arg = arg,
                     .len = sizeof arg, .parent = getpid(), .fds = fds, .nfds = 2};
  pid_t pid = 0;
  if (method == BL__M_SPAWN) {
    pid = bl__fork(SIGKILL);
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      close(st[0]);
      bl__spawn_exec(&boot, st[1]);
    }
  } else {
    cr_assert_eq(bl__forkserver_start(&boot, st[1], &pid), 0);
  }
  close(st[1]);
  int32_t status = 1;
  cr_assert_eq(bl__read_full(st[0], &status, sizeof status), 0);
  cr_expect_eq(status, 0);
  int ws = 0;
  cr_assert_eq(bl__waitpid(pid, &ws, 0), pid);
  int fdsleft[] = {a[0], a[1], b[0], b[1], st[0]};
  for (size_t i = 0; i < 5; i++) close(fdsleft[i]);
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

Test(context, spawn_and_forkserver_pass_fds_at_same_numbers) {
  skip_under_valgrind();
  cr_expect_eq(run_with_fds(BL__M_SPAWN), 0);
  cr_expect_eq(run_with_fds(BL__M_FORKSERVER), 0);
}
