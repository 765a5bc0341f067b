#!/usr/bin/env bash
# Builds Argo Workflows' workflow-controller from the Go module proxy (pinned in hack/argo/go.mod;
# main.go is upstream's cmd/workflow-controller kept on loopback), or reuses a cached build, so
# `make bench-pipeline` measures mlkube's PipelineRun controller against the real peer on the
# same control plane. Argo's CRDs (the module's manifests/base/crds/minimal) are copied next to
# the binary, from the same pinned version.
#
# The binary lands in $MLKUBE_CACHE_DIR/argo/<key>/bin/workflow-controller, <key> hashing the
# inputs (hack/lib/gobuild.sh). Prints the binary's path as the last line of stdout; progress
# goes to stderr. The first build compiles ~1,800 packages: niced, two at a time (a shared
# two-core machine), about 10 minutes.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached argo "$here" workflow-controller build.sh go.mod go.sum main.go

echo "argo: building Argo Workflows' workflow-controller (hack/argo/main.go; the first build" \
  "takes about 10 minutes)..." >&2
export GOFLAGS="$GOFLAGS -p=${MLKUBE_GO_PARALLEL:-2}"
module=github.com/argoproj/argo-workflows/v4
version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
# Like Argo's release Makefile: its version stamped in.
ldflags="-X $module.version=$version -X $module.gitTag=$version -X $module.gitTreeState=clean"
# A shared machine: this build and its compilers yield to everything else.
renice -n 10 -p $$ >/dev/null
gobuild_go workflow-controller . "$ldflags"
src=$(cd "$gobuild_dir" && go list -m -f '{{.Dir}}' "$module")
cp -r "$src/manifests/base/crds/minimal" "$tmp/crds"
chmod -R u+w "$tmp/crds"
gobuild_done
