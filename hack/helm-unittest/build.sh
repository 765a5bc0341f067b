#!/usr/bin/env bash
# Builds helm-unittest (pinned in hack/helm-unittest/go.mod) from the Go module proxy and lays it
# out as a helm plugins directory, or reuses a cached build, so `helm unittest` runs the chart's
# suites (charts/mlkube/tests/) with no network at test time.
#
# The plugin lands in $MLKUBE_CACHE_DIR/helm-unittest/<key>/bin/plugins/unittest (plugin.yaml
# from the module, the binary under the name plugin.yaml gives it), <key> hashing the inputs
# (hack/lib/gobuild.sh). Prints the plugins directory (for HELM_PLUGINS) as the last line of
# stdout; progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached helm-unittest "$here" plugins build.sh go.mod go.sum tools.go

module=github.com/helm-unittest/helm-unittest
version=$(gobuild_mod_version "$module")
echo "helm-unittest: building $module $version (first build takes about a minute)..." >&2
mkdir -p "$tmp/plugins/unittest"
gobuild_go plugins/unittest/untt "$module/cmd/helm-unittest" \
  "-X $module/internal/build.version=$version"
# The module's plugin.yaml names one binary per platform; ours is the one we just built.
src=$(cd "$here" && go list -m -f '{{.Dir}}' "$module")
sed -E 's#command: "\$HELM_PLUGIN_DIR/untt-[a-z0-9-]+"#command: "$HELM_PLUGIN_DIR/untt"#' \
  "$src/plugin.yaml" | awk '/^platformHooks:/ {exit} {print}' >"$tmp/plugins/unittest/plugin.yaml"
gobuild_done
