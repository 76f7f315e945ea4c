/* html.c: the --report DIR HTML report: counts, a port x scenario matrix,
 * and per run a plain inline SVG timeline (workers, jobs, faults, events).
 * No JavaScript. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "util.h"

static const char *str(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static double num(const json_t *o, const char *k) {
  return json_number_value(json_object_get(o, k));
}

static const char *color(const char *outcome) {
  if (!strcmp(outcome, "pass")) return "#2e7d32";
  if (!strcmp(outcome, "xfail")) return "#689f38";
  if (!strcmp(outcome, "skip")) return "#9e9e9e";
  if (!strcmp(outcome, "timeout")) return "#ef6c00";
  return "#c62828";
}

/* Lane index of key in lanes (added if new). */
static size_t lane(bc_strv_t *lanes, const char *key) {
  for (size_t i = 0; i < lanes->n; i++)
    if (!strcmp(lanes->v[i], key)) return i;
  bc_strv_push(lanes, key);
  return lanes->n - 1;
}

static void svg(bc_buf_t *b, const json_t *tl) {
  double end = 1;
  size_t i;
  json_t *e;
  json_array_foreach(tl, i, e) end = fmax(end, num(e, "t"));
  /* Lanes: "pid N" for workers, "job X" for jobs, then one for the rest. */
  bc_strv_t lanes = {0};
  json_array_foreach(tl, i, e) {
    const char *ev = str(e, "event");
    json_t *pid = json_object_get(e, "pid");
    if ((!strcmp(ev, "worker.up") || !strcmp(ev, "worker.down")) && json_is_integer(pid)) {
      char *k = bc_asprintf("pid %lld", json_integer_value(pid));
      lane(&lanes, k);
      free(k);
    }
  }
  size_t nworkers = lanes.n;
  json_array_foreach(tl, i, e) {
    const char *ev = str(e, "event");
    if (!strncmp(ev, "job.", 4) && *str(e, "job")) {
      char *k = bc_asprintf("job %s", str(e, "job"));
      lane(&lanes, k);
      free(k);
    }
  }
  size_t other = lane(&lanes, "ops / events");
  const double x0 = 170, w = 760, lh = 16;
  double h = 30 + lh * (double)lanes.n;
#define X(t) (x0 + (t) / end * w)
#define Y(l) (20 + lh * (double)(l))
  bc_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                   "font-family=\"monospace\" font-size=\"10\">\n", x0 + w + 10, h);
  for (size_t l = 0; l < lanes.n; l++) {
    bc_buf_printf(b, "<text x=\"2\" y=\"%.1f\">", Y(l) + 11);
    bc_buf_html(b, lanes.v[l]);
    bc_buf_printf(b, "</text><line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" "
                     "stroke=\"#eee\"/>\n", x0, x0 + w, Y(l) + lh, Y(l) + lh);
  }
  bc_buf_printf(b, "<text x=\"%.0f\" y=\"12\">0</text><text x=\"%.0f\" y=\"12\" "
                   "text-anchor=\"end\">%.0f ms</text>\n", x0, x0 + w, end);
  /* Worker bars: up..down (or the end). */
  for (size_t l = 0; l < nworkers; l++) {
    double up = -1, down = end;
    bool died = false;
    json_array_foreach(tl, i, e) {
      json_t *pid = json_object_get(e, "pid");
      if (!json_is_integer(pid)) continue;
      char *k = bc_asprintf("pid %lld", json_integer_value(pid));
      bool me = !strcmp(k, lanes.v[l]);
      free(k);
      if (!me) continue;
      if (!strcmp(str(e, "event"), "worker.up") && up < 0) up = num(e, "t");
      if (!strcmp(str(e, "event"), "worker.down")) {
        down = num(e, "t");
        died = true;
      }
    }
    if (up < 0) up = 0;
    bc_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\">"
                     "<title>%s up %.1f ms%s</title></rect>\n",
                  X(up), Y(l) + 3, fmax(1, X(down) - X(up)), lh - 6, died ? "#90a4ae" : "#64b5f6",
                  lanes.v[l], up, died ? ", down" : "");
  }
  /* Job bars: accepted (or first event) .. ready. */
  for (size_t l = nworkers; l < other; l++) {
    double a = -1, r = -1;
    bool ok = true;
    json_array_foreach(tl, i, e) {
      char *k = bc_asprintf("job %s", str(e, "job"));
      bool me = !strcmp(k, lanes.v[l]);
      free(k);
      if (!me) continue;
      if (a < 0) a = num(e, "t");
      if (!strcmp(str(e, "event"), "job.accepted")) a = num(e, "t");
      if (!strcmp(str(e, "event"), "job.ready")) {
        r = num(e, "t");
        ok = json_is_true(json_object_get(e, "ok"));
      }
    }
    bc_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\">"
                     "<title>", X(a), Y(l) + 3, fmax(2, X(r < 0 ? end : r) - X(a)), lh - 6,
                  r < 0 ? "#ffb74d" : ok ? "#81c784" : "#e57373");
    bc_buf_html(b, lanes.v[l]);
    bc_buf_printf(b, r < 0 ? " never ready</title></rect>\n" : " %.1f..%.1f ms</title></rect>\n",
                  a, r);
  }
  /* Faults and marks across all lanes; commands and other events as ticks. */
  json_array_foreach(tl, i, e) {
    const char *kind = str(e, "kind");
    double t = num(e, "t");
    if (!strcmp(kind, "fault") || !strcmp(kind, "mark")) {
      bool fault = !strcmp(kind, "fault");
      bc_buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"16\" y2=\"%.0f\" stroke=\"%s\" "
                       "stroke-dasharray=\"%s\"><title>", X(t), X(t), h - 8,
                    fault ? "#d32f2f" : "#1565c0", fault ? "none" : "3,3");
      if (fault) {
        bc_buf_html(b, str(e, "what"));
        bc_buf_printf(b, " %s pid %lld", str(e, "signal"), json_integer_value(json_object_get(e, "pid")));
      } else {
        bc_buf_puts(b, "mark ");
        bc_buf_html(b, str(e, "name"));
      }
      bc_buf_printf(b, " at %.1f ms</title></line>\n", t);
    } else if (!strcmp(kind, "cmd") ||
               (!strcmp(kind, "event") && strncmp(str(e, "event"), "job.", 4) &&
                strncmp(str(e, "event"), "worker.", 7))) {
      bool cmd = !strcmp(kind, "cmd");
      bc_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"2\" height=\"%.0f\" fill=\"%s\"><title>",
                    X(t), Y(other) + 2, lh - 4, cmd ? "#555" : "#8e24aa");
      bc_buf_html(b, cmd ? str(e, "op") : str(e, "event"));
      bc_buf_printf(b, " at %.1f ms</title></rect>\n", t);
    }
  }
  bc_buf_puts(b, "</svg>\n");
