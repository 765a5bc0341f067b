#!/usr/bin/env bash
# Builds the kstatus checker (main.go: sigs.k8s.io/cli-utils status.Compute, pinned in go.mod),
# or reuses a cached build, so tests judge objects with the code Flux, Helm 4 and kpt run.
#
# The binary lands in $MLKUBE_CACHE_DIR/kstatus/<key>/kstatus where <key> hashes this script,
# the module files and the source. Prints the binary's path as the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh go.mod go.sum main.go | sha256sum | cut -c1-16)
out="$cache_root/kstatus/$key/kstatus"

if [ -x "$out" ]; then
  echo "kstatus: cached build $key" >&2
  echo "$out"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
mkdir -p "$(dirname "$out")"
tmp="$out.partial.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
echo "kstatus: building the checker (sigs.k8s.io/cli-utils)..." >&2
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$tmp" .)
mv "$tmp" "$out"
echo "kstatus: built in $((SECONDS - start))s" >&2
echo "$out"
