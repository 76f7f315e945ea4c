/* util.c: output, argument decoding, payloads and digests for bc-driver-c. */
#include "bcd.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- output ----
 * stdout is written with write(2), never stdio: workers are forked from
 * other threads at any moment, and a child must not inherit (and, under
 * valgrind, flush) half a line from a stdio buffer. */
static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Messages in flight are kept in globals, not only in registers or on a
 * blocked thread's stack: a worker forked by a supervisor thread meanwhile
 * then still sees them referenced (else valgrind calls them definitely
 * lost when that worker exits). */
#define ROOTS 16
static json_t *_Atomic roots[ROOTS];
static char *inflight; /* under out_lock */

static int root_add(json_t *m) {
  for (int i = 0; i < ROOTS; i++) {
    json_t *expect = NULL;
    if (atomic_compare_exchange_strong(&roots[i], &expect, m))
      return i;
  }
  return -1;
}

void bcd_emit(json_t *msg) {
  int slot = root_add(msg);
  json_object_set_new(msg, "v", json_integer(BCD_PROTOCOL));
  pthread_mutex_lock(&bcd.out_lock);
  inflight = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
  if (inflight != NULL) {
    write_all(STDOUT_FILENO, inflight, strlen(inflight));
    write_all(STDOUT_FILENO, "\n", 1);
  }
  int failed = inflight == NULL;
  free(inflight);
  inflight = NULL;
  pthread_mutex_unlock(&bcd.out_lock);
  if (slot >= 0)
    atomic_store(&roots[slot], NULL);
  json_decref(msg);
  if (failed)
    bcd_log("cannot encode a message");
}

void bcd_event(const char *name, json_t *fields) {
  json_t *m = fields ? fields : json_object();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  double t = (double)(now - bcd.t0_ns) / 1e9;
  json_object_set_new(m, "event", json_string(name));
  json_object_set_new(m, "t", json_real(round(t * 1e6) / 1e6));
  bcd_emit(m);
}

void bcd_log(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof buf - 2)
    n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  write_all(STDERR_FILENO, "bc-driver-c: ", 13);
  write_all(STDERR_FILENO, buf, (size_t)n);
}

/* ---- errors ---- */
static void vset(bcd_err_t *e, const char *type, const char *fmt,
                 va_list ap) {
  snprintf(e->type, sizeof e->type, "%s", type);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  e->code = NULL;
}

json_t *bcd_fail(bcd_err_t *e, const char *type, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset(e, type, fmt, ap);
  va_end(ap);
  return NULL;
}

json_t *bcd_unsupported(bcd_err_t *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset(e, "Unsupported", fmt, ap);
  va_end(ap);
  return NULL;
}

json_t *bcd_fail_rc(bcd_err_t *e, int rc, const bl_error_info_t *info,
                    const char *what) {
  const char *type = info && info->code ? bl_error_info_type(info)
                                        : bl_err_exception(rc);
  if (rc == -EPIPE)
    type = "BrokenPipeError";
  snprintf(e->type, sizeof e->type, "%s", type);
  if (info && info->message)
    snprintf(e->message, sizeof e->message, "%s", info->message);
  else if (bl_err_is_billiard(rc))
    snprintf(e->message, sizeof e->message, "%s", bl_strerror(rc));
  else /* as Python prints an OSError */
    snprintf(e->message, sizeof e->message, "[Errno %d] %s (%s)", -rc,
             bl_strerror(rc), what);
  e->code = bl_err_is_billiard(rc) ? bl_err_name(rc) : NULL;
  return NULL;
}

