#!/usr/bin/env bash
# Builds ghz from the Go module proxy (pinned in hack/ghz/go.mod), or reuses a cached build:
# the gRPC load generator `make bench-serving` drives the Open Inference Protocol's gRPC
# servers with (mlkube's and MLServer's), as wrk drives their HTTP.
#
# The binary lands in $MLKUBE_CACHE_DIR/ghz/<key>/bin/ghz, <key> hashing the inputs
# (hack/lib/gobuild.sh). Prints the binary's path as the last line of stdout; progress goes to
# stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached ghz "$here" ghz build.sh go.mod go.sum tools.go

version=$(gobuild_mod_version github.com/bojand/ghz)
echo "ghz: building github.com/bojand/ghz/cmd/ghz $version..." >&2
gobuild_go ghz github.com/bojand/ghz/cmd/ghz "-X main.version=$version"
gobuild_done
