#!/usr/bin/env bash
# Builds the real dev node's binaries (kubelet, kube-proxy, a slim CoreDNS, crictl, a static pause) from
# Go modules and the Kubernetes source, or reuses a cached build.
#
# Binaries land in $MLKUBE_CACHE_DIR/node/<key>/bin where <key> hashes every module file and
# this script, so a warm machine skips the build and any change rebuilds. The node module is
# separate from hack/controlplane/kubernetes so that editing it never invalidates the control
# plane's (long) build. Prints the bin directory as the last line of stdout; progress on stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh kubernetes/go.mod kubernetes/go.sum kubernetes/tools.go \
  coredns/go.mod coredns/go.sum coredns/main.go critools/go.mod critools/go.sum critools/tools.go \
  | sha256sum | cut -c1-16)
bin="$cache_root/node/$key/bin"
components=(kubelet kube-proxy coredns crictl pause)

have_all() {
  for c in "${components[@]}"; do [ -e "$1/$c" ] || return 1; done
}

if have_all "$bin"; then
  echo "node: cached build $key" >&2
  echo "$bin"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
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
  echo "node: [$1/5] building $3 (first build takes a while on 2 cores)..." >&2
  (cd "$here/$2" && nice -n 10 go build -trimpath -ldflags "-s -w ${5:-}" -o "$tmp/$3" "$4")
  echo "node: [$1/5] $3 built in $((SECONDS - start))s" >&2
}

build 1 coredns coredns .
build 2 kubernetes kubelet k8s.io/kubernetes/cmd/kubelet "$ldflags"
build 3 kubernetes kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$ldflags"
build 4 critools crictl sigs.k8s.io/cri-tools/cmd/crictl

# The pod sandbox image's only binary, from the very Kubernetes version the kubelet is built
# from; static so the image needs nothing else (hack/images/build packages it).
echo "node: [5/5] compiling pause..." >&2
k8s_dir=$(cd "$here/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
nice -n 10 cc -Os -static -Wall -Werror -DVERSION="$k8s_version" \
  -o "$tmp/pause" "$k8s_dir/build/pause/linux/pause.c"
strip "$tmp/pause"

mkdir -p "$(dirname "$bin")"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
du -sh "$bin"/* >&2
echo "$bin"
