"""The storage-initializer init container: download one artifact into a volume and verify it.

Serving pods use it twice: for the model (into `/mnt/models`) and, with drift monitoring, for
the baseline profile (into `/mnt/drift-baseline`). Both refuse bytes that do not match the
registered digest, so a pod never serves or judges against something nobody registered.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mlkube import contract as c
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import container_security_context, env_list, tmp_mount


def pvc_claim(uri: str) -> str | None:
    """The claim of a pvc://claim/path URI, else None."""
    parts = urlsplit(uri)
    return parts.netloc if parts.scheme == "pvc" else None


def initializer_container(
    *,
    name: str,
    uri: str,
    digest: str | None,
    volume: str,
    dest: str,
    config: OperatorConfig,
    resources: dict[str, Any],
    pvc_volume: str | None = None,
) -> dict[str, Any]:
    """Init container `name`: fetch `uri` into `dest` (volume `volume`), checking `digest`.

    `pvc_volume` names the pod volume of the URI's claim when the URI is pvc://.
    """
    args = ["--uri", uri, "--dest", dest]
    if digest:
        args += ["--digest", digest]
    container: dict[str, Any] = {
        "name": name,
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "storage-initializer"],
        "args": args,
        "securityContext": container_security_context(config.run_as_user),
        "volumeMounts": [{"name": volume, "mountPath": dest}, tmp_mount()],
    }
    env = {"HOME": "/tmp"}
    if config.s3_endpoint_url:
        env[c.ENV_S3_ENDPOINT_URL] = config.s3_endpoint_url
    container["env"] = env_list(env)
    if config.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": config.storage_secret, "optional": True}}]
    claim = pvc_claim(uri)
    if claim and pvc_volume:
        container["volumeMounts"].append(
            {"name": pvc_volume, "mountPath": f"{c.PVC_ROOT}/{claim}", "readOnly": True}
        )
    if resources:
        # Same as the server: the pod's effective request is unchanged and quotas are satisfied.
        container["resources"] = resources
    return container


def pvc_volume(name: str, claim: str) -> dict[str, Any]:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
