/* ops.c: the op table and the catalogues. Adding an op, task or event to the
 * contract means adding one line here (and to the docs). */
#include "ops.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define P(name) {name, BC_H_PROTOCOL, NULL, NULL, NULL, false}
#define PJ(name) {name, BC_H_PROTOCOL, NULL, NULL, NULL, true}
#define H(name, hop, args, req, sh) {name, hop, args, req, sh, false}

static const bc_op_t ops[] = {
    /* INTERPRETING.md §6: Pool */
    P("pool.new"), PJ("pool.apply_async"), P("pool.apply"), PJ("pool.map_async"),
    PJ("pool.starmap_async"), P("pool.map"), P("pool.starmap"), P("pool.imap"),
    P("pool.imap_unordered"), P("iter.next"), P("pool.close"), P("pool.terminate"),
    P("pool.join"), P("pool.grow"), P("pool.shrink"), P("pool.restart"),
    P("pool.terminate_job"), P("pool.info"),
    /* Results */
    P("result.get"), P("result.wait"), P("result.ready"), P("result.successful"),
    P("result.pid"),
    /* Processes */
    P("process.start"), P("process.join"), P("process.terminate"), P("process.kill"),
    P("process.info"),
    /* Pipe/Connection */
    P("pipe.new"), P("conn.send_bytes"), P("conn.recv_bytes"), P("conn.recv_bytes_into"),
    P("conn.poll"), P("conn.close"), P("conn.send"), P("conn.recv"),
    /* Queues */
    P("queue.new"), P("queue.put"), P("queue.get"), P("queue.qsize"), P("queue.empty"),
    P("queue.full"), P("queue.close"), P("queue.task_done"), P("queue.join"),
    /* Synchronisation and shared memory */
    P("lock.new"), P("lock.acquire"), P("lock.release"), P("event.new"), P("event.set"),
    P("event.clear"), P("event.is_set"), P("event.wait"), P("condition.new"),
    P("condition.acquire"), P("condition.release"), P("condition.wait"),
    P("condition.notify"), P("condition.notify_all"), P("barrier.new"), P("barrier.wait"),
    P("barrier.abort"), P("barrier.reset"), P("barrier.info"), P("value.new"),
    P("value.get"), P("value.set"), P("array.new"), P("array.get"), P("array.set"),
    /* Clock and faults */
    P("clock.jump"), P("clock.worker_offset"), P("fault.arm"), P("fault.disarm"),
    /* Start methods, contexts and utilities */
    P("context.get_start_method"), P("context.set_start_method"),
    P("context.get_all_start_methods"), P("util.cpu_count"), P("util.current_process"),
    P("util.active_children"), P("util.log_to_stderr"), P("util.log"),
    P("util.freeze_support"), P("util.allow_connection_pickling"),
    P("context.set_executable"), P("context.set_forkserver_preload"),
    /* Managers */
    P("manager.start"), P("manager.connect"), P("manager.shutdown"), P("manager.kill"),
    P("manager.new"), P("proxy.call"),
    /* scenario-format.md: harness operations */
    H("wait_event", BC_H_WAIT_EVENT, "event timeout count as *", "event", NULL),
    H("expect_events", BC_H_EXPECT_EVENTS, "event count min max *", "event", NULL),
    H("no_event", BC_H_NO_EVENT, "event for *", "event for", NULL),
    H("kill_worker", BC_H_KILL_WORKER, "pool job role pid signal seed as", "pool", NULL),
    H("stop_worker", BC_H_STOP_WORKER, "pool job role pid signal seed as", "pool", NULL),
    H("cont_worker", BC_H_CONT_WORKER, "pool job role pid signal seed as", "pool", NULL),
    H("kill_process", BC_H_KILL_PROCESS, "process signal", "process", NULL),
    H("sleep", BC_H_SLEEP, "seconds", "seconds", "seconds"),
    H("mark", BC_H_MARK, "name", "name", "name"),
    H("expect_elapsed", BC_H_EXPECT_ELAPSED, "since min max", "since", NULL),
    H("wall_jump", BC_H_WALL_JUMP, "seconds", "seconds", "seconds"),
    H("submit_many", BC_H_SUBMIT_MANY,
      "pool task args count as time_limit soft_time_limit", "pool task count as", NULL),
    H("get_all", BC_H_GET_ALL, "prefix timeout expect expect_any", "prefix", NULL),
    H("chaos", BC_H_CHAOS, "pool kills signal interval seed", "pool kills", NULL),
    H("repeat", BC_H_REPEAT, "times steps", "times steps", NULL),
};

