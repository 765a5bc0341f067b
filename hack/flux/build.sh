#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller (their main packages, pinned as
# `tool`s in go.mod) and copies their CRDs (the modules' config/crd/bases), or reuses a cached
# build, so `make test-gitops` runs the real controllers as processes against the dev control
# plane (tests/gitops/test_flux_controllers.py).
#
# Lands in $MLKUBE_CACHE_DIR/flux/<key>/bin/{source-controller,kustomize-controller,crds/},
# <key> hashing the inputs (hack/lib/gobuild.sh). Prints the bin directory as the last line.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_cached flux "$here" kustomize-controller build.sh go.mod go.sum

for c in source-controller kustomize-controller; do
  echo "flux: building $c $(gobuild_mod_version "github.com/fluxcd/$c") (Go module proxy)..." >&2
  gobuild_go "$c" "github.com/fluxcd/$c"
done
mkdir -p "$tmp/crds"
for c in source-controller kustomize-controller; do
  dir=$(cd "$here" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$c")
  cp "$dir"/config/crd/bases/*.yaml "$tmp/crds/"
done
chmod -R u+w "$tmp/crds"
gobuild_finish "$bin"
echo "flux: built in $((SECONDS - gobuild_t0))s" >&2
echo "$bin"
