/* spawn.c: the spawn start method: a forked child re-executes the program
 * image, and a constructor in the new image (before main) reads what to
 * run from an inherited memfd and runs the registered target. Also the
 * entry of the forkserver's re-executed server image. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <billiard/process.h>
#include <billiard/task.h>

#include "fault.h"
#include "handle.h"
#include "internal.h"
#include "procinfo.h"
#include "startmethod.h"

extern char **environ;

#define SPAWN_ENV "BL_SPAWN_FD"           /* "<status fd>,<boot memfd>" */
#define FORKSERVER_ENV "BL_FORKSERVER_FD" /* "<socket fd>,<status fd>" */
#define BOOT_MAGIC 0x424c5350u            /* "BLSP" */

/* ---- bootstrap encoding: header, then target, name, fds, ident, arg ---- */

struct boot_hdr {
  uint32_t magic;
  int32_t parent;
  uint32_t tlen, nlen, nfds, ilen;
  uint64_t alen;
};

int bl__boot_encode(const bl__boot_t *b, void **buf, size_t *len) {
  if (b->nfds > BL__BOOT_MAX_FDS || (b->nfds && !b->fds)) return -EINVAL;
  const char *ident = b->ident ? b->ident : "";
  struct boot_hdr h = {BOOT_MAGIC, (int32_t)b->parent, (uint32_t)strlen(b->target),
                       (uint32_t)strlen(b->name), (uint32_t)b->nfds,
                       (uint32_t)strlen(ident), (uint64_t)b->len};
  size_t fl = b->nfds * sizeof(int32_t);
  size_t n = sizeof h + h.tlen + h.nlen + fl + h.ilen + b->len;
  char *p = malloc(n);
  if (!p) return -ENOMEM;
  char *q = p;
  memcpy(q, &h, sizeof h);
  q += sizeof h;
  memcpy(q, b->target, h.tlen);
  q += h.tlen;
  memcpy(q, b->name, h.nlen);
  q += h.nlen;
  for (size_t i = 0; i < b->nfds; i++) {
    int32_t fd = b->fds[i];
    memcpy(q, &fd, sizeof fd);
    q += sizeof fd;
  }
  memcpy(q, ident, h.ilen);
  q += h.ilen;
  if (b->len) memcpy(q, b->arg, b->len);
  *buf = p;
  *len = n;
  return 0;
}

int bl__boot_decode(const void *buf, size_t len, bl__boot_t *b, char **owned) {
  struct boot_hdr h;
  if (len < sizeof h) return BL_EPROTOCOL;
  memcpy(&h, buf, sizeof h);
  size_t fl = (size_t)h.nfds * sizeof(int32_t);
  if (h.magic != BOOT_MAGIC || h.tlen == 0 || h.tlen > BL_TASK_NAME_MAX ||
      h.nlen > 4096 || h.nfds > BL__BOOT_MAX_FDS || h.ilen > 4096 ||
      len - sizeof h < (size_t)h.tlen + h.nlen + fl + h.ilen ||
      h.alen != len - sizeof h - h.tlen - h.nlen - fl - h.ilen)
    return BL_EPROTOCOL;
  /* The wire has no NULs or alignment: copy into fds, target\0name\0
   * ident\0arg (the int array first, where malloc's alignment holds). */
  const char *p = (const char *)buf + sizeof h;
  size_t sl = (size_t)h.tlen + h.nlen + h.ilen + 3;
  char *c = malloc(fl + sl + (h.alen ? h.alen : 1));
  if (!c) return -ENOMEM;
  int *fds = (int *)(void *)c;
  for (size_t i = 0; i < h.nfds; i++) {
    int32_t fd;
    memcpy(&fd, p + h.tlen + h.nlen + i * sizeof fd, sizeof fd);
    fds[i] = fd;
  }
  char *t = c + fl;
  memcpy(t, p, h.tlen);
  t[h.tlen] = 0;
  memcpy(t + h.tlen + 1, p + h.tlen, h.nlen);
  t[h.tlen + 1 + h.nlen] = 0;
  char *id = t + h.tlen + h.nlen + 2;
  memcpy(id, p + h.tlen + h.nlen + fl, h.ilen);
  id[h.ilen] = 0;
  if (h.alen) memcpy(t + sl, p + h.tlen + h.nlen + fl + h.ilen, h.alen);
  b->parent = h.parent;
  b->target = t;
  b->name = t + h.tlen + 1;
  b->ident = id;
  b->arg = t + sl;
  b->len = (size_t)h.alen;
  b->fds = h.nfds ? fds : NULL;
  b->nfds = h.nfds;
  *owned = c;
  return 0;
}

_Noreturn void bl__boot_run(const bl__boot_t *b, int status_w, void *buf) {
  bl_target_fn fn = bl__pool_worker_target;
  int32_t status = 0;
  if (strcmp(b->target, BL__POOL_WORKER_TARGET) != 0)
    status = bl_lookup_target(b->target, &fn);
  (void)bl__write_full(status_w, &status, sizeof status);
  bl__close(&status_w);
  if (status) {
    free(buf);
    bl__child_exit(1);
  }
  bl__procinfo_set(b->name, b->parent);
  bl__process_set_identity(b->ident);
  bl__handles_set(b->fds, b->nfds);
  int code = fn(b->arg, b->len);
  free(buf);
  (void)bl_process_teardown();
  fflush(NULL);
  bl__child_exit(code & 0xff);
}

/* ---- parent side: exec ---- */

