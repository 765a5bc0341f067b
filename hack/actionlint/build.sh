#!/usr/bin/env bash
# Builds actionlint from the Go module proxy (pinned in hack/actionlint/go.mod), or reuses a
# cached build, so the example GitHub Actions workflows we ship to users
# (examples/ci/github-actions) are checked by the real linter in `make test`.
#
# The binary lands in $MLKUBE_CACHE_DIR/actionlint/<key>/bin/actionlint, <key> hashing the
# inputs (hack/lib/gobuild.sh). Prints the binary's path as the last line of stdout; progress
# goes to stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached actionlint "$here" actionlint build.sh go.mod go.sum tools.go

version=$(gobuild_mod_version github.com/rhysd/actionlint)
echo "actionlint: building github.com/rhysd/actionlint/cmd/actionlint $version..." >&2
gobuild_go actionlint github.com/rhysd/actionlint/cmd/actionlint \
  "-X github.com/rhysd/actionlint.version=$version"
gobuild_done
