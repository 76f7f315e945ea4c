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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bc_features_t ft;
  static int loaded;
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
