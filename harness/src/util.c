/* util.c: allocation, strings, durations and time for billiard-conform. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(void) {
  fputs("billiard-conform: out of memory\n", stderr);
  abort();
}

void *bc_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *bc_xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (!p) oom();
  return p;
}

void *bc_xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) oom();
  return p;
}

char *bc_xstrdup(const char *s) { return bc_xstrndup(s, strlen(s)); }

char *bc_xstrndup(const char *s, size_t n) {
  char *p = bc_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *bc_vasprintf(const char *fmt, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (n < 0) oom();
  char *p = bc_xmalloc((size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *bc_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = bc_vasprintf(fmt, ap);
  va_end(ap);
  return p;
}

void bc_buf_add(bc_buf_t *b, const char *data, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->s = bc_xrealloc(b->s, cap);
    b->cap = cap;
  }
  memcpy(b->s + b->len, data, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void bc_buf_puts(bc_buf_t *b, const char *s) { bc_buf_add(b, s, strlen(s)); }

void bc_buf_printf(bc_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = bc_vasprintf(fmt, ap);
  va_end(ap);
  bc_buf_puts(b, p);
  free(p);
}

void bc_buf_html(bc_buf_t *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': bc_buf_puts(b, "&lt;"); break;
    case '>': bc_buf_puts(b, "&gt;"); break;
    case '&': bc_buf_puts(b, "&amp;"); break;
    case '"': bc_buf_puts(b, "&quot;"); break;
    case '\'': bc_buf_puts(b, "&#39;"); break;
    default:
      /* XML 1.0 forbids most control characters, even escaped. */
      if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') bc_buf_puts(b, "?");
      else bc_buf_add(b, s, 1);
    }
  }
}

char *bc_buf_steal(bc_buf_t *b) {
  if (!b->s) bc_buf_add(b, "", 0);
  char *s = b->s;
  b->s = NULL;
  b->len = b->cap = 0;
  return s;
}

void bc_buf_free(bc_buf_t *b) {
  free(b->s);
  b->s = NULL;
  b->len = b->cap = 0;
}

void bc_strv_push_owned(bc_strv_t *l, char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = bc_xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = s;
}

void bc_strv_push(bc_strv_t *l, const char *s) { bc_strv_push_owned(l, bc_xstrdup(s)); }

bool bc_strv_has(const bc_strv_t *l, const char *s) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0) return true;
  return false;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void bc_strv_sort(bc_strv_t *l) {
  if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

void bc_strv_free(bc_strv_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

int bc_parse_duration(const char *s, double *seconds) {
  char *end;
  errno = 0;
  while (isspace((unsigned char)*s)) s++;
  if (!*s || *s == '-' || *s == '+') return -EINVAL;
  double v = strtod(s, &end);
  if (errno || end == s || !isfinite(v) || v < 0) return -EINVAL;
  while (isspace((unsigned char)*end)) end++;
  double scale;
  if (!*end || strcmp(end, "s") == 0) scale = 1;
  else if (strcmp(end, "ms") == 0) scale = 1e-3;
  else if (strcmp(end, "m") == 0) scale = 60;
  else if (strcmp(end, "h") == 0) scale = 3600;
  else return -EINVAL;
  *seconds = v * scale;
  return 0;
}

bool bc_is_kebab_yaml(const char *name) {
  size_t n = strlen(name);
  if (n <= 5 || strcmp(name + n - 5, ".yaml") != 0) return false;
  bool prev_dash = true; /* no leading dash */
  for (size_t i = 0; i < n - 5; i++) {
    char c = name[i];
    if (c == '-') {
      if (prev_dash) return false;
      prev_dash = true;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      prev_dash = false;
    } else {
      return false;
    }
  }
  return !prev_dash;
}

bool bc_has_glob(const char *s) { return strpbrk(s, "*?[") != NULL; }

double bc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double bc_timeout_multiplier(void) {
  const char *e = getenv("BL_TEST_TIMEOUT_MULTIPLIER");
  if (!e || !*e) return 1;
  char *end;
  double v = strtod(e, &end);
  return (*end || !(v > 0) || !isfinite(v)) ? 1 : v;
}

uint64_t bc_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t bc_hash_str(uint64_t h, const char *s) {
  /* FNV-1a, seeded: good enough to derive per-run seeds. */
  h ^= 0xcbf29ce484222325ULL;
  for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}

char *bc_read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  bc_buf_t b = {0};
  char tmp[65536];
  for (;;) {
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      bc_buf_free(&b);
      errno = e;
      return NULL;
    }
    if (r == 0) break;
    bc_buf_add(&b, tmp, (size_t)r);
  }
  close(fd);
  if (len) *len = b.len;
  return bc_buf_steal(&b);
}
