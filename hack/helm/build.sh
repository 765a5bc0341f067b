#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy (pinned in hack/helm/go.mod), or reuses a cached
# build, so chart tests render the real chart with the real template engine (lookup included).
#
# The binary lands in $MLKUBE_CACHE_DIR/helm/<key>/bin/helm, <key> hashing the inputs
# (hack/lib/gobuild.sh). Prints the binary's path as the last line of stdout; progress goes to
# stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached helm "$here" helm build.sh go.mod go.sum tools.go

echo "helm: building helm.sh/helm/v3/cmd/helm (first build takes a few minutes)..." >&2
# Like helm's release Makefile: its version, and the Kubernetes version of its client-go as the
# default for renders without a cluster (`helm template`, lint); unset, helm assumes v1.20 and
# refuses charts with a kubeVersion above it.
k8s_minor=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/go.mod" | cut -d. -f2)
ldflags="-X helm.sh/helm/v3/internal/version.version=$(gobuild_mod_version helm.sh/helm/v3)"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
gobuild_go helm helm.sh/helm/v3/cmd/helm "$ldflags"
gobuild_done
