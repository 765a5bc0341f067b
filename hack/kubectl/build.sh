#!/usr/bin/env bash
# Builds kubectl at the control plane's Kubernetes version, or reuses a cached build.
#
# The machine's kubectl may be several minors older than the dev cluster (1.36), past the
# supported skew. This module pins the same k8s.io/kubernetes version as
# hack/controlplane/kubernetes (a unit test checks they agree) but keys its own cache,
# $MLKUBE_CACHE_DIR/kubectl/<key>/bin, so it never invalidates the (long) control-plane build.
# Prints the binary path as the last line of stdout; progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh go.mod go.sum tools.go | sha256sum | cut -c1-16)
bin="$cache_root/kubectl/$key/bin"

if [ -x "$bin/kubectl" ]; then
  echo "kubectl: cached build $key" >&2
  echo "$bin/kubectl"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
tmp="$bin.partial.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# The same version stamp as the control plane's binaries, so `kubectl version` reports it.
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go.mod")
minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$SECONDS
echo "kubectl: building $k8s_version (a few minutes on 2 cores the first time)..." >&2
(cd "$here" && nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/kubectl" \
  k8s.io/kubernetes/cmd/kubectl)
echo "kubectl: built in $((SECONDS - start))s" >&2

mkdir -p "$(dirname "$bin")"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
echo "$bin/kubectl"
