"""The dev cluster's OCI registry (docs/environments.md §8): distribution v3's `registry` as a
process (hack/registry/build.sh), plain HTTP, its storage in the dev state dir, so environment
builds have somewhere to push and the real node something to pull from.

Where it listens: the bridge address on the real node (build pods push to it, the node's
containerd pulls from it through a hosts.toml), loopback in the kwok mode. The serving
images are pushed into it with `podman push` so curated environments have digests.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPOSITORY_PREFIX = "mlkube"  # MLKUBE_BUILD_REGISTRY = <address>/mlkube
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class RegistryError(RuntimeError):
    """The registry could not be built, started or written."""


def registry_binary(hack: Path) -> Path:
    """MLKUBE_REGISTRY_BIN if set (tests export it), else the cached build of hack/registry."""
    override = os.environ.get("MLKUBE_REGISTRY_BIN")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(hack / "registry" / "build.sh")],
        stdout=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RegistryError(f"registry build failed (exit {result.returncode}), see above")
    return Path(result.stdout.strip().splitlines()[-1])


def build_config(address: str, storage: Path) -> dict[str, Any]:
    """distribution v3 configuration: filesystem storage, plain HTTP on `address` only, no
    debug server (it would listen on another port), deletes on (a dev registry is pruned by
    removing the state dir, but tests may delete manifests)."""
    return {
        "version": "0.1",
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }


def registry_argv(binary: Path, state_dir: Path, address: str) -> list[str]:
    """Writes the config under `state_dir` (storage beside it) and returns the command line;
    it names `state_dir`, which is how `dev down` recognises the process as ours."""
    storage = state_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = state_dir / "config.yml"
    config.write_text(yaml.safe_dump(build_config(address, storage)))
    return [str(binary), "serve", str(config)]


def ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def manifest_digest(address: str, repository: str, reference: str) -> str | None:
    """The digest the registry serves for `repository:reference` (None when absent)."""
    req = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{reference}", method="HEAD"
    )
    req.add_header("Accept", ", ".join(MANIFEST_TYPES))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            digest = resp.headers.get("Docker-Content-Digest")
            return str(digest) if digest else None
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise RegistryError(f"HEAD {repository}:{reference}: HTTP {err.code}") from None


def push_image(local_ref: str, address: str, repository: str) -> str:
    """Push a podman image as `<address>/<repository>:<its tag>` (unless the registry has that
    tag: tags of hack/images/build are content hashes) and return `…@sha256:…`."""
    tag = local_ref.rsplit(":", 1)[1]
    digest = manifest_digest(address, repository, tag)
    if digest is None:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            digest_file = Path(tmp) / "digest"
            argv = ["podman", "push", "--quiet", "--tls-verify=false",
                    "--digestfile", str(digest_file), local_ref,
                    f"{address}/{repository}:{tag}"]  # fmt: skip
            result = subprocess.run(["nice", "-n", "10", *argv], capture_output=True, text=True)
            if result.returncode != 0:
                raise RegistryError(f"podman push {local_ref}: {result.stderr.strip()[-500:]}")
            digest = digest_file.read_text().strip()
        print(
            f"registry: pushed {local_ref} as {address}/{repository} in "
            f"{time.monotonic() - started:.0f}s",
            flush=True,
        )
    return f"{address}/{repository}@{digest}"


def build_hosts_toml(address: str) -> str:
    """containerd's hosts.toml (config_path) for the dev registry: plain HTTP, pull only."""
    return (
        f"server = {json.dumps('http://' + address)}\n\n"
        f"[host.{json.dumps('http://' + address)}]\n"
        '  capabilities = ["pull", "resolve"]\n'
    )


def write_hosts(hosts_dir: Path, address: str) -> None:
    directory = hosts_dir / address
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.toml").write_text(build_hosts_toml(address))
