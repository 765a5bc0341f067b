#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy (pinned in hack/helm/go.mod), or reuses a cached
# build, so chart tests render the real chart with the real template engine (lookup included).
#
# The binary lands in $MLKUBE_CACHE_DIR/helm/<key>/helm where <key> hashes this script and the
# module files. Prints the binary's path as the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh go.mod go.sum tools.go | sha256sum | cut -c1-16)
out="$cache_root/helm/$key/helm"

if [ -x "$out" ]; then
  echo "helm: cached build $key" >&2
  echo "$out"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
mkdir -p "$(dirname "$out")"
tmp="$out.partial.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
echo "helm: building helm.sh/helm/v3/cmd/helm (first build takes a few minutes)..." >&2
# Like helm's release Makefile: its version, and the Kubernetes version of its client-go as the
# default for renders without a cluster (`helm template`, lint); unset, helm assumes v1.20 and
# refuses charts with a kubeVersion above it.
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/go.mod")
k8s_minor=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/go.mod" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
(cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm)
mv "$tmp" "$out"
echo "helm: built in $((SECONDS - start))s" >&2
echo "$out"
