"""Pod-level pieces shared by every serving pod: Pod Security "restricted" settings and volumes.

Serving pods run untrusted-ish user code (scoring scripts, pickles), so they get the strictest
profile the Pod Security Standards define, which also lets them run in namespaces labelled
`pod-security.kubernetes.io/enforce=restricted`: non-root with a numeric UID, RuntimeDefault
seccomp, no privilege escalation, no capabilities, a read-only root filesystem (with an emptyDir
for /tmp) and no service account token (nothing in the pod talks to the API).
"""

from __future__ import annotations

from typing import Any, Final

from mlkube import contract as c

TMP_VOLUME: Final = "tmp"
TMP_DIR: Final = "/tmp"
TMP_SIZE_LIMIT: Final = "256Mi"


def pod_security_context(run_as_user: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "fsGroup": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(run_as_user: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def tmp_volume() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mountPath": TMP_DIR}


def restricted_pod_spec(
    *,
    run_as_user: int,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    init_containers: list[dict[str, Any]] | None = None,
    grace_seconds: int = 30,
) -> dict[str, Any]:
    """A pod spec with the restricted profile and no API credentials."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(run_as_user),
        "terminationGracePeriodSeconds": grace_seconds,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    spec["volumes"] = volumes
    return spec


def http_probe(
    path: str,
    *,
    port: str = "http",
    initial_delay: int | None = None,
    period: int = 10,
    failure_threshold: int = 3,
    timeout: int = 2,
) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failure_threshold,
    }
    if initial_delay:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def env_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def number_text(value: float) -> str:
    """A number as an env value: integers without a trailing .0 (10, not 10.0)."""
    return str(int(value)) if float(value).is_integer() else str(value)


def memory_limit_env(container: str) -> dict[str, Any]:
    """The container's memory limit in bytes (downward API): the data plane sizes its byte
    budgets from it (`mlkube_serving._http.budget`). Only set it when a limit is."""
    return {
        "name": c.ENV_MEMORY_LIMIT,
        "valueFrom": {
            "resourceFieldRef": {"containerName": container, "resource": "limits.memory"}
        },
    }
