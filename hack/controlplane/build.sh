#!/usr/bin/env bash
# Builds the local test control plane from Go modules, or reuses a cached build.
#
# Binaries land in $MLKUBE_CACHE_DIR/controlplane/<key>/bin where <key> hashes every module
# file and this script, so a warm machine skips the (long) build and any change rebuilds.
# Prints the bin directory as the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh kubernetes/go.mod kubernetes/go.sum kubernetes/tools.go \
  etcd/go.mod etcd/go.sum etcd/main.go kwok/go.mod kwok/go.sum kwok/tools.go | sha256sum | cut -c1-16)
bin="$cache_root/controlplane/$key/bin"
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwok-stages.yaml)

have_all() {
  for c in "${components[@]}"; do [ -e "$1/$c" ] || return 1; done
}

if have_all "$bin"; then
  echo "control plane: cached build $key" >&2
  echo "$bin"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# kwok may declare a newer toolchain than the installed Go; the module proxy serves it.
export GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
tmp="$bin.partial.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kubernetes/go.mod")
minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # build <step> <module dir> <output name> <package> [ldflags]
  local start=$SECONDS
  echo "control plane: [$1/5] building $3 (first build takes a while on 2 cores)..." >&2
  (cd "$here/$2" && go build -trimpath -ldflags "-s -w ${5:-}" -o "$tmp/$3" "$4")
  echo "control plane: [$1/5] $3 built in $((SECONDS - start))s" >&2
}

build 1 etcd etcd .
build 2 kubernetes kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
build 3 kubernetes kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$ldflags"
build 4 kubernetes kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$ldflags"
build 5 kwok kwok sigs.k8s.io/kwok/cmd/kwok

# The kwok binary ships no default stages (kwokctl embeds them); take the "fast" node and pod
# stages from the very module version we built, so they always match the binary.
kwok_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  echo "---"
  cat "$kwok_dir/kustomize/stage/$f"
done > "$tmp/kwok-stages.yaml"

mkdir -p "$(dirname "$bin")"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
du -sh "$bin"/* >&2
echo "$bin"
