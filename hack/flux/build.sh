#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller (their main packages, pinned as
# `tool`s in go.mod) and copies their CRDs (the modules' config/crd/bases), or reuses a cached
# build, so `make test-gitops` runs the real controllers as processes against the dev control
# plane (tests/gitops/test_flux_controllers.py).
#
# Lands in $MLKUBE_CACHE_DIR/flux/<key>/bin/{source-controller,kustomize-controller,crds/},
# <key> hashing the inputs (hack/lib/gobuild.sh). Prints the kustomize-controller binary's path
# as the last line of stdout (its directory holds the rest); progress goes to stderr.
# Cold: about 4.5 min on 2 busy cores (source-controller is most of it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_cached flux "$here" kustomize-controller build.sh go.mod go.sum

for c in source-controller kustomize-controller; do
  version=$(cd "$here" && go list -m -f '{{.Version}}' "github.com/fluxcd/$c")
  echo "flux: building $c $version (Go module proxy)..." >&2
  gobuild_go "$c" "github.com/fluxcd/$c"
done
mkdir -p "$tmp/crds"
for c in source-controller kustomize-controller; do
  dir=$(cd "$here" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$c")
  cp "$dir"/config/crd/bases/*.yaml "$tmp/crds/"
done
chmod -R u+w "$tmp/crds"
gobuild_done
