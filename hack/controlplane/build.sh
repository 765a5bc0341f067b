#!/usr/bin/env bash
# Builds the local test control plane from Go modules, or reuses a cached build.
#
# Binaries land in $MLKUBE_CACHE_DIR/controlplane/<key>/bin where <key> hashes every module
# file and this script (hack/lib/gobuild.sh), so a warm machine skips the (long) build.
# Prints the bin directory as the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_bin controlplane "$here" build.sh kubernetes/go.mod kubernetes/go.sum \
  kubernetes/tools.go etcd/go.mod etcd/go.sum etcd/main.go kwok/go.mod kwok/go.sum kwok/tools.go
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwok-stages.yaml)

if gobuild_have "$bin" "${components[@]}"; then
  echo "control plane: cached build $key" >&2
  echo "$bin"
  exit 0
fi

gobuild_start "$bin"
gobuild_k8s_ldflags "$here/kubernetes/go.mod"

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

gobuild_finish "$bin"
du -sh "$bin"/* >&2
echo "$bin"
