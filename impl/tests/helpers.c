/* helpers.c: see helpers.h. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

pid_t t_fork(void) { return bl__fork(SIGKILL); }

_Noreturn void t_exit(int code) { bl__child_exit(code); }

int t_wait_exit(pid_t pid) {
  int st;
  pid_t r;
  r = bl__waitpid(pid, &st, 0);
  if (r != pid) return -1000;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return -1000;
}

int t_under_valgrind(void) {
  const char *v = getenv("BL_UNDER_VALGRIND");
  return v && *v == '1';
}

int t_count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

uint64_t t_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
