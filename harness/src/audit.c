/* audit.c: process and /dev/shm leak audit. */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void list_shm(bc_strv_t *out) {
  DIR *d = opendir("/dev/shm");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) bc_strv_push(out, e->d_name);
  closedir(d);
  bc_strv_sort(out);
}

void bc_audit_begin(bc_audit_t *a) {
  memset(a, 0, sizeof *a);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (getenv("BC_SHARED_SHM") == NULL && unshare(CLONE_NEWNS) == 0) {
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0 &&
        mount("bc-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") == 0)
      a->private_shm = true;
  }
  if (!a->private_shm) list_shm(&a->shm_before);
}

void bc_audit_end(bc_audit_t *a) { bc_strv_free(&a->shm_before); }

/* Field 5 of /proc/PID/stat is pgrp, field 3 the state; comm may hold spaces. */
static int read_stat2(pid_t pid, char *state, pid_t *ppid, pid_t *pgrp, char *comm,
                      size_t commlen);

static int read_stat(pid_t pid, char *state, pid_t *pgrp, char *comm, size_t commlen) {
  pid_t pp;
  return read_stat2(pid, state, &pp, pgrp, comm, commlen);
}

static int read_stat2(pid_t pid, char *state, pid_t *ppid, pid_t *pgrp, char *comm,
                      size_t commlen) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *l = strchr(buf, '('), *r = strrchr(buf, ')');
  if (!l || !r) return -1;
  if (comm) snprintf(comm, commlen, "%.*s", (int)(r - l - 1), l + 1);
  int pg, pp;
  if (sscanf(r + 1, " %c %d %d", state, &pp, &pg) != 3) return -1;
  *pgrp = pg;
  *ppid = pp;
  return 0;
}

pid_t bc_pgid_of(pid_t pid) {
  char st;
  pid_t pg;
  return read_stat(pid, &st, &pg, NULL, 0) == 0 ? pg : -1;
}

void bc_audit_group(pid_t pgid, bc_strv_t *out) {
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    char st, comm[64];
    pid_t pg, pp;
    /* Our own children count too: as subreaper we inherit orphans, also
     * those that left the driver's group (setsid, setpgid). */
    if (read_stat2((pid_t)pid, &st, &pp, &pg, comm, sizeof comm) == 0 &&
        (pg == pgid || pp == getpid()) && st != 'Z' && st != 'X')
      bc_strv_push_owned(out, bc_asprintf("%ld (%s)", pid, comm));
  }
  closedir(d);
}

void bc_audit_reap(void) {
  int st;
  while (waitpid(-1, &st, WNOHANG) > 0) {
  }
}

/* Whether any live process maps or holds open /dev/shm/name. */
static bool shm_in_use(const char *name) {
  char *needle = bc_asprintf("/dev/shm/%s", name);
  bool used = false;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && !used && (e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    size_t len;
    char *maps = bc_read_file(path, &len);
    if (maps && strstr(maps, needle)) used = true;
    free(maps);
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    DIR *fd = used ? NULL : opendir(path);
    struct dirent *f;
    while (fd && !used && (f = readdir(fd))) {
      char lp[PATH_MAX], tgt[PATH_MAX];
      snprintf(lp, sizeof lp, "/proc/%ld/fd/%s", pid, f->d_name);
      ssize_t n = readlink(lp, tgt, sizeof tgt - 1);
      if (n > 0) {
        tgt[n] = '\0';
        if (strncmp(tgt, needle, strlen(needle)) == 0) used = true;
      }
    }
    if (fd) closedir(fd);
  }
  if (d) closedir(d);
  free(needle);
  return used;
}

/* libfaketime's own bookkeeping (the harness preloads it), not the port's. */
static bool harness_owned(const char *name) {
  return !strncmp(name, "faketime_shm_", 13) || !strncmp(name, "sem.faketime_sem_", 17);
}

void bc_audit_shm(const bc_audit_t *a, bc_strv_t *out) {
  bc_strv_t now = {0};
  list_shm(&now);
  for (size_t i = 0; i < now.n; i++)
    if (!harness_owned(now.v[i]) &&
        (a->private_shm || (!bc_strv_has(&a->shm_before, now.v[i]) && !shm_in_use(now.v[i]))))
      bc_strv_push(out, now.v[i]);
  bc_strv_free(&now);
}

int bc_audit_fd_count(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}
