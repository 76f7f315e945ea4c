/* main.c: billiard-conform command line: run, list, lint, ports. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corpus.h"
#include "expectations.h"
#include "report.h"
#include "runner.h"
#include "sched.h"

#ifndef BC_ASAN_RUNTIME
#define BC_ASAN_RUNTIME NULL
#endif

static const char usage_main[] =
    "usage: billiard-conform COMMAND [OPTIONS] [PATHS...]\n"
    "\n"
    "Scenario-driven conformance and fault-injection harness for billiard-like\n"
    "ports (driver contract: harness/INTERPRETING.md, protocol 1).\n"
    "\n"
    "commands:\n"
    "  run    run scenarios on one or more ports and judge them\n"
    "  list   print scenario ids (--features: feature usage)\n"
    "  lint   validate scenario files and expectations files\n"
    "  ports  list known ports and whether each is available\n"
    "\n"
    "PATHS are files, directories (searched for *.yaml) or globs; the default is\n"
    "the source tree's scenarios/ directory. 'billiard-conform COMMAND --help'\n"
    "describes each command. Exit status: 0 ok, 1 a run failed, 2 bad input.\n";

static const char usage_run[] =
    "usage: billiard-conform run [OPTIONS] [PATHS...]\n"
    "\n"
    "Runs every scenario x port x repeat in a fresh driver and prints one line per\n"
    "finished run, failure details (step file:line, expected vs got, driver stderr\n"
    "tail), an outcome count line and, last, 'N passed, N failed, N skipped'\n"
    "(passed = pass + xfail; failed = fail + xpass + timeout + crash).\n"
    "\n"
    "options:\n"
    "  --port NAME        port to run (repeatable; default c): c, python-billiard,\n"
    "                     python-multiprocessing\n"
    "  --port-cmd CMD     run the driver 'sh -c CMD' as a port (repeatable); its\n"
    "                     name comes from its hello\n"
    "  --start-method M   run under start method M (repeatable): fork, spawn,\n"
    "                     forkserver; default: each of a scenario's start_methods\n"
    "                     (a skip where the port lacks it), else the port's default\n"
    "  --filter PATTERN   only scenario ids containing PATTERN, or matching it as a\n"
    "                     glob when it has * ? [\n"
    "  --jobs N           scenarios run in parallel (default: CPUs); scenarios\n"
    "                     flagged serial run alone\n"
    "  --repeat N         run each scenario N times (default 1)\n"
    "  --seed S           seed for random victim choices (default: from the clock;\n"
    "                     always printed)\n"
    "  --json FILE        write a JSON array, one record per run (scenario, port,\n"
    "                     repeat, outcome, duration_ms, message, ...)\n"
    "  --junit FILE       write JUnit XML\n"
    "  --tap              print TAP instead of progress lines\n"
    "  --report DIR       write DIR/index.html: counts, port x scenario matrix,\n"
    "                     a timeline per run\n"
    "  --expectations DIR per-port expectations (default\n"
    "                     <source>/harness/expectations)\n"
    "  --verbose          log the protocol traffic to stderr\n"
    "  -h, --help         this help\n"
    "\n"
    "environment: BL_TEST_TIMEOUT_MULTIPLIER scales deadlines and waits;\n"
    "BC_DRIVER_C overrides the C driver path; BC_SOURCE_DIR the source tree.\n"
    "Exit status: 1 if any run ended fail, xpass, timeout or crash; 2 on bad input.\n";

static const char usage_list[] =
    "usage: billiard-conform list [--features | --vocabulary] [--filter PATTERN] [PATHS...]\n"
    "\n"
    "Prints the id of every scenario (its path relative to the scenarios directory).\n"
    "  --features        instead print each feature of features.txt with the number of\n"
    "                    scenarios using it; features no scenario uses are flagged\n"
    "  --vocabulary      instead print every op, task, process target, event, fault\n"
    "                    class, flag, invariant and top-level key the harness knows\n"
    "  --filter PATTERN  as for run\n"
    "  -h, --help        this help\n";

static const char usage_lint[] =
    "usage: billiard-conform lint [--expectations DIR | --no-expectations] [PATHS...]\n"
    "\n"
    "Checks every scenario file against docs/scenario-format.md: YAML syntax, keys,\n"
    "types, step ops, tasks, features (features.txt), fault classes, durations, a\n"
    "one-sentence description ending with a period, a kebab-case file name, unique\n"
    "ids; and every expectations file (a non-empty reason per entry, existing\n"
    "scenario ids). Prints 'path:line:col: error: expected X, got Y' per error.\n"
    "Exit status 2 on any error, else 0.\n"
    "  --expectations DIR  expectations to check (default <source>/harness/expectations)\n"
    "  --no-expectations   check scenario files only\n"
    "  -h, --help          this help\n";

static const char usage_ports[] =
    "usage: billiard-conform ports\n"
    "\n"
    "Lists the known ports, whether each is available here, and its command.\n";

/* Expectations of every port, loaded once. */
static bc_expectations_t *g_exp;
static size_t g_nexp;

