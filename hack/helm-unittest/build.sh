#!/usr/bin/env bash
# Builds helm-unittest (pinned in hack/helm-unittest/go.mod) from the Go module proxy and lays it
# out as a helm plugins directory, or reuses a cached build, so `helm unittest` runs the chart's
# suites (charts/mlkube/tests/) with no network at test time.
#
# The plugin lands in $MLKUBE_CACHE_DIR/helm-unittest/<key>/plugins/unittest (plugin.yaml from
# the module, the binary under the name plugin.yaml gives it); <key> hashes this script and the
# module files. Prints the plugins directory (for HELM_PLUGINS) as the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(cd "$here" && cat build.sh go.mod go.sum tools.go | sha256sum | cut -c1-16)
plugins="$cache_root/helm-unittest/$key/plugins"

if [ -x "$plugins/unittest/untt" ] && [ -f "$plugins/unittest/plugin.yaml" ]; then
  echo "helm-unittest: cached build $key" >&2
  echo "$plugins"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${MLKUBE_GOTOOLCHAIN:-auto}
tmp="$plugins.partial.$$"
rm -rf "$tmp"
mkdir -p "$tmp/unittest"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
module=github.com/helm-unittest/helm-unittest
version=$(awk -v m="$module" '$1 == "require" && $2 == m {print $3}' "$here/go.mod")
echo "helm-unittest: building $module $version (first build takes about a minute)..." >&2
(cd "$here" && go build -trimpath \
  -ldflags "-s -w -X $module/internal/build.version=$version" \
  -o "$tmp/unittest/untt" "$module/cmd/helm-unittest")
# The module's plugin.yaml names one binary per platform; ours is the one we just built.
src=$(cd "$here" && go list -m -f '{{.Dir}}' "$module")
sed -E 's#command: "\$HELM_PLUGIN_DIR/untt-[a-z0-9-]+"#command: "$HELM_PLUGIN_DIR/untt"#' \
  "$src/plugin.yaml" | awk '/^platformHooks:/ {exit} {print}' >"$tmp/unittest/plugin.yaml"
mkdir -p "$(dirname "$plugins")"
rm -rf "$plugins"
mv "$tmp" "$plugins"
trap - EXIT
echo "helm-unittest: built in $((SECONDS - start))s" >&2
echo "$plugins"
