/* report.c: terminal, JSON, JUnit and TAP reporting. */
#include "report.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char *str(const json_t *rec, const char *k) {
  const char *s = json_string_value(json_object_get(rec, k));
  return s ? s : "";
}

static int outcome_of(const json_t *rec) {
  int o = bc_outcome_parse(str(rec, "outcome"));
  return o < 0 ? BC_CRASH : o;
}

void bc_report_init(bc_report_t *r, size_t total, bool tap, bool verbose) {
  memset(r, 0, sizeof *r);
  r->recs = json_array();
  r->total = total;
  r->tap = tap;
  r->verbose = verbose;
  r->out = stdout;
  r->tty = !tap && isatty(fileno(stdout));
  if (tap) fprintf(r->out, "TAP version 13\n1..%zu\n", total);
}

void bc_report_free(bc_report_t *r) {
  json_decref(r->recs);
  r->recs = NULL;
}

static void indent(FILE *f, const char *prefix, const char *text) {
  const char *p = text;
  while (*p) {
    size_t n = strcspn(p, "\n");
    fprintf(f, "%s%.*s\n", prefix, (int)n, p);
    p += n;
    if (*p) p++;
  }
}

/* "label text", continuation lines of a multi-line text indented. */
static void labelled(FILE *f, const char *prefix, const char *label, const char *text) {
  size_t n = strcspn(text, "\n");
  fprintf(f, "%s%s %.*s\n", prefix, label, (int)n, text);
  if (text[n]) {
    char *pp = bc_asprintf("%s    ", prefix);
    indent(f, pp, text + n + 1);
    free(pp);
  }
}

char *bc_report_column(const json_t *rec) {
  const char *m = str(rec, "start_method");
  return *m ? bc_asprintf("%s/%s", str(rec, "port"), m) : bc_xstrdup(str(rec, "port"));
}

void bc_report_add(bc_report_t *r, json_t *rec) {
  json_array_append(r->recs, rec);
  r->done++;
  int o = outcome_of(rec);
  r->counts[o]++;
  double ms = (double)json_integer_value(json_object_get(rec, "duration_ms"));
  int rep = (int)json_integer_value(json_object_get(rec, "repeat"));
  char *name = rep ? bc_asprintf("%s #%d", str(rec, "scenario"), rep)
                   : bc_xstrdup(str(rec, "scenario"));
  char *col = bc_report_column(rec);
  FILE *f = r->out;
  if (r->tty) fputs("\r\033[K", f); /* clear the counter line */
  if (r->tap) {
    const char *ok = bc_outcome_bad(o) ? "not ok" : "ok";
    fprintf(f, "%s %zu - %s %s", ok, r->done, col, name);
    if (o == BC_SKIP) fprintf(f, " # SKIP %s", str(rec, "message"));
    else if (o == BC_XFAIL) fprintf(f, " # xfail: %s", str(rec, "known_failure"));
    else if (o != BC_PASS) fprintf(f, " # %s: %s", bc_outcome_name(o), str(rec, "message"));
    fputc('\n', f);
  } else {
    char up[16];
    snprintf(up, sizeof up, "%s", bc_outcome_name(o));
    for (char *c = up; *c; c++) *c = (char)(*c - 32 * (*c >= 'a' && *c <= 'z'));
    fprintf(f, "[%zu/%zu] %-7s %-22s %s (%.0f ms)", r->done, r->total, up, col, name, ms);
    if (o == BC_SKIP || o == BC_XFAIL)
      fprintf(f, ": %s", o == BC_SKIP ? str(rec, "message") : str(rec, "known_failure"));
    fputc('\n', f);
  }
  if (bc_outcome_bad(o) || (r->verbose && o == BC_XFAIL)) {
    const char *p = r->tap ? "#   " : "    ";
    if (*str(rec, "step"))
      fprintf(f, "%sat %s (%s)\n", p, str(rec, "step"), str(rec, "op"));
    char *lab = bc_asprintf("%s:", bc_outcome_name(o));
    labelled(f, p, lab, str(rec, "message"));
    free(lab);
    if (*str(rec, "expected")) labelled(f, p, "expected:", str(rec, "expected"));
    if (*str(rec, "got")) labelled(f, p, "got:     ", str(rec, "got"));
    if (*str(rec, "audit")) fprintf(f, "%salso (leak audit): %s\n", p, str(rec, "audit"));
    if (*str(rec, "stderr")) {
      fprintf(f, "%sdriver stderr (tail):\n", p);
      char *pp = bc_asprintf("%s  | ", p);
      indent(f, pp, str(rec, "stderr"));
      free(pp);
    }
  }
  free(name);
  free(col);
  if (r->tty && r->done < r->total)
    fprintf(f, "[%zu/%zu] %u bad so far...", r->done, r->total,
            r->counts[BC_FAIL] + r->counts[BC_XPASS] + r->counts[BC_TIMEOUT] + r->counts[BC_CRASH]);
  fflush(f);
}

