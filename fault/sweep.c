/* sweep.c: fault-sweep, the countdown fault sweep (SQLite's faultsim).
 *
 * For each profile in fault/profiles/<name>.yaml and each point it names, arm the
 * point to fail on its Nth hit (transient: only that hit; persistent: that
 * hit and every later one) for N = 1, 2, ... until a run finishes without
 * the point firing. Every run is a fresh process (optionally under valgrind)
 * running one workload; it must end with every job resolved once with the
 * right value or an accepted error, no fd or child left behind, nothing new
 * in /dev/shm, no crash and no hang.
 *
 *   fault-sweep [--quick] [--valgrind] [--point NAME] [--max-n N]
 *               [--profiles DIR] [--points FILE] [-v]
 * Exit 0 all rows pass, 1 some failed, 77 not a fault-injection build. */
#include "sweep.h"

#include <billiard/billiard.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef FIU_ENABLE
#include <fiu-control.h>
#include <fiu.h>
#endif

#ifndef SW_SRCDIR
#define SW_SRCDIR "."
#endif

int sw_accepts(const sw_accept_t *a, const char *name) {
  for (int i = 0; i < a->n; i++)
    if (strcmp(a->name[i], name) == 0 || strcmp(a->name[i], "any") == 0) return 1;
  return 0;
}

static const struct { const char *name; int v; } errnos[] = {
    {"EPIPE", EPIPE},   {"EIO", EIO},       {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
    {"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN}, {"ENOSPC", ENOSPC}, {"ECONNRESET", ECONNRESET},
    {"EINTR", EINTR},   {"EBADF", EBADF},
};
/* "-" (crash point: default signal) -> 0; a name -> its value; -1 unknown. */
static int errno_of(const char *s) {
  if (strcmp(s, "-") == 0 || strcmp(s, "default") == 0) return 0;
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (strcmp(errnos[i].name, s) == 0) return errnos[i].v;
  return -1;
}

/* ------------------------------------------------------------ profiles */
#define MAXL 32
typedef struct list {
  int n;
  char v[MAXL][64];
} list_t;
typedef struct profile {
  char name[64], workload[32], err[16];
  list_t points, modes, accept, quick, quick_modes;
  long max_n, quick_max_n;
} profile_t;

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
  return s;
}

/* A value "[a, b]" or "a". */
static void parse_list(char *v, list_t *l) {
  l->n = 0;
  if (*v == '[') v++;
  char *e = strchr(v, ']');
  if (e) *e = 0;
  for (char *tok = strtok(v, ","); tok && l->n < MAXL; tok = strtok(NULL, ",")) {
    tok = trim(tok);
    if (*tok) snprintf(l->v[l->n++], sizeof l->v[0], "%s", tok);
  }
}

/* The profile subset of YAML: "key: scalar" and "key: [flow, list]" lines,
 * "#" comments. Unknown keys are an error (typos must not disarm a sweep). */
static int load_profile(const char *path, profile_t *p) {
  FILE *f = fopen(path, "r");
  if (!f) return -errno;
  memset(p, 0, sizeof *p);
  const char *base = strrchr(path, '/');
  snprintf(p->name, sizeof p->name, "%s", base ? base + 1 : path);
  char *dot = strstr(p->name, ".yaml");
  if (dot) *dot = 0;
  snprintf(p->err, sizeof p->err, "default");
  p->max_n = 400;
  p->quick_max_n = 40;
  char line[1024];
  int lineno = 0, bad = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *s = trim(line);
    if (!*s) continue;
    char *colon = strchr(s, ':');
    if (!colon) {
      fprintf(stderr, "%s:%d: expected key: value\n", path, lineno);
      bad = 1;
      continue;
    }
    *colon = 0;
    char *k = trim(s), *v = trim(colon + 1);
    if (strcmp(k, "workload") == 0) snprintf(p->workload, sizeof p->workload, "%s", v);
    else if (strcmp(k, "errno") == 0) snprintf(p->err, sizeof p->err, "%s", v);
    else if (strcmp(k, "points") == 0) parse_list(v, &p->points);
    else if (strcmp(k, "modes") == 0) parse_list(v, &p->modes);
    else if (strcmp(k, "accept") == 0) parse_list(v, &p->accept);
    else if (strcmp(k, "quick") == 0) parse_list(v, &p->quick);
    else if (strcmp(k, "quick_modes") == 0) parse_list(v, &p->quick_modes);
    else if (strcmp(k, "max_n") == 0) p->max_n = atol(v);
    else if (strcmp(k, "quick_max_n") == 0) p->quick_max_n = atol(v);
    else if (strcmp(k, "description") == 0) continue;
    else {
      fprintf(stderr, "%s:%d: unknown key '%s'\n", path, lineno, k);
      bad = 1;
    }
  }
  fclose(f);
  if (!p->workload[0] || !p->points.n || !p->modes.n || errno_of(p->err) < 0) {
    fprintf(stderr, "%s: needs workload, points, modes and a known errno\n", path);
    bad = 1;
  }
  return bad ? -EINVAL : 0;
}

