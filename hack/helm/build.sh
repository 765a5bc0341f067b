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
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$tmp" helm.sh/helm/v3/cmd/helm)
mv "$tmp" "$out"
echo "helm: built in $((SECONDS - start))s" >&2
echo "$out"
