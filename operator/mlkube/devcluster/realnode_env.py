"""The operator settings of the real node (`mlkube dev up --real-node`, the e2e tier): the
images imported into its containerd, its S3 store, its pod network, and what environment
builds need (registry, package mirror, curated images on the bridge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlkube.devcluster import buildsupport, image_digests, realnode_store
from mlkube.devcluster.realnode_config import BUILD_ADDRESSES, POD_CIDR

if TYPE_CHECKING:
    from mlkube.devcluster.realnode import RealNode


def operator_env(node: RealNode) -> dict[str, str]:
    """What the operator needs to run pods on the real node: the images we imported, never
    pulled (there is no registry), and the node's S3 store with its credentials Secret."""
    env = node.store_env()
    if env:
        env["MLKUBE_STORAGE_SECRET"] = realnode_store.SECRET_NAME
    # Pods on the real node have real IPs: the operator may poll them (drift summaries).
    env["MLKUBE_POD_NETWORKS"] = POD_CIDR
    serving = node.images.get("serving")
    if serving:
        env.update({"MLKUBE_SERVING_IMAGE": serving, "MLKUBE_IMAGE_PULL_POLICY": "Never"})
    # Pipeline steps are cached by image digest; there is no registry to resolve tags.
    digests = image_digests.containerd_digests(node.socket(), node.images)
    if digests:
        env["MLKUBE_IMAGE_DIGESTS"] = image_digests.setting(digests)
    # Environment builds: the registry, the package mirror and the curated images on the bridge.
    if buildsupport.REGISTRY_PROCESS in node.state.pids:
        env.update(buildsupport.operator_env(BUILD_ADDRESSES, node.state.pushed))
    return env