static const bc_expectations_t *lookup_expectations(const char *port) {
  for (size_t i = 0; i < g_nexp; i++) {
    if (g_exp[i].port && !strcmp(g_exp[i].port, port)) return &g_exp[i];
    char *b = bc_xstrdup(g_exp[i].path);
    char *base = basename(b);
    size_t n = strlen(base);
    bool m = n > 5 && !strncmp(base, port, n - 5) && strlen(port) == n - 5;
    free(b);
    if (m && !g_exp[i].port) return &g_exp[i];
  }
  return NULL;
}

static char *default_expectations_dir(void) {
  return bc_asprintf("%s/harness/expectations", bc_source_dir());
}

/* Loads every DIR/NAME.yaml; errors into d. */
static void load_expectations(const char *dir, bc_diag_t *d) {
  char *pat = bc_asprintf("%s/*.yaml", dir);
  glob_t g;
  if (glob(pat, 0, NULL, &g) == 0) {
    g_exp = bc_xcalloc(g.gl_pathc, sizeof *g_exp);
    for (size_t i = 0; i < g.gl_pathc; i++) {
      d->path = g.gl_pathv[i];
      bc_expectations_load(&g_exp[g_nexp++], g.gl_pathv[i], d);
    }
    d->path = NULL;
    globfree(&g);
  }
  free(pat);
}

static void free_expectations(void) {
  for (size_t i = 0; i < g_nexp; i++) bc_expectations_free(&g_exp[i]);
  free(g_exp);
  g_exp = NULL;
  g_nexp = 0;
}

static char *self_dir(void) {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return bc_xstrdup(".");
  buf[n] = '\0';
  return bc_xstrdup(dirname(buf));
}

static char *c_driver_path(void) {
  const char *e = getenv("BC_DRIVER_C");
  if (e && *e) return bc_xstrdup(e);
  char *d = self_dir();
  char *p = bc_asprintf("%s/drivers/c/bc-driver-c", d);
  free(d);
  return p;
}

static char *py_driver_path(void) {
  const char *e = getenv("BC_DRIVER_PY");
  if (e && *e) return bc_xstrdup(e);
  return bc_asprintf("%s/harness/drivers/python/driver.py", bc_source_dir());
}

static const char *const known_ports[] = {"c", "python-billiard", "python-multiprocessing", NULL};

