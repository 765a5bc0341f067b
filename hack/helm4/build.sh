#!/usr/bin/env bash
# Builds the Helm 4 CLI from the Go module proxy (pinned in hack/helm4/go.mod), or reuses a cached
# build. Helm 4 --wait computes kstatus (github.com/fluxcd/cli-utils), so tests check that
# `helm install --wait` of a Model ends when it is Ready and fails fast when it has failed.
#
# The binary lands in $MLKUBE_CACHE_DIR/helm4/<key>/bin/helm, <key> hashing the inputs
# (hack/lib/gobuild.sh). Prints the binary's path as the last line of stdout; progress goes to
# stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached helm4 "$here" helm build.sh go.mod go.sum tools.go

version=$(gobuild_mod_version helm.sh/helm/v4)
echo "helm4: building helm.sh/helm/v4/cmd/helm $version (first build takes a few minutes)..." >&2
gobuild_go helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$version"
gobuild_done
