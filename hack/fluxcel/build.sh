#!/usr/bin/env bash
# Builds fluxcel (hack/fluxcel/main.go: Flux's healthCheckExprs evaluator, fluxcd/pkg/runtime pinned in
# go.mod at kustomize-controller's version), or reuses a cached build, so the Flux
# health expressions in docs/deploy-flux.md are tested with the CEL evaluator Flux uses.
#
# The binary lands in $MLKUBE_CACHE_DIR/fluxcel/<key>/bin/fluxcel, <key> hashing the inputs.
# Prints the binary's path as the last line of stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_bin fluxcel "$here" build.sh go.mod go.sum main.go
if gobuild_have "$bin" fluxcel; then
  echo "fluxcel: cached build $key" >&2
  echo "$bin/fluxcel"
  exit 0
fi
gobuild_start "$bin"
start=$SECONDS
echo "fluxcel: building (fluxcd/pkg/runtime + cel-go from the Go module proxy)..." >&2
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$tmp/fluxcel" .)
gobuild_finish "$bin"
echo "fluxcel: built in $((SECONDS - start))s" >&2
echo "$bin/fluxcel"