static bool python_can_import(const char *module) {
  char *cmd = bc_asprintf("/usr/bin/python3 -c 'import %s' >/dev/null 2>&1", module);
  int st = system(cmd);
  free(cmd);
  return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Fills p for a named port; returns false with *why when unavailable. */
static bool make_port(const char *name, bc_port_t *p, char **why) {
  memset(p, 0, sizeof *p);
  p->name = bc_xstrdup(name);
  p->argv = bc_xcalloc(5, sizeof *p->argv);
  if (!strcmp(name, "c")) {
    p->is_c = true;
    p->argv[0] = c_driver_path();
    if (access(p->argv[0], X_OK) != 0) {
      *why = bc_asprintf("%s is not built (build harness/drivers/c or set BC_DRIVER_C)",
                         p->argv[0]);
      return false;
    }
    return true;
  }
  if (!strcmp(name, "python-billiard") || !strcmp(name, "python-multiprocessing")) {
    bool bill = !strcmp(name, "python-billiard");
    p->argv[0] = bc_xstrdup("/usr/bin/python3");
    p->argv[1] = py_driver_path();
    p->argv[2] = bc_xstrdup("--impl");
    p->argv[3] = bc_xstrdup(bill ? "billiard" : "multiprocessing");
    if (access(p->argv[1], R_OK) != 0) {
      *why = bc_asprintf("%s is missing", p->argv[1]);
      return false;
    }
    if (!python_can_import(bill ? "billiard" : "multiprocessing")) {
      *why = bc_asprintf("/usr/bin/python3 cannot import %s", bill ? "billiard" : "multiprocessing");
      return false;
    }
    return true;
  }
  *why = bc_asprintf("unknown port '%s' (known: c, python-billiard, python-multiprocessing; "
                     "others via --port-cmd)", name);
  return false;
}

static void free_port(bc_port_t *p) {
  free(p->name);
  for (char **a = p->argv; a && *a; a++) free(*a);
  free(p->argv);
}

static int cmd_ports(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    fputs(usage_ports, stdout);
    return 0;
  }
  if (argc > 1) {
    fputs(usage_ports, stderr);
    return 2;
  }
  for (const char *const *n = known_ports; *n; n++) {
    bc_port_t p;
    char *why = NULL;
    bool ok = make_port(*n, &p, &why);
    bc_buf_t cmd = {0};
    for (char **a = p.argv; *a; a++) bc_buf_printf(&cmd, "%s%s", a == p.argv ? "" : " ", *a);
    printf("%-24s %-11s %s\n", *n, ok ? "available" : "unavailable", ok ? cmd.s : why);
    bc_buf_free(&cmd);
    free(why);
    free_port(&p);
  }
  printf("%-24s %-11s %s\n", "(any)", "--port-cmd", "sh -c CMD; port name from the hello");
  return 0;
}

static void print_diag(const bc_diag_t *d) {
  for (size_t i = 0; i < d->errors.n; i++) fprintf(stderr, "%s\n", d->errors.v[i]);
}

static char **default_paths(int *n) {
  static char *p[1];
  static char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s/scenarios", bc_source_dir());
  p[0] = buf;
  *n = 1;
  return p;
}

/* One sentence: ends with '.', '!' or '?' and has no sentence end inside. */
static bool one_sentence(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || !strchr(".!?", s[n - 1])) return false;
  for (size_t i = 0; i + 2 < n; i++)
    if (strchr(".!?", s[i]) && s[i + 1] == ' ' && s[i + 2] >= 'A' && s[i + 2] <= 'Z') return false;
  return !strchr(s, '\n');
}

static int cmd_lint(int argc, char **argv) {
  static const struct option lo[] = {{"expectations", required_argument, NULL, 'e'},
                                     {"no-expectations", no_argument, NULL, 'E'},
                                     {"help", no_argument, NULL, 'h'},
                                     {0, 0, 0, 0}};
  char *expdir = NULL;
  bool noexp = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'e': expdir = optarg; break;
    case 'E': noexp = true; break;
    case 'h': fputs(usage_lint, stdout); return 0;
    default: fputs(usage_lint, stderr); return 2;
    }
  }
  int np = argc - optind;
  char **paths = np ? argv + optind : default_paths(&np);
  bc_corpus_t corpus;
  int rc = bc_corpus_collect(&corpus, paths, np) < 0 ? 2 : 0;
  bc_corpus_load(&corpus, NULL);
  bc_diag_t *d = &corpus.diag;
  /* Lint-only rules on the files that loaded. */
  bc_strv_t ids = {0};
  for (size_t i = 0; i < corpus.n; i++) {
    bc_scenario_t *sc = corpus.sc[i];
    if (!sc) continue;
    d->path = sc->path;
    if (sc->description && !one_sentence(sc->description))
      bc_diag_at(d, sc->desc_line, sc->desc_col,
                 "expected a one-sentence description ending with a period, got '%s'",
                 sc->description);
    char *tmp = bc_xstrdup(sc->path);
    const char *base = basename(tmp);
    if (!bc_is_kebab_yaml(base))
      bc_diag_at(d, 1, 1, "expected a kebab-case file name (a-z, 0-9, '-', .yaml), got '%s'",
                 base);
    free(tmp);
    if (bc_strv_has(&ids, sc->id))
      bc_diag_at(d, 1, 1, "expected a unique scenario id, got '%s' again", sc->id);
    bc_strv_push(&ids, sc->id);
  }
  bc_strv_free(&ids);
  d->path = NULL;
  size_t nexp = 0;
  if (!noexp) {
    char *dir = expdir ? bc_xstrdup(expdir) : default_expectations_dir();
    load_expectations(dir, d);
    char *root = bc_asprintf("%s/scenarios", bc_source_dir());
    for (size_t i = 0; i < g_nexp; i++) {
      d->path = g_exp[i].path;
      bc_expectations_lint(&g_exp[i], root, d);
    }
    d->path = NULL;
    nexp = g_nexp;
    free(root);
    free(dir);
    free_expectations();
  }
  print_diag(d);
  printf("lint: %zu scenario file(s), %zu expectations file(s), %zu error(s)\n", corpus.n, nexp,
         d->errors.n);
  if (d->errors.n) rc = 2;
  bc_corpus_free(&corpus);
  return rc;
}

