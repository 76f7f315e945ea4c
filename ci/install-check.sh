#!/bin/sh
# install-check.sh BUILD_DIR: install BUILD_DIR into a temporary DESTDIR,
# build a small Process + Pipe program against the installed headers and
# shared library with pkg-config (sysroot pointing into the temp dir), run
# it with LD_LIBRARY_PATH and check its output. Nothing is written outside
# the temp dir except meson's own install log inside BUILD_DIR.
# Exit 0 pass, 1 fail, 77 skip (no pkg-config or C compiler).
set -u
build=${1:?usage: install-check.sh BUILD_DIR}
build=$(cd "$build" && pwd) || exit 1
cc=${CC:-cc}
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: no pkg-config"; exit 77; }
command -v "$cc" >/dev/null 2>&1 || { echo "SKIP: no C compiler"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bl-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
root=$tmp/root
# A coverage build's library would write .gcda files into BUILD_DIR.
GCOV_PREFIX=$tmp/gcov
export GCOV_PREFIX
fail() { echo "FAIL: $*"; exit 1; }

# --no-rebuild: meson test has already built everything; a rebuild here
# would race the other tests.
meson install -C "$build" --no-rebuild --quiet --destdir "$root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "meson install (did you compile $build first?)"; }

pc=$(find "$root" -name libbilliard.pc | head -n 1)
[ -n "$pc" ] || fail "libbilliard.pc not installed"
for h in billiard.h process.h connection.h; do
  [ -n "$(find "$root" -path "*/include/billiard/$h")" ] || fail "header $h not installed"
done

# The temp tree first (system .pc files stay visible for Requires.private,
# e.g. libfiu in a fault-injection build); the sysroot maps the installed
# prefix into it.
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$root
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
cflags=$(pkg-config --cflags libbilliard) || fail "pkg-config --cflags"
# A sanitizer or coverage build's library needs the same runtime in the
# program that links it.
extra=$(meson introspect --buildoptions "$build" 2>/dev/null | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
f = []
if o.get("b_sanitize", "none") != "none": f.append("-fsanitize=" + o["b_sanitize"])
if o.get("b_coverage"): f.append("--coverage")
print(" ".join(f))') || extra=""
cflags="$cflags $extra"
libs=$(pkg-config --libs libbilliard) || fail "pkg-config --libs"
case "$cflags $libs" in *"$root"*) ;; *) fail "pkg-config flags do not point into DESTDIR: $cflags $libs" ;; esac
libdir=$(pkg-config --variable=libdir libbilliard)
libdir=$root${libdir#"$root"}
[ -e "$libdir/libbilliard.so" ] || fail "no libbilliard.so in $libdir"

cat >"$tmp/example.c" <<'C'
#include <billiard/billiard.h>
#include <stdio.h>
#include <stdlib.h>

static bl_conn_t *rx, *tx; /* Pipe(duplex=False): reader, writer */

static int greet(const void *arg, size_t len) { /* runs in the child */
  return bl_conn_send_bytes(tx, arg, len, 0, BL_CONN_REST) == 0 ? 0 : 1;
}

int main(void) {
  bl_process_t *p;
  void *msg;
  size_t len;
  int code = -1;
  bl_register_target("greet", greet);
  if (bl_pipe(&rx, &tx, 0) || bl_process_new(&p, "greet", "hello", 5, NULL) ||
      bl_process_start(p) || bl_conn_recv_bytes(rx, &msg, &len, 0))
    return 1;
  bl_process_join(p, -1);
  bl_process_exitcode(p, &code);
  printf("%s sent '%.*s', exit code %d\n", bl_process_name(p), (int)len, (char *)msg, code);
  free(msg);
  bl_process_free(&p);
  bl_conn_free(&rx);
  bl_conn_free(&tx);
  return 0;
}
C
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/example" "$tmp/example.c" $cflags $libs ||
  fail "example does not compile against the installed library"

out=$(LD_LIBRARY_PATH=$libdir "$tmp/example" 2>&1) || fail "example exited with $?: $out"
want="Process-1 sent 'hello', exit code 0"
[ "$out" = "$want" ] || fail "example printed '$out', expected '$want'"
# It must have run against the installed copy, not the build tree's.
LD_LIBRARY_PATH=$libdir ldd "$tmp/example" | grep -q "$libdir/libbilliard.so" ||
  fail "example did not load the installed libbilliard.so"
# Daemon teardown at exit(): the daemon reports SIGTERM (a PDEATHSIG
# SIGKILL alone would leave no line), so atexit ran bl_process_teardown.
cat >"$tmp/atexit.c" <<'C'
#include <billiard/billiard.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static bl_conn_t *rx, *tx;

static void on_term(int sig) {
  static const char m[] = "daemon: SIGTERM at parent exit\n";
  (void)sig;
  (void)!write(1, m, sizeof m - 1);
  _exit(0);
}

static int daemon_main(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  signal(SIGTERM, on_term);
  bl_conn_send_bytes(tx, "up", 2, 0, BL_CONN_REST);
  for (;;) pause();
  return 0;
}

int main(void) {
  bl_process_options_t o;
  bl_process_t *p;
  void *m;
  size_t n;
  bl_process_options_init(&o);
  o.daemon = 1;
  bl_register_target("daemon", daemon_main);
  if (bl_pipe(&rx, &tx, 0) || bl_process_new(&p, "daemon", NULL, 0, &o) ||
      bl_process_start(p) || bl_conn_recv_bytes(rx, &m, &n, 0))
    return 1;
  printf("parent: daemon %s is up\n", bl_process_name(p));
  fflush(stdout);
  free(m);
  bl_process_free(&p); /* still running: the process set keeps it */
  bl_conn_free(&rx);
  bl_conn_free(&tx);
  return 0; /* exit() runs the teardown */
}
C
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/atexit" "$tmp/atexit.c" $cflags $libs ||
  fail "atexit example does not compile"
out2=$(LD_LIBRARY_PATH=$libdir "$tmp/atexit" 2>&1) || fail "atexit example exited with $?: $out2"
want2="parent: daemon Process-1 is up
daemon: SIGTERM at parent exit"
[ "$out2" = "$want2" ] || fail "atexit example printed '$out2', expected '$want2'"

echo "ok: installed headers, pkg-config and shared library work ($out)"
