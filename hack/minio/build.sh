#!/usr/bin/env bash
# Builds the MinIO server used by the storage process tests (tests/process/storage), or reuses
# a cached build. MinIO publishes no semver tags, so the module is pinned by pseudo-version;
# the binary lands in $MLKUBE_CACHE_DIR/minio/<key>/bin/minio, <key> hashing this script.
# Prints the binary path as the last line of stdout; export it as MLKUBE_MINIO_BIN.
# Without it the tests fall back to moto's S3 server (python -m moto.server).
set -euo pipefail

version=v0.0.0-20260212201848-7aac2a2c5b7c
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}
key=$(sha256sum "$here/build.sh" | cut -c1-16)
bin="$cache_root/minio/$key/bin"

if [ -x "$bin/minio" ]; then
  echo "minio: cached build $key" >&2
  echo "$bin/minio"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
tmp="$bin.partial.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "minio: building github.com/minio/minio@$version (about 5 min on 2 busy cores)..." >&2
GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$version"
echo "minio: built in $((SECONDS - start))s" >&2
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
echo "$bin/minio"