/* The harness's vocabulary, one "kind name" per line (checked against the
 * docs by selftest/check_vocabulary.py). */
static void print_vocabulary(void) {
  const bc_op_t *op;
  for (unsigned i = 0; (op = bc_op_at(i)); i++)
    printf("%s %s\n", op->hop == BC_H_PROTOCOL ? "op" : "harness-op", op->name);
  const struct {
    const char *kind;
    const char *const *list;
  } v[] = {{"task", bc_tasks},           {"target", bc_targets},   {"event", bc_events},
           {"fault", bc_fault_classes},  {"flag", bc_flags},       {"invariant", bc_invariants},
           {"key", bc_top_keys}};
  for (size_t i = 0; i < BC_ARRAY_SIZE(v); i++)
    for (const char *const *p = v[i].list; *p; p++) printf("%s %s\n", v[i].kind, *p);
}

static int cmd_list(int argc, char **argv) {
  static const struct option lo[] = {{"features", no_argument, NULL, 'F'},
                                     {"vocabulary", no_argument, NULL, 'V'},
                                     {"filter", required_argument, NULL, 'f'},
                                     {"help", no_argument, NULL, 'h'},
                                     {0, 0, 0, 0}};
  bool features = false;
  const char *filter = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'F': features = true; break;
    case 'V': print_vocabulary(); return 0;
    case 'f': filter = optarg; break;
    case 'h': fputs(usage_list, stdout); return 0;
    default: fputs(usage_list, stderr); return 2;
    }
  }
  int np = argc - optind;
  char **paths = np ? argv + optind : default_paths(&np);
  bc_corpus_t corpus;
  int rc = bc_corpus_collect(&corpus, paths, np) < 0 ? 2 : 0;
  if (bc_corpus_load(&corpus, filter)) {
    print_diag(&corpus.diag);
    rc = 2;
  }
  if (!features) {
    for (size_t i = 0; i < corpus.n; i++)
      if (corpus.sc[i]) printf("%s\n", corpus.sc[i]->id);
  } else {
    for (size_t f = 0; f < corpus.nfeatures; f++) {
      const bc_features_t *ft = &corpus.features[f];
      if (corpus.nfeatures > 1) printf("# %s\n", ft->path);
      for (size_t k = 0; k < ft->names.n; k++) {
        size_t n = 0;
        for (size_t i = 0; i < corpus.n; i++)
          if (corpus.sc[i] && bc_strv_has(&corpus.sc[i]->features, ft->names.v[k])) n++;
        printf("%-32s %4zu%s\n", ft->names.v[k], n, n ? "" : "  (no scenario)");
      }
    }
  }
  bc_corpus_free(&corpus);
  return rc;
}

typedef struct run_ctx {
  bc_report_t *rep;
} run_ctx_t;

static void on_result(json_t *rec, void *ctx) {
  run_ctx_t *rc = ctx;
  bc_apply_expectations(rec, lookup_expectations(json_string_value(json_object_get(rec, "port"))));
  bc_report_add(rc->rep, rec);
}

