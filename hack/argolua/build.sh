#!/usr/bin/env bash
# Builds argolua (hack/argolua/main.go: Argo CD's Lua health-check runner, gopher-lua pinned in
# go.mod as Argo CD pins it), or reuses a cached build, so the Argo CD health checks shipped in
# charts/mlkube/argocd are tested offline with the same Lua engine Argo CD uses.
#
# The binary lands in $MLKUBE_CACHE_DIR/argolua/<key>/bin/argolua, <key> hashing the inputs.
# Prints the binary's path as the last line of stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_cached argolua "$here" argolua build.sh go.mod go.sum main.go vm.go
echo "argolua: building (gopher-lua from the Go module proxy)..." >&2
gobuild_go argolua .
gobuild_done
