/* common.h: timing, statistics and JSON output shared by the C benchmark
 * programs (bench_libbilliard, bench_floor). Header-only, no library code.
 *
 * Every program is invoked as `PROG METRIC [key=value ...]` by
 * bench/run.py and prints ONE JSON object on stdout. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wunused-function"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

/* key=value arguments after the metric name. */
static int g_argc;
static char **g_argv;
static long arg_long(const char *key, long dflt) {
  size_t kl = strlen(key);
  for (int i = 2; i < g_argc; i++)
    if (!strncmp(g_argv[i], key, kl) && g_argv[i][kl] == '=')
      return atol(g_argv[i] + kl + 1);
  return dflt;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
/* Percentile (0..100) of v[0..n), nearest rank; sorts v. */
static double pct(double *v, size_t n, double p) {
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, cmp_double);
  size_t k = (size_t)(p / 100.0 * (double)n + 0.5);
  if (k > 0) k--;
  if (k >= n) k = n - 1;
  return v[k];
}

/* JSON object builder: out_begin(); out_num("k", v)...; out_end(). */
static int g_first = 1;
static void out_begin(const char *metric) {
  printf("{\"metric\": \"%s\"", metric);
  g_first = 0;
}
static void out_num(const char *k, double v) { printf(", \"%s\": %.9g", k, v); }
static void out_str(const char *k, const char *v) { printf(", \"%s\": \"%s\"", k, v); }
static void out_end(void) {
  printf("}\n");
  fflush(stdout);
}
/* Latency samples (seconds) -> p50/p99/mean in the given unit scale. */
static void out_lat(const char *unit, double scale, double *v, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  out_num("p50", pct(v, n, 50) * scale);
  out_num("p99", pct(v, n, 99) * scale);
  out_num("mean", n ? sum / (double)n * scale : 0);
  out_num("samples", (double)n);
  out_str("unit", unit);
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

#endif