static int cmd_run(int argc, char **argv) {
  enum { O_PORT = 256, O_PORTCMD, O_FILTER, O_JOBS, O_REPEAT, O_SEED, O_JSON, O_JUNIT, O_TAP,
         O_REPORT, O_EXP, O_VERBOSE, O_METHOD };
  static const struct option lo[] = {
      {"port", required_argument, NULL, O_PORT},     {"port-cmd", required_argument, NULL, O_PORTCMD},
      {"filter", required_argument, NULL, O_FILTER}, {"jobs", required_argument, NULL, O_JOBS},
      {"repeat", required_argument, NULL, O_REPEAT}, {"seed", required_argument, NULL, O_SEED},
      {"json", required_argument, NULL, O_JSON},     {"junit", required_argument, NULL, O_JUNIT},
      {"tap", no_argument, NULL, O_TAP},             {"report", required_argument, NULL, O_REPORT},
      {"expectations", required_argument, NULL, O_EXP},
      {"start-method", required_argument, NULL, O_METHOD},
      {"verbose", no_argument, NULL, O_VERBOSE},     {"help", no_argument, NULL, 'h'},
      {0, 0, 0, 0}};
  bc_strv_t port_names = {0}, port_cmds = {0}, methods = {0};
  const char *filter = NULL, *json_path = NULL, *junit_path = NULL, *report_dir = NULL,
             *expdir = NULL;
  long jobs = sysconf(_SC_NPROCESSORS_ONLN), repeat = 1;
  bool tap = false, verbose = false, have_seed = false;
  uint64_t seed = 0;
  int c, rc = 0;
  char *end;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case O_PORT: bc_strv_push(&port_names, optarg); break;
    case O_PORTCMD: bc_strv_push(&port_cmds, optarg); break;
    case O_METHOD:
      if (strcmp(optarg, "fork") && strcmp(optarg, "spawn") && strcmp(optarg, "forkserver")) {
        fprintf(stderr, "billiard-conform: unknown start method '%s' (fork, spawn, forkserver)\n",
                optarg);
        goto bad;
      }
      if (!bc_strv_has(&methods, optarg)) bc_strv_push(&methods, optarg);
      break;
    case O_FILTER: filter = optarg; break;
    case O_JOBS:
      jobs = strtol(optarg, &end, 10);
      if (*end || jobs < 1) goto bad;
      break;
    case O_REPEAT:
      repeat = strtol(optarg, &end, 10);
      if (*end || repeat < 1) goto bad;
      break;
    case O_SEED:
      seed = strtoull(optarg, &end, 0);
      if (*end || !*optarg) goto bad;
      have_seed = true;
      break;
    case O_JSON: json_path = optarg; break;
    case O_JUNIT: junit_path = optarg; break;
    case O_TAP: tap = true; break;
    case O_REPORT: report_dir = optarg; break;
    case O_EXP: expdir = optarg; break;
    case O_VERBOSE: verbose = true; break;
    case 'h':
      fputs(usage_run, stdout);
      goto out;
    default:
      goto bad;
    }
  }
  if (jobs < 1) jobs = 1;
  if (!have_seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    seed = bc_splitmix64(&s) % 1000000000ULL;
  }
  if (!port_names.n && !port_cmds.n) bc_strv_push(&port_names, "c");
  size_t nports = port_names.n + port_cmds.n;
  bc_port_t *ports = bc_xcalloc(nports, sizeof *ports);
  for (size_t i = 0; i < port_names.n; i++) {
    char *why = NULL;
    if (!make_port(port_names.v[i], &ports[i], &why)) {
      fprintf(stderr, "billiard-conform: port %s is not available: %s\n", port_names.v[i], why);
      free(why);
      rc = 2;
    }
  }
  for (size_t i = 0; i < port_cmds.n; i++) {
    bc_port_t *p = &ports[port_names.n + i];
    p->name = bc_asprintf("cmd%zu", i + 1);
    p->from_cmd = true;
    p->argv = bc_xcalloc(4, sizeof *p->argv);
    p->argv[0] = bc_xstrdup("/bin/sh");
    p->argv[1] = bc_xstrdup("-c");
    p->argv[2] = bc_xstrdup(port_cmds.v[i]);
  }
  int np = argc - optind;
  char **paths = np ? argv + optind : default_paths(&np);
  bc_corpus_t corpus;
  if (bc_corpus_collect(&corpus, paths, np) < 0) rc = 2;
  if (bc_corpus_load(&corpus, filter)) {
    print_diag(&corpus.diag);
    rc = 2;
  }
  bc_diag_t ed = {0};
  char *dir = expdir ? bc_xstrdup(expdir) : default_expectations_dir();
  load_expectations(dir, &ed);
  free(dir);
  if (ed.errors.n) {
    print_diag(&ed);
    rc = 2;
  }
  bc_strv_free(&ed.errors);
  if (rc == 0 && corpus.n == 0) {
    fprintf(stderr, "billiard-conform: no scenario matched\n");
    rc = 2;
  }
  if (rc == 0) {
    /* Start methods per scenario: --start-method's list, else the scenario's
     * start_methods, else one run with the port's default (NULL). */
    size_t njobs = 0, k = 0;
    for (size_t i = 0; i < corpus.n; i++) {
      size_t nm = methods.n ? methods.n : corpus.sc[i]->start_methods.n;
      njobs += (nm ? nm : 1) * nports * (size_t)repeat;
    }
    bc_job_t *jl = bc_xcalloc(njobs, sizeof *jl);
    for (size_t i = 0; i < corpus.n; i++) {
      const bc_strv_t *ms = methods.n ? &methods : &corpus.sc[i]->start_methods;
      for (size_t p = 0; p < nports; p++)
        for (size_t m = 0; m < (ms->n ? ms->n : 1); m++)
          for (long r = 0; r < repeat; r++)
            jl[k++] = (bc_job_t){corpus.sc[i], &ports[p], (unsigned)r, ms->n ? ms->v[m] : NULL};
    }
    bc_run_opts_t o = {.seed = seed,
                       .multiplier = bc_timeout_multiplier(),
                       .verbose = verbose,
                       .asan_runtime = BC_ASAN_RUNTIME,
                       .expectations = lookup_expectations};
    bc_report_t rep;
    bc_report_init(&rep, njobs, tap, verbose);
    fprintf(stdout, "%sbilliard-conform: %zu run(s), %ld job(s), seed %" PRIu64 ", protocol %d\n",
            tap ? "# " : "", njobs, jobs, seed, BC_PROTOCOL);
    fflush(stdout);
    run_ctx_t ctx = {&rep};
    int sr = bc_schedule(jl, njobs, (unsigned)jobs, &o, on_result, &ctx);
    bc_report_sort(&rep);
    if (json_path && bc_report_json(&rep, json_path)) rc = 2;
    if (junit_path && bc_report_junit(&rep, junit_path)) rc = 2;
    if (report_dir && bc_report_html(&rep, report_dir, seed)) rc = 2;
    if (sr == -EINTR) fprintf(stderr, "billiard-conform: interrupted\n");
    int r = bc_report_summary(&rep, seed);
    if (!rc) rc = sr == -EINTR ? 130 : r;
    /* Fewer results than runs (interrupted) is never a pass. */
    if (!rc && rep.done != njobs) rc = 1;
    bc_report_free(&rep);
    free(jl);
  }
  bc_corpus_free(&corpus);
  for (size_t i = 0; i < nports; i++) free_port(&ports[i]);
  free(ports);
  free_expectations();
out:
  bc_strv_free(&port_names);
  bc_strv_free(&port_cmds);
  bc_strv_free(&methods);
  return rc;
bad:
  fputs(usage_run, stderr);
  rc = 2;
  goto out;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
  if (!strcmp(cmd, "list")) return cmd_list(argc - 1, argv + 1);
  if (!strcmp(cmd, "lint") || !strcmp(cmd, "--lint")) return cmd_lint(argc - 1, argv + 1);
  if (!strcmp(cmd, "ports")) return cmd_ports(argc - 1, argv + 1);
  fprintf(stderr, "billiard-conform: unknown command '%s'\n\n%s", cmd, usage_main);
  return 2;
}
