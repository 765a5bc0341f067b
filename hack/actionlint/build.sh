#!/usr/bin/env bash
# Builds actionlint from the Go module proxy (pinned in hack/actionlint/go.mod), or reuses a
# cached build, so the example GitHub Actions workflows we ship to users
# (examples/ci/github-actions) are checked by the real linter in `make test`.
#
# The binary lands in $MLKUBE_CACHE_DIR/actionlint/<key>/actionlint where <key> hashes this
# script and the module files. Prints the binary's path as the last line of stdout; progress
# goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh go.mod go.sum tools.go | sha256sum | cut -c1-16)
out="$cache_root/actionlint/$key/actionlint"

if [ -x "$out" ]; then
  echo "actionlint: cached build $key" >&2
  echo "$out"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
mkdir -p "$(dirname "$out")"
tmp="$out.partial.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
version=$(awk '$1 == "require" && $2 == "github.com/rhysd/actionlint" {print $3}' "$here/go.mod")
echo "actionlint: building github.com/rhysd/actionlint/cmd/actionlint $version..." >&2
(cd "$here" && go build -trimpath \
  -ldflags "-s -w -X github.com/rhysd/actionlint.version=$version" \
  -o "$tmp" github.com/rhysd/actionlint/cmd/actionlint)
mv "$tmp" "$out"
echo "actionlint: built in $((SECONDS - start))s" >&2
echo "$out"
