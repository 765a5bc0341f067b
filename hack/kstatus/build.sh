#!/usr/bin/env bash
# Builds the kstatus checker (main.go: sigs.k8s.io/cli-utils status.Compute, pinned in go.mod),
# or reuses a cached build, so tests judge objects with the code Flux, Helm 4 and kpt run.
#
# The binary lands in $MLKUBE_CACHE_DIR/kstatus/<key>/bin/kstatus, <key> hashing the inputs
# (hack/lib/gobuild.sh). Prints the binary's path as the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached kstatus "$here" kstatus build.sh go.mod go.sum main.go

echo "kstatus: building the checker (sigs.k8s.io/cli-utils)..." >&2
gobuild_go kstatus .
gobuild_done
