#!/usr/bin/env bash
# Builds kubectl at the control plane's Kubernetes version, or reuses a cached build.
#
# The machine's kubectl may be several minors older than the dev cluster (1.36), past the
# supported skew. This module pins the same k8s.io/kubernetes version as
# hack/controlplane/kubernetes (a unit test checks they agree) but keys its own cache,
# $MLKUBE_CACHE_DIR/kubectl/<key>/bin (hack/lib/gobuild.sh), so it never invalidates the (long) control-plane build.
# Prints the binary path as the last line of stdout; progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_bin kubectl "$here" build.sh go.mod go.sum tools.go

if [ -x "$bin/kubectl" ]; then
  echo "kubectl: cached build $key" >&2
  echo "$bin/kubectl"
  exit 0
fi

gobuild_start "$bin"
# The same version stamp as the control plane's binaries, so `kubectl version` reports it.
gobuild_k8s_ldflags "$here/go.mod"

start=$SECONDS
echo "kubectl: building $k8s_version (a few minutes on 2 cores the first time)..." >&2
(cd "$here" && nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/kubectl" \
  k8s.io/kubernetes/cmd/kubectl)
echo "kubectl: built in $((SECONDS - start))s" >&2

gobuild_finish "$bin"
echo "$bin/kubectl"
