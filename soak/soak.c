/* soak.c: chaos soak of a pool (ci/soak, meson suite soak).
 *
 * A pool under steady load while a chaos thread, driven by a seeded PRNG,
 * SIGKILLs workers, SIGSTOPs and SIGCONTs them, and some jobs run into their
 * hard or soft time limit; a few jobs are maps (the shared map path), all
 * of whose items must come back right unless a worker was lost under them. At the end every job must be accounted for
 * exactly once: the right value, or a documented error for what happened to
 * it (WorkerLostError, TimeLimitExceeded, SoftTimeLimitExceeded); no fd,
 * child or shared-memory mapping left; parent RSS roughly flat.
 *
 *   soak [--minutes M | --seconds S] [--seed N] [--processes P]
 *        [--window W] [--max-rss-growth-mib M]
 * Exit 0 pass, 1 fail. */
#include <billiard/billiard.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { K_NORMAL, K_SOFT, K_HARD, K_MAP };
#define MAP_MAX 300 /* items of a map job (chunks of 1..16 items) */
#define MAXJOBS (8u << 20)

static atomic_uchar *resolutions; /* per job: callbacks seen */
static atomic_long cb_total;
static atomic_int stop_chaos;
static atomic_long kills, stops;
static uint64_t seed = 1;

static uint64_t rnd(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- tasks (run in workers) ---- */
typedef struct arg {
  uint64_t x;
  uint32_t kind, ms;
} arg_t;

static int t_work(bl_task_ctx_t *ctx, const void *a, size_t len) {
  arg_t g;
  if (len != sizeof g) return bl_task_fail(ctx, "ValueError", "bad arg", NULL);
  memcpy(&g, a, sizeof g);
  if (g.kind == K_SOFT) {
    int rc = bl_task_sleep(ctx, g.ms); /* the soft limit ends it early */
    if (rc) return rc;
  } else if (g.kind == K_HARD) {
    sleep_ms(g.ms); /* ignores the soft limit: only the hard one stops it */
  }
  uint64_t v = g.x * 3 + 1;
  return bl_task_return(ctx, &v, sizeof v);
}

/* ---- result bookkeeping ---- */
static void on_ok(bl_result_t *r, const void *v, size_t n, void *user) {
  atomic_fetch_add(&resolutions[(uintptr_t)user], 1);
  atomic_fetch_add(&cb_total, 1);
}
static void on_err(bl_result_t *r, const bl_error_info_t *e, void *user) {
  atomic_fetch_add(&resolutions[(uintptr_t)user], 1);
  atomic_fetch_add(&cb_total, 1);
}

/* ---- chaos ---- */
typedef struct chaos {
  bl_pool_t *pool;
  uint64_t rng;
} chaos_t;

/* Signal pid only if it is still our child: a pidfd pins the process, and
 * its parent is checked after opening it, so a recycled pid is never hit. */
static int signal_worker(pid_t pid, int sig, int *pfd) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return -1;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  int ppid = -1;
  if (f) {
    if (fgets(buf, sizeof buf, f)) {
      char *rp = strrchr(buf, ')');
      if (rp) sscanf(rp + 2, "%*c %d", &ppid);
    }
    fclose(f);
  }
  if (ppid != getpid() || syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) != 0) {
    close(fd);
    return -1;
  }
  if (pfd) *pfd = fd;
  else close(fd);
  return 0;
}

static void *chaos_main(void *p) {
  chaos_t *c = p;
  while (!atomic_load(&stop_chaos)) {
    sleep_ms(5 + (long)(rnd(&c->rng) % 40));
    pid_t pids[64];
    int n = bl_pool_pids(c->pool, pids, 64);
    if (n <= 0) continue;
    pid_t victim = pids[rnd(&c->rng) % (uint64_t)n];
    unsigned dice = (unsigned)(rnd(&c->rng) % 100);
    if (dice < 35) {
      if (signal_worker(victim, SIGKILL, NULL) == 0) atomic_fetch_add(&kills, 1);
    } else if (dice < 70) {
      int fd = -1;
      if (signal_worker(victim, SIGSTOP, &fd) == 0) {
        atomic_fetch_add(&stops, 1);
        sleep_ms(10 + (long)(rnd(&c->rng) % 150));
        syscall(SYS_pidfd_send_signal, fd, SIGCONT, NULL, 0);
        close(fd);
      }
    }
  }
  return NULL;
}

/* ---- audits ---- */
static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
  if (f) fclose(f);
  return v;
}
static int count_dir(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.' && strncmp(e->d_name, "bxfi_", 5) != 0) n++;
  closedir(d);
  return n;
}
/* Shared memory this process holds: mappings and open fds of /dev/shm
 * entries, memfds and shared anonymous pages (a pool's worker pages).
 * Counting /dev/shm itself would see other programs' files (Python
 * semaphores of tests running beside the soak). */
