#!/usr/bin/env bash
# Builds the MinIO server used by the storage process tests (tests/process/storage), or reuses
# a cached build. MinIO publishes no semver tags, so the module is pinned by pseudo-version;
# the binary lands in $MLKUBE_CACHE_DIR/minio/<key>/bin/minio, <key> hashing this script
# (and hack/lib/gobuild.sh). Prints the binary path as the last line of stdout; export it as
# MLKUBE_MINIO_BIN. Without it the tests fall back to moto's S3 server (python -m moto.server).
set -euo pipefail

version=v0.0.0-20260212201848-7aac2a2c5b7c
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/gobuild.sh
. "$here/../lib/gobuild.sh"
gobuild_cached minio "$here" minio build.sh

echo "minio: building github.com/minio/minio@$version (about 5 min on 2 busy cores)..." >&2
# No module of ours: `go install` of the pinned version, like any Go tool.
GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$version"
gobuild_done
