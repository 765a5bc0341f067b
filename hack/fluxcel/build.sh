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
gobuild_cached fluxcel "$here" fluxcel build.sh go.mod go.sum main.go
echo "fluxcel: building (fluxcd/pkg/runtime + cel-go from the Go module proxy)..." >&2
gobuild_go fluxcel .
gobuild_done