static int count_own_shm(void) {
  int n = 0;
  char line[512];
  FILE *f = fopen("/proc/self/maps", "re");
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "/dev/shm/") || strstr(line, "/memfd:") || strstr(line, "/dev/zero (deleted)"))
      n++;
  if (f) fclose(f);
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[300], target[512];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(path, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = 0;
    if (!strncmp(target, "/dev/shm/", 9) || !strncmp(target, "/memfd:", 7)) n++;
  }
  if (d) closedir(d);
  return n;
}
static int count_children(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[300], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "r");
    while (f && fscanf(f, "%63s", buf) == 1) n++;
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return n;
}

typedef struct slot {
  bl_result_t *r;
  uint64_t job, x;
  uint32_t kind, n; /* K_MAP: n items, item i's x is x + i */
} slot_t;

/* A map job's value: every item i is (x + i) * 3 + 1. */
static int map_ok(bl_result_t *r, const slot_t *s) {
  if (bl_result_count(r) != s->n) return 0;
  for (uint32_t i = 0; i < s->n; i++) {
    const void *v;
    size_t len;
    uint64_t got;
    if (bl_result_item(r, i, &v, &len) != 0 || len != sizeof got) return 0;
    memcpy(&got, v, sizeof got);
    if (got != (s->x + i) * 3 + 1) return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  double secs = 60;
  unsigned procs = 4, window = 64;
  long max_growth_mib = 64;
#if defined(__SANITIZE_ADDRESS__)
  max_growth_mib = 256; /* ASan's quarantine and shadow memory grow on their own */
#endif
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--minutes") == 0 && i + 1 < argc) secs = atof(argv[++i]) * 60;
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) secs = atof(argv[++i]);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "--processes") == 0 && i + 1 < argc) procs = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) window = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--max-rss-growth-mib") == 0 && i + 1 < argc) max_growth_mib = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: soak [--minutes M | --seconds S] [--seed N] [--processes P] "
                      "[--window W] [--max-rss-growth-mib M]\n");
      return 2;
    }
  }
  if (window < 1 || window > 4096 || procs < 1) return 2;
  resolutions = calloc(MAXJOBS, 1);
  slot_t *slots = calloc(window, sizeof *slots);
  if (!resolutions || !slots) return 2;
  bl_register_task("soak-work", t_work);

  int fd0 = count_dir("/proc/self/fd"), shm0 = count_own_shm();
  bl_pool_options_t po;
  bl_pool_options_init(&po);
  po.processes = procs;
  po.max_restarts = 0; /* chaos restarts workers far faster than any limiter allows */
  po.kill_grace_ms = 50;
  bl_pool_t *pool = NULL;
  int rc = bl_pool_new(&pool, &po);
  if (rc) {
    fprintf(stderr, "soak: pool_new: %s\n", bl_strerror(rc));
    return 1;
  }
  chaos_t ch = {pool, seed ^ 0x5eed};
  pthread_t th;
  pthread_create(&th, NULL, chaos_main, &ch);

  uint64_t rng = seed, next = 0;
  long ok = 0, lost = 0, hard = 0, soft = 0, bad = 0, submitted = 0, maps = 0, maps_ok = 0;
  double t0 = now_s(), last = t0, end = t0 + secs;
  long rss_start = -1;
  uint64_t next_at_rss = 0;
  double warm = secs < 30 ? secs / 5 : 10;
  int draining = 0;
  for (size_t i = 0;; i = (i + 1) % window) {
    slot_t *s = &slots[i];
    if (s->r) {
      const void *v = NULL;
      size_t len = 0;
      bl_error_info_t err = {0};
      rc = bl_result_get(s->r, 60000, &v, &len, &err);
      uint64_t want = s->x * 3 + 1, got = 0;
      if (s->kind != K_MAP && rc == 0 && len == sizeof got) memcpy(&got, v, sizeof got);
      if (s->kind == K_MAP) maps++, maps_ok += rc == 0 && map_ok(s->r, s);
      if (s->kind == K_MAP ? rc == 0 && map_ok(s->r, s) : rc == 0 && len == sizeof got && got == want)
        ok++;
      else if (rc == BL_EWORKERLOST) lost++;
      else if (rc == BL_ETIMELIMIT) hard++; /* hard jobs, or a stopped worker past its limit */
      else if (rc == BL_ESOFTTIMELIMIT && s->kind != K_NORMAL) soft++;
      else {
        bad++;
        fprintf(stderr, "soak: job %llu (kind %u): %s %s\n", (unsigned long long)s->job, s->kind,
                rc == 0 ? "wrong value" : bl_err_name(rc), err.message ? err.message : "");
      }
      bl_error_info_clear(&err);
      bl_result_free(&s->r);
    }
    double t = now_s();
    if (rss_start < 0 && t - t0 >= warm) rss_start = rss_kib(), next_at_rss = next;
    if (t - last >= 10) {
      last = t;
      printf("soak: %4.0fs jobs %ld (ok %ld, lost %ld, hard %ld, soft %ld, bad %ld) kills %ld "
             "stops %ld rss %ld KiB\n", t - t0, ok + lost + hard + soft + bad, ok, lost, hard,
             soft, bad, (long)atomic_load(&kills), (long)atomic_load(&stops), rss_kib());
      fflush(stdout);
    }
    if (t >= end || next >= MAXJOBS) draining = 1;
    if (draining) {
      int any = 0;
      for (unsigned k = 0; k < window && !any; k++) any = slots[k].r != NULL;
      if (!any) break;
      continue;
    }
    /* Next job: mostly quick, some run into a soft or a hard limit. */
    unsigned dice = (unsigned)(rnd(&rng) % 1000);
    arg_t g = {rnd(&rng) >> 8, K_NORMAL, 0};
    bl_apply_options_t ao;
    bl_apply_options_init(&ao);
    ao.callback = on_ok;
    ao.error_callback = on_err;
    ao.user = (void *)(uintptr_t)next;
    if (dice < 3) {
      g.kind = K_HARD, g.ms = 2000;
      ao.time_limit_ms = 60;
    } else if (dice < 8) {
      g.kind = K_SOFT, g.ms = 2000;
      ao.soft_time_limit_ms = 20;
      ao.time_limit_ms = 1000;
    }
    s->job = next;
    s->x = g.x;
    s->kind = g.kind;
    if (dice >= 980) { /* a map job: the shared map path under chaos */
      static arg_t items[MAP_MAX];
      static const void *args[MAP_MAX];
      static size_t lens[MAP_MAX];
      s->kind = K_MAP;
      s->n = 1 + (uint32_t)(rnd(&rng) % MAP_MAX);
      for (uint32_t k = 0; k < s->n; k++) {
        items[k] = (arg_t){g.x + k, K_NORMAL, 0};
        args[k] = &items[k];
        lens[k] = sizeof items[k];
      }
      ao.chunksize = 1 + (size_t)(rnd(&rng) % 16);
      rc = bl_pool_map_async(pool, "soak-work", args, lens, s->n, &ao, &s->r);
    } else {
      rc = bl_pool_apply_async(pool, "soak-work", &g, sizeof g, &ao, &s->r);
    }
    if (rc) {
      fprintf(stderr, "soak: submit: %s\n", bl_strerror(rc));
      bad++;
      draining = 1;
      continue;
    }
    next++;
    submitted++;
  }
  atomic_store(&stop_chaos, 1);
  pthread_join(th, NULL);
  long rss_end = rss_kib();
  bl_pool_close(pool);
  rc = bl_pool_join(pool, 30000);
  if (rc) fprintf(stderr, "soak: join: %s\n", bl_strerror(rc)), bad++;
  bl_pool_free(&pool);
  double el = now_s() - t0;

  /* Exactly once: one callback per job, and every job got one. */
  long twice = 0, never = 0;
  for (uint64_t j = 0; j < next; j++) {
    unsigned n = atomic_load(&resolutions[j]);
    if (n == 0) never++;
    if (n > 1) twice++;
  }
  int fd1 = count_dir("/proc/self/fd"), shm1 = count_own_shm(), kids = count_children();
  /* The per-job accounting bytes (one per job) are ours, not the pool's. */
  long own_kib = (long)((next - next_at_rss) / 1024);
  long growth_kib = rss_end - rss_start - own_kib;
  int fail = bad || twice || never || fd1 != fd0 || kids || shm1 > shm0 ||
             ok + lost + hard + soft != submitted || atomic_load(&cb_total) != submitted ||
             growth_kib > max_growth_mib * 1024 || ok == 0;
  printf("soak: %s seed %llu, %.0fs, %ld jobs (%.0f/min): ok %ld, WorkerLostError %ld, "
         "TimeLimitExceeded %ld, SoftTimeLimitExceeded %ld, bad %ld, unresolved %ld, "
         "twice %ld; maps %ld (all items right: %ld); kills %ld, stops %ld; rss %ld -> %ld KiB (pool growth %ld KiB); "
         "fds %d -> %d; children %d; shared memory held %d -> %d\n",
         fail ? "FAIL" : "PASS", (unsigned long long)seed, el, submitted, submitted / el * 60, ok,
         lost, hard, soft, bad, never, twice, maps, maps_ok, (long)atomic_load(&kills),
         (long)atomic_load(&stops),
         rss_start, rss_end, growth_kib, fd0, fd1, kids, shm0, shm1);
  printf("%d passed, %d failed\n", !fail, fail);
  free(slots);
  free(resolutions);
  return fail;
}
