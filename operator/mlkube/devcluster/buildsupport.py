"""What environment builds need in the dev cluster (docs/environments.md §8): the registry and
the package mirror as processes, the serving images pushed as curated environments, and the
operator settings (§2.3) that point builds at them.

Shared by both modes; only the addresses differ: the bridge address on the real node (build
pods and the node's containerd reach it there), loopback with free ports in the kwok mode
(build pods run as local processes of the dev pod executor).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkube.devcluster import mirror, registry

REGISTRY_PROCESS = "registry"
MIRROR_PROCESS = "mirror"
BUILD_NAMESPACE = "mlkube-system"
# Curated environment → the hack/images/build target of its serving-image variant. A variant
# the image script does not build (yet) is served by the full serving image (VARIANT=all).
CURATED_TARGETS: dict[str, str] = {
    "mlkube-sklearn": "serving-sklearn",
    "mlkube-onnx": "serving-onnx",
    "mlkube-mlflow": "serving-mlflow",
}
FALLBACK_TARGET = "serving"
VARIANT_TARGETS: tuple[str, ...] = tuple(CURATED_TARGETS.values())

Spawn = Callable[[str, list[str]], object]


@dataclass(frozen=True)
class Addresses:
    host: str
    registry_port: int
    mirror_port: int

    @property
    def registry(self) -> str:
        return f"{self.host}:{self.registry_port}"

    @property
    def mirror(self) -> str:
        return f"{self.host}:{self.mirror_port}"


def start(spawn: Spawn, hack: Path, state_dir: Path, addrs: Addresses, timeout: float = 60) -> None:
    """Start the registry (storage under `state_dir`/registry) and the mirror server; wait
    until both answer. Processes are started through `spawn`, so their owner stops them."""
    binary = registry.registry_binary(hack)
    spawn(REGISTRY_PROCESS, registry.registry_argv(binary, state_dir / "registry", addrs.registry))
    served = mirror.link_into(state_dir, mirror.ensure())
    spawn(MIRROR_PROCESS, mirror.server_argv(served, addrs.host, addrs.mirror_port))
    deadline = time.monotonic() + timeout
    checks: tuple[tuple[str, Callable[[], bool]], ...] = (
        ("registry", lambda: registry.ready(addrs.registry)),
        ("package mirror", lambda: _serves(mirror.find_links_url(addrs.mirror))),
    )
    for what, check in checks:
        while not check():
            if time.monotonic() > deadline:
                raise registry.RegistryError(f"timed out waiting for the {what}")
            time.sleep(0.2)


def _serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def build_namespace() -> dict[str, Any]:
    """The build namespace (the operator's, in dev), created before the operator starts so
    the store's credentials Secret can be put there for packaging builds."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BUILD_NAMESPACE}}


def curated_targets(available: Mapping[str, str]) -> dict[str, str]:
    """curated name → the image target that provides it among the built `available` ones."""
    return {
        name: target if target in available else FALLBACK_TARGET
        for name, target in CURATED_TARGETS.items()
    }


def push_images(images: Mapping[str, str], address: str) -> dict[str, str]:
    """Push the serving images (target → local podman ref: `serving` and its variants) into
    the registry; return target → `<registry>/mlkube/<target>@sha256:…`."""
    return {
        target: registry.push_image(ref, address, f"{registry.REPOSITORY_PREFIX}/{target}")
        for target, ref in sorted(images.items())
        if target == FALLBACK_TARGET or target in CURATED_TARGETS.values()
    }


def curated_refs(pushed: Mapping[str, str]) -> dict[str, str]:
    """curated name → pinned image, from what push_images pushed."""
    return {
        name: pushed[target] for name, target in curated_targets(pushed).items() if target in pushed
    }


def operator_env(addrs: Addresses, pushed: Mapping[str, str]) -> dict[str, str]:
    """The operator's build settings (docs/environments.md §2.3) for this dev cluster;
    `pushed` is push_images' result (empty in the kwok mode: no images there)."""
    env = {
        "MLKUBE_BUILD_REGISTRY": f"{addrs.registry}/{registry.REPOSITORY_PREFIX}",
        "MLKUBE_BUILD_REGISTRY_INSECURE": "true",
        "MLKUBE_BUILD_NAMESPACE": BUILD_NAMESPACE,
        "MLKUBE_BUILD_PIP_FIND_LINKS": mirror.find_links_url(addrs.mirror),
        "MLKUBE_BUILD_PIP_NO_INDEX": "true",
        # pip ignores a plain-HTTP find-links page unless its host is trusted.
        "MLKUBE_BUILD_PIP_TRUSTED_HOSTS": addrs.host,
        "MLKUBE_BUILD_APT_SOURCES": mirror.apt_source(addrs.mirror),
    }
    curated = curated_refs(pushed)
    if curated:
        env["MLKUBE_CURATED_ENVIRONMENTS"] = ",".join(
            f"{name}={ref}" for name, ref in sorted(curated.items())
        )
    # The build tools (mlkube.envbuild) run from the serving image the node imported, by its
    # tag (MLKUBE_BUILD_TOOLS_IMAGE unset): pulling the registry copy by digest gives the same
    # image a second repo digest, which the kubelet then reports for every pod using the tag,
    # so pipeline step caches keyed on MLKUBE_IMAGE_DIGESTS would see "the image's tag moved".
    return env
