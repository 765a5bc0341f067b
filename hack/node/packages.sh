#!/usr/bin/env bash
# Installs the Debian packages the real dev node runs on (container runtime, CNI plugins, image
# tools), or does nothing when they are all present. Debian/Ubuntu with apt and root only: the
# caller (mlkube dev up --real-node) checks that first and falls back to kwok otherwise.
set -euo pipefail

packages=(containerd runc containernetworking-plugins podman buildah debootstrap iptables iproute2
  conntrack uidmap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "node packages: all present" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "node packages: missing ${missing[*]}; installing needs root and apt-get" >&2
  exit 1
fi
start=$SECONDS
echo "node packages: installing ${missing[*]} (apt-get)..." >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
# Debian starts no daemon here (no systemd); the node runs its own private containerd anyway.
echo "node packages: installed in $((SECONDS - start))s" >&2
