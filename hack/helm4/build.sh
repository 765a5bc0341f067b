#!/usr/bin/env bash
# Builds the Helm 4 CLI from the Go module proxy (pinned in hack/helm4/go.mod), or reuses a cached
# build. Helm 4 --wait computes kstatus (github.com/fluxcd/cli-utils), so tests check that
# `helm install --wait` of a Model ends when it is Ready and fails fast when it has failed.
#
# The binary lands in $MLKUBE_CACHE_DIR/helm4/<key>/helm where <key> hashes this script and the
# module files. Prints the binary's path as the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh go.mod go.sum tools.go | sha256sum | cut -c1-16)
out="$cache_root/helm4/$key/helm"

if [ -x "$out" ]; then
  echo "helm4: cached build $key" >&2
  echo "$out"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
mkdir -p "$(dirname "$out")"
tmp="$out.partial.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
echo "helm4: building helm.sh/helm/v4/cmd/helm v4.3.2 (first build takes a few minutes)..." >&2
(cd "$here" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v4.3.2" -o "$tmp" helm.sh/helm/v4/cmd/helm)
mv "$tmp" "$out"
echo "helm4: built in $((SECONDS - start))s" >&2
echo "$out"
