/* bench_sync.c: queue, lock and shared-value throughput against raw floors.
 *
 *   Queue put→get between two processes (64-byte items) vs a raw pipe's
 *   64-byte message rate; uncontended Lock acquire+release vs a bare
 *   process-shared pthread mutex; two processes contending on a Lock around
 *   a shared Value increment. Goals: queue >= 1/2 pipe rate; lock <= 2x
 *   mutex. Median of 3 rounds; ratios are taken within each round. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <billiard/billiard.h>

#include "internal.h"

#define ROUNDS 3

static double now_s(void) { return (double)bl_monotonic_ns() / 1e9; }

static void reap(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0) {}
}

static double queue_rate(long n) {
  bl_queue_t *q = NULL;
  if (bl_queue_new(&q, NULL)) abort();
  char item[64] = {1};
  pid_t pid = bl__fork(SIGKILL);
  if (pid == 0) {
    for (long i = 0; i < n; i++)
      if (bl_queue_put(q, item, sizeof item, -1)) bl__child_exit(1);
    bl__child_exit(0);
  }
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    void *b;
    size_t l;
    if (bl_queue_get(q, &b, &l, -1)) abort();
    free(b);
  }
  double dt = now_s() - t0;
  reap(pid);
  bl_queue_free(&q);
  return (double)n / dt;
}

static double pipe_rate(long n) {
  int fds[2];
  if (bl__pipe(fds)) abort();
  char msg[64] = {1};
  pid_t pid = bl__fork(SIGKILL);
  if (pid == 0) {
    close(fds[0]);
    for (long i = 0; i < n; i++)
      if (bl__write_full(fds[1], msg, sizeof msg)) bl__child_exit(1);
    bl__child_exit(0);
  }
  close(fds[1]);
  double t0 = now_s();
  for (long i = 0; i < n; i++)
    if (bl__read_full(fds[0], msg, sizeof msg)) abort();
  double dt = now_s() - t0;
  close(fds[0]);
  reap(pid);
  return (double)n / dt;
}

static double lock_ns(long n) {
  bl_lock_t *l = NULL;
  if (bl_lock_new(&l)) abort();
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    bl_lock_acquire(l, -1);
    bl_lock_release(l);
  }
  double dt = now_s() - t0;
  bl_lock_free(&l);
  return dt * 1e9 / (double)n;
}

static pthread_mutex_t *pshared_mutex(void) {
  pthread_mutex_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) abort();
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return m;
}

static double mutex_ns(long n) {
  pthread_mutex_t *m = pshared_mutex();
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    pthread_mutex_lock(m);
    pthread_mutex_unlock(m);
  }
  double dt = now_s() - t0;
  munmap(m, 4096);
  return dt * 1e9 / (double)n;
}

/* Two processes, each n times: lock; value += 1; unlock. Ops/s overall. */
static double contended_rate(long n, int bare) {
  bl_value_t *v = NULL;
  if (bl_value_new(&v, 'q', NULL)) abort();
  bl_lock_t *l = bl_value_get_lock(v);
  pthread_mutex_t *m = bare ? pshared_mutex() : NULL;
  volatile long long *x = bl_value_ptr(v);
  double t0 = now_s();
  pid_t pid[2];
  for (int p = 0; p < 2; p++) {
    pid[p] = bl__fork(SIGKILL);
    if (pid[p] == 0) {
      for (long i = 0; i < n; i++) {
        if (bare) pthread_mutex_lock(m); else bl_lock_acquire(l, -1);
        (*x)++;
        if (bare) pthread_mutex_unlock(m); else bl_lock_release(l);
      }
      bl__child_exit(0);
    }
  }
  reap(pid[0]);
  reap(pid[1]);
  double dt = now_s() - t0;
  if (*x != 2 * n) {
    fprintf(stderr, "lost increments: %lld != %ld\n", *x, 2 * n);
    abort();
  }
  if (m) munmap(m, 4096);
  bl_value_free(&v);
  return 2.0 * (double)n / dt;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v) {
  qsort(v, ROUNDS, sizeof *v, cmp);
  return v[ROUNDS / 2];
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  long nq = (long)(1000000 * scale), nl = (long)(20000000 * scale),
       nc = (long)(2000000 * scale);
  double q[ROUNDS], p[ROUNDS], rq[ROUNDS], l[ROUNDS], m[ROUNDS], rl[ROUNDS],
      c[ROUNDS], cb[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    q[r] = queue_rate(nq);
    p[r] = pipe_rate(nq);
    rq[r] = q[r] / p[r];
    l[r] = lock_ns(nl);
    m[r] = mutex_ns(nl);
    rl[r] = l[r] / m[r];
    c[r] = contended_rate(nc, 0);
    cb[r] = contended_rate(nc, 1);
  }
  printf("queue put->get, 2 processes, 64 B : %9.0f items/s\n", median(q));
  printf("raw pipe 64 B messages            : %9.0f msgs/s\n", median(p));
  printf("  queue / pipe                    : %9.2f   (goal >= 0.5)\n", median(rq));
  printf("Lock acquire+release, uncontended : %9.1f ns\n", median(l));
  printf("pshared pthread mutex lock+unlock : %9.1f ns\n", median(m));
  printf("  Lock / mutex                    : %9.2f   (goal <= 2)\n", median(rl));
  printf("2-process Lock + Value increments : %9.0f ops/s\n", median(c));
  printf("2-process pthread mutex + incr.   : %9.0f ops/s\n", median(cb));
  return 0;
}
