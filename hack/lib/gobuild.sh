# shellcheck shell=bash
# Shared by the hack/*/build.sh scripts (sourced): Go builds cached by content.
# A build lands in $MLKUBE_CACHE_DIR/<name>/<key>/bin, <key> hashing the inputs the caller
# names plus this file, so a warm machine skips the build and any change rebuilds. A build
# goes to a partial directory first and is moved into place only when complete.
#
# A tool with one result: gobuild_cached (ends the script when cached), gobuild_go (or any
# step writing into $tmp), gobuild_done (prints the result as the last line of stdout).

gobuild_lib=${BASH_SOURCE[0]}

# gobuild_bin <name> <dir> <input files...>: sets $key and $bin, the cached bin directory.
gobuild_bin() {
  local name=$1 dir=$2 root
  shift 2
  key=$( (cd "$dir" && cat "$@") | cat - "$gobuild_lib" | sha256sum | cut -c1-16)
  root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
  bin="$root/$name/$key/bin"
}

# gobuild_have <bin dir> <files...>: all present.
gobuild_have() {
  local dir=$1 f
  shift
  for f in "$@"; do [ -e "$dir/$f" ] || return 1; done
}

# gobuild_start <bin dir>: Go settings, and $tmp, the partial directory (removed on failure).
gobuild_start() {
  export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
  # kwok may declare a newer toolchain than the installed Go; the module proxy serves it.
  export GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
  tmp="$1.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
}

# gobuild_k8s_ldflags <go.mod>: sets $k8s_version (the k8s.io/kubernetes it requires) and
# $ldflags stamping it, so `version` commands report it like a release build.
gobuild_k8s_ldflags() {
  local minor pkg
  k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$1")
  minor=$(echo "$k8s_version" | cut -d. -f2)
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
}

# gobuild_finish <bin dir>: the complete build from $tmp into place.
gobuild_finish() {
  mkdir -p "$(dirname "$1")"
  rm -rf "$1"
  mv "$tmp" "$1"
  trap - EXIT
}

# gobuild_cached <name> <dir> <result> <input files...>: $key and $bin as gobuild_bin. When
# $bin/<result> is there (a build is only moved into place complete), says so on stderr,
# prints its path and ends the script; otherwise starts the build ($tmp, as gobuild_start).
gobuild_cached() {
  gobuild_name=$1 gobuild_dir=$2 gobuild_result=$3
  shift 3
  gobuild_bin "$gobuild_name" "$gobuild_dir" "$@"
  if [ -e "$bin/$gobuild_result" ]; then
    echo "$gobuild_name: cached build $key" >&2
    echo "$bin/$gobuild_result"
    exit 0
  fi
  gobuild_start "$bin"
  gobuild_t0=$SECONDS
}

# gobuild_go <output> <package> [ldflags]: go build of <package> in the module of
# gobuild_cached's <dir>, stripped, into $tmp/<output>.
gobuild_go() {
  (cd "$gobuild_dir" && go build -trimpath -ldflags "-s -w ${3:-}" -o "$tmp/$1" "$2")
}

# gobuild_mod_version <module>: the version of <module> that <dir>'s go.mod requires.
gobuild_mod_version() {
  awk -v m="$1" '$1 == "require" && $2 == m {print $3}' "$gobuild_dir/go.mod"
}

# gobuild_done: the build into place, its time on stderr, $bin/<result> on stdout.
gobuild_done() {
  gobuild_finish "$bin"
  echo "$gobuild_name: built in $((SECONDS - gobuild_t0))s" >&2
  echo "$bin/$gobuild_result"
}
