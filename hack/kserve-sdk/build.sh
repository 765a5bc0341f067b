#!/usr/bin/env bash
# A venv with the KServe Python SDK (pinned below), or a cached one, so the gRPC tests ask the
# model server with KServe's own InferenceGRPCClient. Its own venv: the SDK pins cloudevents<2,
# which the tests' venv (cloudevents 2) cannot hold.
#
# Lands in $MLKUBE_CACHE_DIR/kserve-sdk/<key>/, <key> hashing this script. Prints the venv's
# python as the last line of stdout; progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit  # command substitutions fail the script too

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=0.21.0
key=$(sha256sum < "$here/build.sh" | cut -c1-16)
root=${MLKUBE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlkube}/kserve-sdk/$key
if [ ! -f "$root/.complete" ]; then
  echo "kserve-sdk: installing kserve==$version into $root (~1 min)..." >&2
  rm -rf "$root"
  python3.11 -m venv "$root"
  "$root/bin/pip" install -q --disable-pip-version-check "kserve==$version" >&2
  "$root/bin/python" -c "from kserve import InferenceGRPCClient" >&2
  touch "$root/.complete"
fi
echo "$root/bin/python"
