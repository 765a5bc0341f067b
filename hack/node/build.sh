#!/usr/bin/env bash
# Builds the real dev node's binaries (kubelet, kube-proxy, a slim CoreDNS, crictl, a static pause) from
# Go modules and the Kubernetes source, or reuses a cached build.
#
# Binaries land in $MLKUBE_CACHE_DIR/node/<key>/bin where <key> hashes every module file and
# this script (hack/lib/gobuild.sh), so a warm machine skips the build and any change rebuilds. The node module is
# separate from hack/controlplane/kubernetes so that editing it never invalidates the control
# plane's (long) build. Prints the bin directory as the last line of stdout; progress on stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_bin node "$here" build.sh kubernetes/go.mod kubernetes/go.sum kubernetes/tools.go \
  coredns/go.mod coredns/go.sum coredns/main.go critools/go.mod critools/go.sum critools/tools.go
components=(kubelet kube-proxy coredns crictl pause)

if gobuild_have "$bin" "${components[@]}"; then
  echo "node: cached build $key" >&2
  echo "$bin"
  exit 0
fi

gobuild_start "$bin"
gobuild_k8s_ldflags "$here/kubernetes/go.mod"

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

gobuild_finish "$bin"
du -sh "$bin"/* >&2
echo "$bin"
