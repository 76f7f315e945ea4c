/* util.h: small helpers shared by billiard-conform (allocation, strings,
 * durations, time). Allocation failure aborts: the harness is a test tool
 * and has nothing useful to do without memory. */
#ifndef BC_UTIL_H
#define BC_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *bc_xmalloc(size_t n);
void *bc_xcalloc(size_t n, size_t m);
void *bc_xrealloc(void *p, size_t n);
char *bc_xstrdup(const char *s);
char *bc_xstrndup(const char *s, size_t n);
char *bc_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *bc_vasprintf(const char *fmt, va_list ap);

/* A growable string. */
typedef struct bc_buf {
  char *s;
  size_t len, cap;
} bc_buf_t;
void bc_buf_add(bc_buf_t *b, const char *data, size_t n);
void bc_buf_puts(bc_buf_t *b, const char *s);
void bc_buf_printf(bc_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bc_buf_html(bc_buf_t *b, const char *s); /* HTML/XML-escaped */
char *bc_buf_steal(bc_buf_t *b);              /* NUL-terminated, never NULL */
void bc_buf_free(bc_buf_t *b);

/* A list of owned strings. */
typedef struct bc_strv {
  char **v;
  size_t n, cap;
} bc_strv_t;
void bc_strv_push(bc_strv_t *l, const char *s);
void bc_strv_push_owned(bc_strv_t *l, char *s);
bool bc_strv_has(const bc_strv_t *l, const char *s);
void bc_strv_sort(bc_strv_t *l);
void bc_strv_free(bc_strv_t *l);

/* "250ms", "1.5s", "2m", "1h" or a bare number of seconds. */
int bc_parse_duration(const char *s, double *seconds);
bool bc_is_kebab_yaml(const char *basename);
bool bc_has_glob(const char *s);
double bc_now_ms(void);           /* CLOCK_MONOTONIC in milliseconds */
double bc_timeout_multiplier(void); /* BL_TEST_TIMEOUT_MULTIPLIER, default 1 */
uint64_t bc_splitmix64(uint64_t *state);
uint64_t bc_hash_str(uint64_t h, const char *s);
char *bc_read_file(const char *path, size_t *len); /* NULL + errno on error */

#endif
