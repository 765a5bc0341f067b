# Shared by hack/{controlplane,node,kubectl}/build.sh (sourced): Go builds cached by content.
# A build lands in $MLKUBE_CACHE_DIR/<name>/<key>/bin, <key> hashing the inputs the caller
# names plus this file, so a warm machine skips the build and any change rebuilds. A build
# goes to a partial directory first and is moved into place only when complete.

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