/* ---- arguments ---- */
const char *bcd_str(const json_t *a, const char *key) {
  json_t *v = json_object_get(a, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

int bcd_has(const json_t *a, const char *key) {
  json_t *v = json_object_get(a, key);
  return v != NULL && !json_is_null(v);
}

double bcd_num(const json_t *a, const char *key, double dflt) {
  json_t *v = json_object_get(a, key);
  return json_is_number(v) ? json_number_value(v) : dflt;
}

int bcd_bool(const json_t *a, const char *key, int dflt) {
  json_t *v = json_object_get(a, key);
  if (json_is_boolean(v))
    return json_is_true(v);
  if (json_is_number(v))
    return json_number_value(v) != 0;
  return dflt;
}

int bcd_ms(double s) {
  if (!(s > 0))
    return 0;
  double ms = ceil(s * 1000.0 - 1e-6);
  return ms >= (double)INT_MAX ? INT_MAX : (int)ms;
}

int bcd_timeout_ms(const json_t *a, const char *key, int dflt) {
  json_t *v = json_object_get(a, key);
  if (v == NULL)
    return dflt;
  if (!json_is_number(v))
    return -1;
  return bcd_ms(json_number_value(v));
}

static const struct {
  const char *name;
  int num;
} signames[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
    {"ILL", SIGILL},   {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},
    {"BUS", SIGBUS},   {"FPE", SIGFPE},   {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
    {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"SYS", SIGSYS},
};

int bcd_signum(const json_t *v) {
  if (json_is_integer(v))
    return (int)json_integer_value(v);
  if (!json_is_string(v))
    return -1;
  const char *s = json_string_value(v);
  if (strncasecmp(s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
    if (strcasecmp(s, signames[i].name) == 0)
      return signames[i].num;
  return -1;
}

char *bcd_dump(const json_t *v) {
  if (v == NULL)
    return strdup("{}");
  return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

json_t *bcd_parse(const void *buf, size_t len) {
  if (buf == NULL || len == 0)
    return json_null();
  json_error_t err;
  return json_loadb(buf, len, JSON_DECODE_ANY, &err);
}

json_t *bcd_bytes_json(const void *buf, size_t len) {
  json_t *s = json_stringn(buf ? buf : "", len);
  if (s != NULL)
    return s;
  /* Not UTF-8: replace every non-ASCII byte, as a lossy decode would. */
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return json_null();
  const unsigned char *p = buf;
  for (size_t i = 0; i < len; i++)
    copy[i] = p[i] < 0x80 && p[i] != 0 ? (char)p[i] : '?';
  s = json_stringn(copy, len);
  free(copy);
  return s ? s : json_null();
}

int bcd_payload(const json_t *v, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (json_is_object(v)) {
    const char *rep = bcd_str(v, "repeat");
    json_t *n = json_object_get(v, "n");
    if (rep == NULL || !json_is_integer(n) || json_integer_value(n) < 0)
      return -EINVAL;
    size_t rl = strlen(rep), cnt = (size_t)json_integer_value(n);
    if (rl != 0 && cnt > SIZE_MAX / rl - 1)
      return -ENOMEM;
    char *b = malloc(rl * cnt + 1);
    if (b == NULL)
      return -ENOMEM;
    if (rl == 1)
      memset(b, rep[0], cnt);
    else
      for (size_t i = 0; i < cnt; i++)
        memcpy(b + i * rl, rep, rl);
    *out = b;
    *len = rl * cnt;
    return 0;
  }
  if (!json_is_string(v) && v != NULL) {
    /* A scalar YAML gave as a number: send str(value), as Python would. */
    char *t = json_is_true(v)    ? strdup("True")
              : json_is_false(v) ? strdup("False")
              : json_is_null(v)  ? strdup("None")
                                 : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (t == NULL)
      return -ENOMEM;
    *out = t;
    *len = strlen(t);
    return 0;
  }
  const char *s = json_is_string(v) ? json_string_value(v) : "";
  size_t n = json_is_string(v) ? json_string_length(v) : 0;
  char *b = malloc(n + 1);
  if (b == NULL)
    return -ENOMEM;
  memcpy(b, s, n);
  *out = b;
  *len = n;
  return 0;
}

/* ---- SHA-256 (FIPS 180-4), for {"digest":true} replies ---- */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5],
           g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
                  ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 =
        (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d;
  h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void bcd_sha256_hex(const void *buf, size_t len, char hex[65]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const unsigned char *p = buf;
  size_t i = 0;
  for (; len - i >= 64; i += 64)
    sha_block(h, p + i);
  unsigned char tail[128] = {0};
  size_t rest = len - i;
  if (rest)
    memcpy(tail, p + i, rest);
  tail[rest] = 0x80;
  size_t tl = rest < 56 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int k = 0; k < 8; k++)
    tail[tl - 1 - k] = (unsigned char)(bits >> (8 * k));
  sha_block(h, tail);
  if (tl == 128)
    sha_block(h, tail + 64);
  for (int k = 0; k < 8; k++)
    snprintf(hex + 8 * k, 9, "%08x", h[k]);
}

json_t *bcd_digest(const void *buf, size_t len) {
  char hex[65];
  bcd_sha256_hex(buf, len, hex);
  return json_pack("{s:I,s:s}", "len", (json_int_t)len, "sha256", hex);
}

/* ---- objects (INTERPRETING.md §5): JSON values as their JSON text ---- */
json_t *bcd_object_arg(const json_t *a) {
  json_t *d = json_object_get(a, "data");
  if (d == NULL)
    return json_incref(json_object_get(a, "value")); /* NULL -> null below */
  char *buf;
  size_t len;
  if (bcd_payload(d, &buf, &len) != 0)
    return NULL;
  json_t *s = json_stringn(buf, len);
  free(buf);
  return s;
}

char *bcd_object_text(const json_t *v) {
  return json_dumps(v ? v : json_null(),
                    JSON_ENCODE_ANY | JSON_COMPACT | JSON_ALLOW_NUL);
}

char *bcd_object_arg_text(const json_t *a, bcd_err_t *e) {
  json_t *v = bcd_object_arg(a);
  if (v == NULL && json_object_get(a, "data") != NULL) {
    bcd_fail(e, "ValueError", "bad data");
    return NULL;
  }
  char *s = bcd_object_text(v);
  json_decref(v);
  if (s == NULL)
    bcd_fail(e, "MemoryError", "out of memory");
  return s;
}

json_t *bcd_object_digest(json_t *v) {
  if (!json_is_string(v))
    return v;
  json_t *d = bcd_digest(json_string_value(v), json_string_length(v));
  json_decref(v);
  return d;
}