static int in_list(const list_t *l, const char *s) {
  for (int i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0) return 1;
  return 0;
}

/* ------------------------------------------------------- leak helpers */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

/* Children still alive (or unreaped) of any thread of this process. */
static int count_children(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    while (fscanf(f, "%511s", buf) == 1) n++;
    fclose(f);
  }
  closedir(d);
  return n;
}

typedef struct names {
  int n;
  char v[256][256];
} names_t;
static void shm_list(names_t *s) {
  s->n = 0;
  DIR *d = opendir("/dev/shm");
  if (!d) return;
  for (struct dirent *e; (e = readdir(d)) && s->n < 256;)
    if (e->d_name[0] != '.') snprintf(s->v[s->n++], sizeof s->v[0], "%s", e->d_name);
  closedir(d);
}
static int shm_new(const names_t *before, const names_t *after, char *out, size_t cap) {
  int n = 0;
  out[0] = 0;
  for (int i = 0; i < after->n; i++) {
    int seen = 0;
    for (int j = 0; j < before->n && !seen; j++) seen = strcmp(after->v[i], before->v[j]) == 0;
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", after->v[i]);
    if (!seen && access(path, F_OK) != 0) continue; /* gone again: not ours */
    /* Criterion's temp files from tests running beside us, not ours. */
    if (strncmp(after->v[i], "bxfi_", 5) == 0) continue;
    if (!seen) {
      n++;
      size_t u = strlen(out);
      snprintf(out + u, cap - u, "%s%s", u ? "," : "", after->v[i]);
    }
  }
  return n;
}

/* --------------------------------------------------------- run process */
#ifdef FIU_ENABLE
static sw_shared_t *S;
static int hit_cb(const char *name, int *failnum, void **failinfo, unsigned *flags) {
  /* A crash point simulates a worker, producer or consumer dying; killing
   * the run process itself would only test the sweep. */
  if (S->crash_point && getpid() == S->run_pid) return 0;
  long h = atomic_fetch_add(&S->hits, 1) + 1;
  int fire = S->persistent ? h >= S->n : h == S->n;
  if (fire) atomic_fetch_add(&S->fired, 1);
  return fire;
}
#endif

/* fault-sweep --run WORKLOAD POINT ERRNO FD ACCEPT,... */
static int run_one(char **argv) {
#ifdef FIU_ENABLE
  const char *workload = argv[0], *point = argv[1];
  int err = errno_of(argv[2]), fd = atoi(argv[3]);
  sw_accept_t acc = {0};
  char acclist[1024];
  snprintf(acclist, sizeof acclist, "%s", argv[4]);
  for (char *t = strtok(acclist, ","); t && acc.n < SW_MAX_ACCEPT; t = strtok(NULL, ","))
    snprintf(acc.name[acc.n++], sizeof acc.name[0], "%s", t);
  S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (S == MAP_FAILED) return 3;
  close(fd);
  fiu_init(0);
  S->fd_before = count_fds();
  S->run_pid = getpid();
  S->crash_point = strcmp(argv[2], "-") == 0;
  void *failinfo = err ? (void *)(intptr_t)err : NULL;
  if (S->n > 0) fiu_enable_external(point, 1, failinfo, 0, hit_cb);
  int rc = sw_run_workload(workload, S, &acc);
  if (S->n > 0) fiu_disable(point);
  S->fd_after = count_fds();
  S->children_left = count_children();
  /* The forkserver keeps its connection (one fd) until this process exits. */
  int fd_slack = strcmp(workload, "forkserver") == 0 ? 1 : 0;
  if (S->fd_after < S->fd_before || S->fd_after > S->fd_before + fd_slack) {
    size_t u = strlen(S->detail);
    snprintf(S->detail + u, sizeof S->detail - u, "%sfds %d -> %d", u ? "; " : "",
             S->fd_before, S->fd_after);
    rc = 1;
  }
  /* The forkserver is a child that lives until this process exits; the
   * driver checks that the run's process group empties after exit. */
  if (strcmp(workload, "forkserver") == 0) S->children_left = 0;
  if (S->children_left) rc = 1;
  munmap(S, sizeof *S);
  return rc;
#else
  (void)argv;
  (void)count_fds;
  (void)count_children;
  return 77;
#endif
}

