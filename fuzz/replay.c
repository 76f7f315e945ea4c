/* replay.c: main() for fuzz targets built without libFuzzer.
 *
 * Runs each file named on the command line (directories: every file in
 * them, sorted) once through LLVMFuzzerTestOneInput. With ASan+UBSan this
 * is the deterministic corpus replay that ./ci/test runs (suite fuzz); the
 * same target source links with -fsanitize=fuzzer for real fuzzing. */
#include <dirent.h>
#include <signal.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A hang is a finding too: name the input and fail fast instead of
 * letting meson's timeout kill the whole replay. */
static const char *current;
static void on_alarm(int sig) {
  static const char msg[] = "replay: input hangs (> 10 s): ";
  (void)sig;
  (void)!write(2, msg, sizeof msg - 1);
  (void)!write(2, current, strlen(current));
  (void)!write(2, "\n", 1);
  _exit(1);
}

static int run_file(const char *path) {
  current = path;
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  uint8_t chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n > cap) {
      cap = (len + n) * 2;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) return 1;
      buf = nb;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  /* An exact-size copy, so ASan sees any read past the input's end. */
  uint8_t *exact = malloc(len ? len : 1);
  if (len) memcpy(exact, buf, len);
  free(buf);
  signal(SIGALRM, on_alarm);
  alarm(10);
  LLVMFuzzerTestOneInput(exact, len);
  alarm(0);
  free(exact);
  return 0;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  int files = 0, bad = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      bad |= run_file(argv[i]);
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      names = realloc(names, (n + 1) * sizeof *names);
      size_t l = strlen(argv[i]) + strlen(e->d_name) + 2;
      names[n] = malloc(l);
      snprintf(names[n++], l, "%s/%s", argv[i], e->d_name);
    }
    if (d) closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (size_t k = 0; k < n; k++) {
      bad |= run_file(names[k]);
      files++;
      free(names[k]);
    }
    free(names);
  }
  printf("replayed %d inputs%s\n", files, bad ? " (some unreadable)" : "");
  return bad || files == 0;
}