int bc_report_summary(bc_report_t *r, uint64_t seed) {
  unsigned *c = r->counts;
  unsigned passed = c[BC_PASS] + c[BC_XFAIL];
  unsigned failed = c[BC_FAIL] + c[BC_XPASS] + c[BC_TIMEOUT] + c[BC_CRASH];
  const char *p = r->tap ? "# " : "";
  fprintf(r->out,
          "%spass %u, xfail %u, fail %u, xpass %u, timeout %u, crash %u, skip %u "
          "(protocol %d, seed %llu)\n",
          p, c[BC_PASS], c[BC_XFAIL], c[BC_FAIL], c[BC_XPASS], c[BC_TIMEOUT], c[BC_CRASH],
          c[BC_SKIP], BC_PROTOCOL, (unsigned long long)seed);
  fprintf(r->out, "%s%u passed, %u failed, %u skipped\n", p, passed, failed, c[BC_SKIP]);
  fflush(r->out);
  return failed ? 1 : 0;
}

static int cmp_rec(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  int c = strcmp(str(x, "scenario"), str(y, "scenario"));
  if (!c) c = strcmp(str(x, "port"), str(y, "port"));
  if (!c) c = strcmp(str(x, "start_method"), str(y, "start_method"));
  if (!c)
    c = (int)(json_integer_value(json_object_get(x, "repeat")) -
              json_integer_value(json_object_get(y, "repeat")));
  return c;
}

void bc_report_sort(bc_report_t *r) {
  size_t n = json_array_size(r->recs);
  json_t **v = bc_xcalloc(n, sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(r->recs, i));
  qsort(v, n, sizeof *v, cmp_rec);
  json_array_clear(r->recs);
  for (size_t i = 0; i < n; i++) json_array_append_new(r->recs, v[i]);
  free(v);
}

static FILE *open_out(const char *path) {
  FILE *f = fopen(path, "we");
  if (!f) fprintf(stderr, "billiard-conform: cannot write %s: %s\n", path, strerror(errno));
  return f;
}

int bc_report_json(const bc_report_t *r, const char *path) {
  FILE *f = open_out(path);
  if (!f) return -1;
  /* A JSON array with one record per line, without the timelines. */
  fputs("[\n", f);
  size_t i;
  json_t *rec;
  json_array_foreach(r->recs, i, rec) {
    json_t *c = json_copy(rec);
    json_object_del(c, "timeline");
    char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(f, "%s%s\n", s, i + 1 < json_array_size(r->recs) ? "," : "");
    free(s);
    json_decref(c);
  }
  fputs("]\n", f);
  return fclose(f) == 0 ? 0 : -1;
}

int bc_report_junit(const bc_report_t *r, const char *path) {
  FILE *f = open_out(path);
  if (!f) return -1;
  unsigned fails = 0, skips = 0, errors = 0;
  double total = 0;
  size_t i;
  json_t *rec;
  json_array_foreach(r->recs, i, rec) {
    int o = outcome_of(rec);
    fails += o == BC_FAIL || o == BC_XPASS;
    errors += o == BC_TIMEOUT || o == BC_CRASH;
    skips += o == BC_SKIP;
    total += (double)json_integer_value(json_object_get(rec, "duration_ms")) / 1000;
  }
  bc_buf_t b = {0};
  bc_buf_printf(&b,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"billiard-conform\" "
                "tests=\"%zu\" failures=\"%u\" errors=\"%u\" skipped=\"%u\" time=\"%.3f\">\n"
                "<testsuite name=\"conformance (protocol %d)\" tests=\"%zu\" failures=\"%u\" "
                "errors=\"%u\" skipped=\"%u\" time=\"%.3f\">\n",
                json_array_size(r->recs), fails, errors, skips, total, BC_PROTOCOL,
                json_array_size(r->recs), fails, errors, skips, total);
  json_array_foreach(r->recs, i, rec) {
    int o = outcome_of(rec);
    int rep = (int)json_integer_value(json_object_get(rec, "repeat"));
    bc_buf_puts(&b, "<testcase classname=\"");
    bc_buf_html(&b, str(rec, "port"));
    bc_buf_puts(&b, "\" name=\"");
    bc_buf_html(&b, str(rec, "scenario"));
    if (rep) bc_buf_printf(&b, " #%d", rep);
    bc_buf_printf(&b, "\" time=\"%.3f\">",
                  (double)json_integer_value(json_object_get(rec, "duration_ms")) / 1000);
    const char *tag = o == BC_FAIL || o == BC_XPASS           ? "failure"
                      : o == BC_TIMEOUT || o == BC_CRASH      ? "error"
                      : o == BC_SKIP                          ? "skipped"
                                                              : NULL;
    if (tag) {
      bc_buf_printf(&b, "<%s type=\"%s\" message=\"", tag, bc_outcome_name(o));
      bc_buf_html(&b, str(rec, "message"));
      bc_buf_puts(&b, "\">");
      if (*str(rec, "step")) {
        bc_buf_puts(&b, "at ");
        bc_buf_html(&b, str(rec, "step"));
        bc_buf_puts(&b, "\n");
      }
      if (*str(rec, "expected")) {
        bc_buf_puts(&b, "expected: ");
        bc_buf_html(&b, str(rec, "expected"));
        bc_buf_puts(&b, "\ngot: ");
        bc_buf_html(&b, str(rec, "got"));
      }
      bc_buf_printf(&b, "</%s>", tag);
    }
    if (*str(rec, "stderr")) {
      bc_buf_puts(&b, "<system-err>");
      bc_buf_html(&b, str(rec, "stderr"));
      bc_buf_puts(&b, "</system-err>");
    }
    bc_buf_puts(&b, "</testcase>\n");
  }
  bc_buf_puts(&b, "</testsuite>\n</testsuites>\n");
  fputs(b.s, f);
  bc_buf_free(&b);
  return fclose(f) == 0 ? 0 : -1;
}