/* ------------------------------------------------------------- driver */
typedef struct opts {
  int quick, valgrind, verbose;
  long max_n;
  const char *only, *profiles, *points;
  char self[4096], wrap[4096];
} opts_t;

typedef struct outcome {
  int status;  /* 0 pass, 1 checks failed, 2 crash, 3 hang, 4 valgrind */
  long fired, hits;
  char detail[1100];
  long jobs, ok, errors;
} outcome_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const opts_t *o, const profile_t *p, const char *point, int persistent, long n,
                outcome_t *out) {
  memset(out, 0, sizeof *out);
  int fd = memfd_create("fault-sweep", 0); /* inherited across exec on purpose */
  if (fd < 0 || ftruncate(fd, sizeof(sw_shared_t)) != 0) {
    out->status = 2;
    snprintf(out->detail, sizeof out->detail, "memfd: %s", strerror(errno));
    return;
  }
  sw_shared_t *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  s->n = n;
  s->persistent = persistent;
  char fdstr[16], acc[1024] = "";
  snprintf(fdstr, sizeof fdstr, "%d", fd);
  for (int i = 0; i < p->accept.n; i++) {
    size_t u = strlen(acc);
    snprintf(acc + u, sizeof acc - u, "%s%s", i ? "," : "", p->accept.v[i]);
  }
  if (!acc[0]) snprintf(acc, sizeof acc, "none");
  names_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
  shm_list(before);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    /* A sanitizer report (LSan at exit included) gets its own exit code. */
    char san[2048];
    const char *a = getenv("ASAN_OPTIONS"), *u = getenv("UBSAN_OPTIONS");
    snprintf(san, sizeof san, "%s%sexitcode=86", a ? a : "", a && *a ? ":" : "");
    setenv("ASAN_OPTIONS", san, 1);
    snprintf(san, sizeof san, "%s%sexitcode=86", u ? u : "", u && *u ? ":" : "");
    setenv("UBSAN_OPTIONS", san, 1);
    char *args[12];
    int k = 0;
    if (o->valgrind) args[k++] = (char *)o->wrap;
    args[k++] = (char *)o->self;
    args[k++] = (char *)"--run";
    args[k++] = (char *)p->workload;
    args[k++] = (char *)point;
    args[k++] = (char *)p->err;
    args[k++] = fdstr;
    args[k++] = acc;
    args[k] = NULL;
    execv(args[0], args);
    _exit(127);
  }
  setpgid(pid, pid);
  double deadline = now_s() + (o->valgrind ? 600 : 60);
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (now_s() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &st, 0);
      out->status = 3;
      break;
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL); /* polling a child we may have to kill on a deadline */
  }
  /* Anything of the run's group still around shortly after it exited is a
   * leak (workers and servers die with their creator, asynchronously). */
  int outlived = 0;
  for (int i = 0; out->status != 3 && kill(-pid, 0) == 0; i++) {
    if (i == 200) {
      outlived = 1;
      break;
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(-pid, SIGKILL);
  if (outlived) {
    out->status = out->status ? out->status : 1;
    snprintf(s->detail + strlen(s->detail), sizeof s->detail - strlen(s->detail),
             "; processes outlived the run by 2 s");
  }
  shm_list(after);
  char shm[256];
  if (shm_new(before, after, shm, sizeof shm) > 0) {
    /* Others on the machine make short-lived entries (sem_open's temp
     * names): count only what is still there a moment later. */
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    shm_list(after);
  }
  if (shm_new(before, after, shm, sizeof shm) > 0) {
    out->status = out->status ? out->status : 1;
    snprintf(s->detail + strlen(s->detail), sizeof s->detail - strlen(s->detail),
             "; new /dev/shm: %s", shm);
  }
  free(before);
  free(after);
  if (out->status != 3) {
    if (WIFSIGNALED(st)) out->status = 2;
    else if (WEXITSTATUS(st) == 99) out->status = 4;
    else if (WEXITSTATUS(st) != 0) out->status = out->status ? out->status : (WEXITSTATUS(st) == 1 ? 1 : 2);
  }
  out->fired = atomic_load(&s->fired);
  out->hits = atomic_load(&s->hits);
  out->jobs = s->jobs;
  out->ok = s->ok;
  out->errors = s->errors;
  if (WIFSIGNALED(st)) snprintf(out->detail, sizeof out->detail, "run killed by signal %d; %s", WTERMSIG(st), s->detail);
  else if (out->status == 3) snprintf(out->detail, sizeof out->detail, "hang; %s", s->detail);
  else if (WIFEXITED(st) && WEXITSTATUS(st) == 86) snprintf(out->detail, sizeof out->detail, "sanitizer report (ASan/LSan/UBSan, see stderr); %s", s->detail);
  else if (s->children_left) snprintf(out->detail, sizeof out->detail, "%d children left; %s", s->children_left, s->detail);
  else snprintf(out->detail, sizeof out->detail, "exit %d%s%s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, s->detail[0] ? "; " : "", s->detail);
  munmap(s, sizeof *s);
  close(fd);
}

typedef struct totals {
  long rows, passed, failed, runs, jobs;
} totals_t;

static void sweep_point(const opts_t *o, const profile_t *p, const char *point, int persistent,
                        totals_t *t) {
  long max_n = o->max_n ? o->max_n : (o->quick ? p->quick_max_n : p->max_n);
  long runs = 0, fired_runs = 0, n, failures = 0, max_hits = 0;
  char first_fail[1200] = "";
  outcome_t out;
  double t0 = now_s();
  for (n = 1; n <= max_n; n++) {
    run(o, p, point, persistent, n, &out);
    runs++;
    t->jobs += out.jobs;
    if (out.hits > max_hits) max_hits = out.hits;
    if (out.status) {
      if (!failures++)
        snprintf(first_fail, sizeof first_fail, "N=%ld: %s", n, out.detail);
      if (o->verbose) fprintf(stderr, "  N=%ld FAIL %s\n", n, out.detail);
      if (failures >= 3 || out.status == 3) break; /* a hang costs a minute per run */
    } else if (o->verbose) {
      fprintf(stderr, "  N=%ld ok fired=%ld hits=%ld jobs=%ld ok=%ld err=%ld\n", n, out.fired,
              out.hits, out.jobs, out.ok, out.errors);
    }
    if (!out.fired) break;
    fired_runs++;
  }
  const char *verdict = failures ? "FAIL" : n > max_n ? "pass (capped)" : fired_runs == 0 ? "FAIL (unreached)" : "pass";
  if (!failures && fired_runs == 0) {
    failures = 1;
    snprintf(first_fail, sizeof first_fail, "workload %s never reached the point", p->workload);
  }
  printf("%-28s %-10s %-9s %-15s %5ld %5ld %5ld %6.1fs  %s\n", point,
         persistent ? "persistent" : "transient", p->workload, p->name, runs, fired_runs,
         max_hits, now_s() - t0, verdict);
  if (failures) printf("    %s\n", first_fail);
  fflush(stdout);
  t->rows++;
  t->runs += runs;
  if (failures) t->failed++;
  else t->passed++;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  if (argc >= 7 && strcmp(argv[1], "--run") == 0) return run_one(argv + 2);
#ifndef FIU_ENABLE
  printf("fault-sweep: built without -Dfault_injection=true; skipping\n");
  if (getenv("BL_SWEEP_NOSKIP") == NULL) return 77; /* the rest still compiles */
#endif
  opts_t o = {0};
  o.profiles = getenv("BL_FAULT_PROFILES") ? getenv("BL_FAULT_PROFILES") : SW_SRCDIR "/profiles";
  o.points = SW_SRCDIR "/points.txt";
  snprintf(o.wrap, sizeof o.wrap, "%s/../ci/valgrind-wrap.sh", SW_SRCDIR);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) o.quick = 1;
    else if (strcmp(argv[i], "--valgrind") == 0) o.valgrind = 1;
    else if (strcmp(argv[i], "-v") == 0) o.verbose = 1;
    else if (strcmp(argv[i], "--point") == 0 && i + 1 < argc) o.only = argv[++i];
    else if (strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) o.max_n = atol(argv[++i]);
    else if (strcmp(argv[i], "--profiles") == 0 && i + 1 < argc) o.profiles = argv[++i];
    else if (strcmp(argv[i], "--points") == 0 && i + 1 < argc) o.points = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--quick] [--valgrind] [--point NAME] [--max-n N] "
                      "[--profiles DIR] [--points FILE] [-v]\n", argv[0]);
      return 2;
    }
  }
  ssize_t sl = readlink("/proc/self/exe", o.self, sizeof o.self - 1);
  if (sl <= 0) return 2;
  o.self[sl] = 0;

  /* Profiles, sorted by file name for a stable table. */
  DIR *d = opendir(o.profiles);
  if (!d) {
    fprintf(stderr, "fault-sweep: %s: %s\n", o.profiles, strerror(errno));
    return 2;
  }
  char *files[64];
  int nf = 0;
  for (struct dirent *e; (e = readdir(d)) && nf < 64;) {
    size_t l = strlen(e->d_name);
    if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0) {
      files[nf] = malloc(strlen(o.profiles) + l + 2);
      sprintf(files[nf++], "%s/%s", o.profiles, e->d_name);
    }
  }
  closedir(d);
  qsort(files, (size_t)nf, sizeof files[0], cmp_str);
  profile_t *prof = calloc((size_t)nf, sizeof *prof);
  int bad = 0;
  for (int i = 0; i < nf; i++) bad |= load_profile(files[i], &prof[i]) != 0;
  if (bad) return 2;

  /* Every registered point must be swept by some profile. */
  totals_t t = {0};
  FILE *pf = fopen(o.points, "r");
  char line[512];
  int uncovered = 0;
  while (pf && fgets(line, sizeof line, pf)) {
    char name[128];
    if (line[0] == '#' || sscanf(line, "%127s", name) != 1) continue;
    int covered = 0;
    for (int i = 0; i < nf && !covered; i++) covered = in_list(&prof[i].points, name);
    if (!covered) {
      printf("%-28s not swept by any profile\n", name);
      uncovered++;
    }
  }
  if (pf) fclose(pf);
  else fprintf(stderr, "fault-sweep: %s: %s\n", o.points, strerror(errno)), uncovered++;

  printf("%-28s %-10s %-9s %-15s %5s %5s %5s %7s  %s\n", "point", "mode", "workload",
         "profile", "runs", "fired", "hits", "time", "verdict");
  double t0 = now_s();
  for (int i = 0; i < nf; i++) {
    for (int j = 0; j < prof[i].points.n; j++) {
      const char *pt = prof[i].points.v[j];
      if (o.only && strcmp(o.only, pt) != 0) continue;
      if (o.quick && !in_list(&prof[i].quick, pt)) continue;
      for (int m = 0; m < prof[i].modes.n; m++) {
        int persistent = strcmp(prof[i].modes.v[m], "persistent") == 0;
        if (o.quick && prof[i].quick_modes.n && !in_list(&prof[i].quick_modes, prof[i].modes.v[m]))
          continue;
        if (!persistent && strcmp(prof[i].modes.v[m], "transient") != 0) {
          fprintf(stderr, "%s: unknown mode %s\n", prof[i].name, prof[i].modes.v[m]);
          return 2;
        }
        sweep_point(&o, &prof[i], pt, persistent, &t);
      }
    }
  }
  for (int i = 0; i < nf; i++) free(files[i]);
  free(prof);
  if (!o.quick && !o.only && uncovered) t.failed += uncovered;
  printf("fault-sweep: %ld rows, %ld runs, %ld jobs checked, %.0f s%s\n", t.rows, t.runs, t.jobs,
         now_s() - t0, o.valgrind ? " (valgrind)" : "");
  printf("%ld passed, %ld failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