_Noreturn void bl__exec_self(const char *marker, int status_w) {
  int32_t err = 0;
  char *exe = bl__context_executable();
  char self[PATH_MAX];
  if (!exe) {
    /* readlink, not execve("/proc/self/exe"): the path is the program's
     * even under tools that run it through a loader. */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
      err = -errno;
      goto fail;
    }
    self[n] = 0;
  }
  size_t ne = 0;
  while (environ && environ[ne]) ne++;
  char **envp = calloc(ne + 2, sizeof *envp);
  if (!envp) {
    err = -ENOMEM;
    goto fail;
  }
  size_t k = 0;
  for (size_t i = 0; i < ne; i++)
    if (strncmp(environ[i], SPAWN_ENV "=", sizeof SPAWN_ENV) != 0 &&
        strncmp(environ[i], FORKSERVER_ENV "=", sizeof FORKSERVER_ENV) != 0)
      envp[k++] = environ[i];
  envp[k++] = (char *)marker;
  char *argv[] = {exe ? exe : self, NULL};
  err = BL_FAULT("spawn/exec/execve", ENOEXEC);
  if (err == 0) {
    bl__coverage_flush(); /* execve replaces the image and its counters */
    execve(argv[0], argv, envp);
    err = -errno;
  }
  free(envp);
fail:
  free(exe);
  (void)bl__write_full(status_w, &err, sizeof err);
  bl__child_exit(1);
}

_Noreturn void bl__spawn_exec(const bl__boot_t *b0, int status_w) {
  int32_t err = 0;
  void *buf = NULL;
  size_t len = 0;
  int mfd = -1;
  char marker[64];
  /* The death pipe (no pidfds: valgrind) travels as one more fd. */
  bl__boot_t bb = *b0, *b = &bb;
  int fds[BL__BOOT_MAX_FDS];
  int dp = bl__child_deathpipe();
  if (dp >= 0 && b0->nfds < BL__BOOT_MAX_FDS) {
    if (b0->nfds) memcpy(fds, b0->fds, b0->nfds * sizeof *fds);
    fds[b0->nfds] = dp;
    bb.fds = fds;
    bb.nfds = b0->nfds + 1;
  }
  if ((err = bl__boot_encode(b, &buf, &len))) goto fail;
  for (size_t i = 0; i < b->nfds; i++)
    if (fcntl(b->fds[i], F_SETFD, 0) != 0) {
      err = -errno;
      goto fail;
    }
  /* A memfd, not a pipe: the argument may exceed a pipe's capacity and
   * nobody would read it before the exec. Not CLOEXEC: it must cross. */
  err = BL_FAULT("spawn/exec/memfd", EMFILE);
  if (err) goto fail;
  mfd = memfd_create("billiard-spawn", 0);
  if (mfd < 0 || (err = bl__write_full(mfd, buf, len)) != 0 ||
      lseek(mfd, 0, SEEK_SET) != 0 || fcntl(status_w, F_SETFD, 0) != 0) {
    if (!err) err = -errno;
    goto fail;
  }
  free(buf);
  snprintf(marker, sizeof marker, SPAWN_ENV "=%d,%d", status_w, mfd);
  bl__exec_self(marker, status_w);
fail:
  free(buf);
  (void)bl__write_full(status_w, &err, sizeof err);
  bl__child_exit(1);
}

/* ---- child side: the constructor in the new image ---- */

/* Read the whole memfd. */
static int read_boot(int fd, char **out, size_t *len) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n ? n : 1);
  if (!buf) return -ENOMEM;
  int rc = n ? bl__read_full(fd, buf, n) : 0;
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = n;
  return 0;
}

static int parse_fds(const char *v, int *a, int *b) {
  char *end;
  long x = strtol(v, &end, 10);
  if (*end != ',' || x < 0 || x > INT_MAX) return -EINVAL;
  long y = strtol(end + 1, &end, 10);
  if (*end || y < 0 || y > INT_MAX) return -EINVAL;
  *a = (int)x;
  *b = (int)y;
  return 0;
}

/* Runs before main() in every program linked with libbilliard; does
 * nothing unless this image was started as a spawn child or forkserver.
 * It must run after the program's own registration constructors: link
 * order puts libbilliard's objects (and so this entry of .init_array)
 * after the program's. */
__attribute__((constructor)) static void spawn_bootstrap(void) {
  const char *v = getenv(SPAWN_ENV);
  const char *fsv = getenv(FORKSERVER_ENV);
  int a = -1, b = -1;
  if (fsv && parse_fds(fsv, &a, &b) == 0) {
    unsetenv(FORKSERVER_ENV);
    fcntl(a, F_SETFD, FD_CLOEXEC);
    fcntl(b, F_SETFD, FD_CLOEXEC);
    bl__forkserver_main(a, b);
  }
  if (!v || parse_fds(v, &a, &b) != 0) return;
  /* Not for grandchildren that exec something else. */
  unsetenv(SPAWN_ENV);
  int status_w = a, mfd = b;
  fcntl(status_w, F_SETFD, FD_CLOEXEC);
  char *raw = NULL;
  size_t len = 0;
  bl__boot_t boot;
  int32_t err = read_boot(mfd, &raw, &len);
  bl__close(&mfd);
  char *buf = NULL;
  if (err == 0) err = bl__boot_decode(raw, len, &boot, &buf);
  free(raw);
  if (err) {
    (void)bl__write_full(status_w, &err, sizeof err);
    bl__child_exit(1);
  }
  /* Passed fds crossed the exec without CLOEXEC: restore it, as a fork
   * child would have them. */
  for (size_t i = 0; i < boot.nfds; i++) fcntl(boot.fds[i], F_SETFD, FD_CLOEXEC);
  bl__boot_run(&boot, status_w, buf);
}
