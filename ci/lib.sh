# ci/lib.sh: shared by the ci/ scripts. Source it; do not run it.
# Installs missing Debian packages (apt-get update once), configures build
# directories, and prints the closing summary line.
set -u
BL_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$BL_ROOT"

BL_PACKAGES="meson ninja-build pkgconf gcc g++ libc6-dev libcriterion-dev libfiu-dev \
fiu-utils valgrind gcovr libfaketime faketime libyaml-dev libjansson-dev python3 \
python3-billiard util-linux libssl-dev"

say() { printf '==> %s\n' "$*"; }

# Install what is missing; never touch what is present.
ensure_packages() {
  missing=""
  for p in $BL_PACKAGES "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  say "installing missing packages:$missing"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || { echo "apt-get update failed" >&2; exit 2; }
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    { echo "apt-get install failed for:$missing" >&2; exit 2; }
}

# configure DIR [meson options...]: set up once, reconfigure if options changed.
configure() {
  dir=$1; shift
  stamp="$dir/.bl-options"
  want="$*"
  if [ -f "$dir/build.ninja" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null || { rm -rf "$dir"; meson setup "$dir" "$@" >/dev/null; } || exit 2
  else
    meson setup "$dir" "$@" >/dev/null || exit 2
  fi
  echo "$want" > "$stamp"
}

build() {
  say "building $1"
  meson compile -C "$1" >"$1/compile.log" 2>&1 || { tail -50 "$1/compile.log"; echo "build failed: $1" >&2; exit 2; }
}

# summary LOG...: count Criterion cases (from each Synthesis line) and other
# meson tests, across the given testlog.json files.
summary() {
  python3 "$BL_ROOT/ci/summary.py" "$@"
}