const bc_op_t *bc_op_find(const char *name) {
  for (size_t i = 0; i < BC_ARRAY_SIZE(ops); i++)
    if (strcmp(ops[i].name, name) == 0) return &ops[i];
  return NULL;
}

const bc_op_t *bc_op_at(unsigned i) { return i < BC_ARRAY_SIZE(ops) ? &ops[i] : NULL; }

const char *const bc_tasks[] = {
    "noop", "echo", "square", "add", "pid", "sleep", "busy", "soft_aware", "fail", "exit",
    "kill_self", "crash", "alloc", "sleep_echo", "count", "init_ran",
    "init_ok", "init_fail", "init_exit", "init_crash", NULL};

const char *const bc_targets[] = {
    "exit", "sleep", "kill_self", "queue_put", "queue_get", "lock_hold", "lock_hold_die",
    "event_wait", "value_add", "conn_send", "conn_recv", "barrier_wait", "preload_marked",
    "soft_handler", "proxy_call",
    "proxy_add", NULL};

const char *const bc_events[] = {
    "worker.up", "worker.down", "job.accepted", "job.ready", "job.callback",
    "job.error_callback", "timeout.set", "timeout.cancel", "pool.error", "log",
    "worker.exit", NULL};

const char *const bc_fault_classes[] = {
    "signal", "stop", "pipe", "fork", "wallclock", "monotonic", "crash-loop",
    "initializer", "memory", NULL};

const char *const bc_flags[] = {"slow", "serial", "timing", NULL};

const char *const bc_invariants[] = {
    "each-job-resolves-once", "no-leaks", "pool-size-restored", "no-worker-down", NULL};

const char *const bc_top_keys[] = {
    "description", "ref", "features", "flags", "timeout", "faults", "start_methods", "env",
    "steps", "invariants", NULL};

const char *const bc_required_top_keys[] = {"description", "ref", "features", "steps", NULL};

const char *const bc_duration_keys[] = {
    "timeout", "seconds", "time_limit", "soft_time_limit", "lost_worker_timeout",
    "max_restart_freq", "delay", NULL};

const char *const bc_handle_keys[] = {
    "as", "pool", "job", "iter", "process", "conn", "queue", "lock", "event", "condition",
    "barrier", "value", "array", "manager", "proxy", NULL};

bool bc_in_list(const char *const *list, const char *s) {
  for (; *list; list++)
    if (strcmp(*list, s) == 0) return true;
  return false;
}

char *bc_list_join(const char *const *list) {
  bc_buf_t b = {0};
  for (const char *const *p = list; *p; p++) {
    if (p != list) bc_buf_puts(&b, ", ");
    bc_buf_puts(&b, *p);
  }
  return bc_buf_steal(&b);
}

static const struct {
  const char *name;
  int sig;
} sigs[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},
    {"SIGABRT", SIGABRT}, {"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},   {"SIGKILL", SIGKILL},
    {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE},
    {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT},
    {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP}, {"SIGXCPU", SIGXCPU},
};

int bc_signal_number(const char *name) {
  char *end;
  long v = strtol(name, &end, 10);
  if (*name && !*end) return v > 0 && v < 65 ? (int)v : -1;
  for (size_t i = 0; i < BC_ARRAY_SIZE(sigs); i++)
    if (strcmp(sigs[i].name, name) == 0 || strcmp(sigs[i].name + 3, name) == 0)
      return sigs[i].sig;
  return -1;
}

const char *bc_signal_name(int sig) {
  for (size_t i = 0; i < BC_ARRAY_SIZE(sigs); i++)
    if (sigs[i].sig == sig) return sigs[i].name;
  return "signal";
}
