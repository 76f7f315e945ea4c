/* fuzz_scenario.c: the scenario loader (harness/src/scenario.c) on any bytes.
 *
 * The loader reads a path, so the input goes into a memfd read back through
 * /proc/self/fd. Any input must give a scenario or diagnostics, never a
 * crash, leak or undefined behaviour. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "scenario.h"

#ifdef BC_FUZZ_SKIP_EMPTY_STREAM
#include <yaml.h>
/* bc_node_parse loops forever on a YAML stream with no document (an empty
 * or comment-only file; reported, regression input fuzz/corpus/scenario/
 * hang-empty-stream). ci/fuzz skips such inputs so fuzzing can get past
 * them; the replay test (suite fuzz) still runs them. */
static int empty_stream(const uint8_t *data, size_t size) {
  yaml_parser_t p;
  yaml_event_t ev;
  int types[2] = {-1, -1};
  if (!yaml_parser_initialize(&p)) return 0;
  yaml_parser_set_input_string(&p, data, size);
  for (int i = 0; i < 2; i++) {
    if (!yaml_parser_parse(&p, &ev)) break;
    types[i] = ev.type;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return types[0] == YAML_STREAM_START_EVENT && types[1] == YAML_STREAM_END_EVENT;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bc_features_t ft;
  static int loaded;
#ifdef BC_FUZZ_SKIP_EMPTY_STREAM
  if (empty_stream(data, size)) return 0;
#endif
  if (!loaded) {
    bc_diag_t fd_diag = {.path = "features"};
    char *path = getenv("BC_FUZZ_FEATURES");
    if (path) bc_features_load(&ft, path, &fd_diag);
    bc_strv_free(&fd_diag.errors);
    loaded = 1;
  }
  int fd = memfd_create("fuzz-scenario", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size && write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  bc_diag_t d = {.path = path};
  bc_scenario_t *sc = bc_scenario_load(path, ft.ok ? &ft : NULL, &d);
  bc_scenario_free(&sc);
  bc_strv_free(&d.errors);
  close(fd);
  return 0;
}
