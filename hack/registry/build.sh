#!/usr/bin/env bash
# Builds the OCI registry (distribution v3 `cmd/registry`) that the environment process and
# integration tests and the dev cluster run as a process, or reuses a cached build. The binary
# lands in $MLKUBE_CACHE_DIR/registry/<key>/bin/registry, <key> hashing this script (and
# hack/lib/gobuild.sh). Prints the binary path as the last line of stdout; export it as
# MLKUBE_REGISTRY_BIN.
set -euo pipefail

version=v3.1.2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached registry "$here" registry build.sh

echo "registry: building github.com/distribution/distribution/v3/cmd/registry@$version (about a minute)..." >&2
# No module of ours: `go install` of the pinned version, like any Go tool.
GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
  "github.com/distribution/distribution/v3/cmd/registry@$version"
gobuild_done