#undef X
#undef Y
  bc_strv_free(&lanes);
}

int bc_report_html(const bc_report_t *r, const char *dir, uint64_t seed) {
  if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
    fprintf(stderr, "billiard-conform: cannot create %s: %s\n", dir, strerror(errno));
    return -1;
  }
  bc_buf_t b = {0};
  const unsigned *c = r->counts;
  bc_buf_printf(&b,
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>billiard-conform "
                "report</title>\n<style>body{font-family:sans-serif;margin:1em}td,th{padding:2px "
                "6px;border:1px solid #ccc}table{border-collapse:collapse}pre{background:#f6f6f6;"
                "padding:4px;overflow:auto}.o{color:#fff;font-weight:bold}</style></head><body>\n"
                "<h1>billiard-conform report</h1>\n<p>protocol %d, seed %llu</p>\n<table><tr>"
                "<th>pass</th><th>xfail</th><th>fail</th><th>xpass</th><th>timeout</th>"
                "<th>crash</th><th>skip</th></tr><tr><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
                "<td>%u</td><td>%u</td><td>%u</td></tr></table>\n<p>%u passed, %u failed, "
                "%u skipped</p>\n",
                BC_PROTOCOL, (unsigned long long)seed, c[BC_PASS], c[BC_XFAIL], c[BC_FAIL],
                c[BC_XPASS], c[BC_TIMEOUT], c[BC_CRASH], c[BC_SKIP], c[BC_PASS] + c[BC_XFAIL],
                c[BC_FAIL] + c[BC_XPASS] + c[BC_TIMEOUT] + c[BC_CRASH], c[BC_SKIP]);
  bc_strv_t ports = {0}, ids = {0};
  size_t i;
  json_t *rec;
  json_array_foreach(r->recs, i, rec) {
    char *col = bc_report_column(rec); /* port/start_method */
    if (!bc_strv_has(&ports, col)) bc_strv_push(&ports, col);
    free(col);
    if (!bc_strv_has(&ids, str(rec, "scenario"))) bc_strv_push(&ids, str(rec, "scenario"));
  }
  if (ports.n > 1) {
    bc_buf_puts(&b, "<h2>Port &times; scenario</h2>\n<table><tr><th>scenario</th>");
    for (size_t p = 0; p < ports.n; p++) {
      bc_buf_puts(&b, "<th>");
      bc_buf_html(&b, ports.v[p]);
      bc_buf_puts(&b, "</th>");
    }
    bc_buf_puts(&b, "</tr>\n");
    for (size_t s = 0; s < ids.n; s++) {
      bc_buf_puts(&b, "<tr><td>");
      bc_buf_html(&b, ids.v[s]);
      bc_buf_puts(&b, "</td>");
      for (size_t p = 0; p < ports.n; p++) {
        const char *o = NULL;
        json_array_foreach(r->recs, i, rec) {
          char *col = bc_report_column(rec);
          bool other = strcmp(str(rec, "scenario"), ids.v[s]) || strcmp(col, ports.v[p]);
          free(col);
          if (other) continue;
          /* With --repeat the worst outcome wins the cell. */
          if (!o || bc_outcome_bad((bc_outcome_t)bc_outcome_parse(str(rec, "outcome"))))
            o = str(rec, "outcome");
        }
        if (o) bc_buf_printf(&b, "<td class=\"o\" style=\"background:%s\">%s</td>", color(o), o);
        else bc_buf_puts(&b, "<td></td>");
      }
      bc_buf_puts(&b, "</tr>\n");
    }
    bc_buf_puts(&b, "</table>\n");
  }
  bc_buf_puts(&b, "<h2>Runs</h2>\n");
  json_array_foreach(r->recs, i, rec) {
    const char *o = str(rec, "outcome");
    bc_buf_printf(&b, "<h3><span class=\"o\" style=\"background:%s;padding:0 4px\">%s</span> ",
                  color(o), o);
    char *col = bc_report_column(rec);
    bc_buf_html(&b, col);
    free(col);
    bc_buf_puts(&b, " &mdash; ");
    bc_buf_html(&b, str(rec, "scenario"));
    bc_buf_printf(&b, " #%lld (%lld ms)</h3>\n", json_integer_value(json_object_get(rec, "repeat")),
                  json_integer_value(json_object_get(rec, "duration_ms")));
    const char *keys[] = {"impl", "message", "known_failure", "step", "expected", "got", "audit", "fds"};
    bc_buf_puts(&b, "<table>");
    for (size_t k = 0; k < BC_ARRAY_SIZE(keys); k++)
      if (*str(rec, keys[k])) {
        bc_buf_printf(&b, "<tr><th>%s</th><td>", keys[k]);
        bc_buf_html(&b, str(rec, keys[k]));
        bc_buf_puts(&b, "</td></tr>");
      }
    bc_buf_puts(&b, "</table>\n");
    if (*str(rec, "stderr")) {
      bc_buf_puts(&b, "<pre>");
      bc_buf_html(&b, str(rec, "stderr"));
      bc_buf_puts(&b, "</pre>\n");
    }
    json_t *tl = json_object_get(rec, "timeline");
    if (json_array_size(tl)) svg(&b, tl);
  }
  bc_buf_puts(&b, "</body></html>\n");
  bc_strv_free(&ports);
  bc_strv_free(&ids);
  char *path = bc_asprintf("%s/index.html", dir);
  FILE *f = fopen(path, "we");
  int rc = 0;
  if (!f || fputs(b.s, f) < 0) {
    fprintf(stderr, "billiard-conform: cannot write %s: %s\n", path, strerror(errno));
    rc = -1;
  }
  if (f && fclose(f)) rc = -1;
  free(path);
  bc_buf_free(&b);
  return rc;
}
