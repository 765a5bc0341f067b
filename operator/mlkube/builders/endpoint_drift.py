"""Drift monitoring inside one deployment's pods: baseline download, sidecar, server wiring.

With `drift.enabled` and a Model that registered a baseline profile (`spec.baseline`), the pod
gets a second init step (the storage initializer again, fetching and verifying the profile into
an emptyDir), a `drift` container running the sidecar, and the server is told where to send
its samples (always loopback: the ingest port is never in a Service). Without a baseline
nothing is added; the endpoint serves as usual and the drift monitor reports
`DriftBaselineMissing`. These pieces are part of the pod template, so turning drift on or off
rolls the model pods; traffic changes still never touch them.
"""

from __future__ import annotations

from typing import Any, Final

from mlkube import contract as c
from mlkube.api.endpoint import OnlineDeployment
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import (
    container_security_context,
    env_list,
    http_probe,
    memory_limit_env,
    number_text,
    tmp_mount,
)
from mlkube.builders.storage_init import initializer_container, pvc_claim, pvc_volume

BASELINE_VOLUME: Final = "drift-baseline"
BASELINE_INITIALIZER: Final = "drift-baseline"
BASELINE_PVC_VOLUME: Final = "baseline-pvc"
SPOOL_VOLUME: Final = "drift-spool"
# Per server worker: its ring, the ring's header and layouts, rounded up; plus two rings of
# restarted workers the sidecar has not drained yet. Past it a new worker sends over HTTP.
SPOOL_MIB_PER_RING: Final = c.DRIFT_SPOOL_RING_MIB + 1
SPOOL_SPARE_RINGS: Final = 2
DRIFT_CONTAINER: Final = "drift"
DRIFT_PORT_NAME: Final = "drift"
DRIFT_METRICS_PORT_NAME: Final = "drift-metrics"
# The window holds window x features int32 slots; 1 Gi covers a 1,000,000-row window of ~100
# features with room for numpy's temporaries.
SIDECAR_RESOURCES: Final = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "1Gi"},
}


def drift_enabled(dep: OnlineDeployment) -> bool:
    return dep.drift is not None and dep.drift.enabled


def drift_active(dep: OnlineDeployment, model: ModelFacts) -> bool:
    """The pod runs the sidecar: drift is enabled and there is a baseline to compare with,
    with a digest to verify it (without one the operator reports DriftBaselineUnreadable)."""
    return drift_enabled(dep) and model.baseline_uri is not None and bool(model.baseline_digest)


def drift_server_env(dep: OnlineDeployment, config: OperatorConfig) -> dict[str, str]:
    """What the model server needs to sample requests to the sidecar next to it: numeric
    samples through the shared spool, the rest (text columns) to the sidecar's URL."""
    rate = dep.drift.sample_rate if dep.drift is not None else 0.0
    return {
        c.ENV_DRIFT_URL: f"http://127.0.0.1:{config.drift_port}",
        c.ENV_DRIFT_SAMPLE_RATE: number_text(rate),
        c.ENV_DRIFT_SPOOL_DIR: c.DRIFT_SPOOL_DIR,
    }


def spool_mount() -> dict[str, Any]:
    """The spool in the server and the sidecar: the server writes its rings, the sidecar reads
    them, advances their read positions and removes the rings of workers that are gone."""
    return {"name": SPOOL_VOLUME, "mountPath": c.DRIFT_SPOOL_DIR}


def spool_limit(dep: OnlineDeployment) -> str:
    """`sizeLimit` of the spool: one ring per server worker (`MLKUBE_WORKERS` in the
    deployment's env, else 1) and the spare rings."""
    workers = 1
    for var in dep.env:
        if var.name == c.ENV_WORKERS and (var.value or "").strip().isdigit():
            workers = max(1, int((var.value or "").strip()))
    return f"{(workers + SPOOL_SPARE_RINGS) * SPOOL_MIB_PER_RING}Mi"


def _baseline_pvc_volume_name(model: ModelFacts, model_pvc_volume: str) -> str | None:
    claim = pvc_claim(model.baseline_uri or "")
    if claim is None:
        return None
    # One claim, one volume: the model's claim volume is reused when the baseline sits beside it.
    return model_pvc_volume if claim == pvc_claim(model.uri) else BASELINE_PVC_VOLUME


def baseline_initializer(
    model: ModelFacts, config: OperatorConfig, resources: dict[str, Any], model_pvc_volume: str
) -> dict[str, Any]:
    """Init container: fetch the baseline profile into the drift volume, verified by digest."""
    return initializer_container(
        name=BASELINE_INITIALIZER,
        uri=model.baseline_uri or "",
        digest=model.baseline_digest,
        volume=BASELINE_VOLUME,
        dest=c.DRIFT_BASELINE_DIR,
        config=config,
        resources=resources,
        pvc_volume=_baseline_pvc_volume_name(model, model_pvc_volume),
    )


def drift_volumes(
    dep: OnlineDeployment, model: ModelFacts, model_pvc_volume: str
) -> list[dict[str, Any]]:
    """The emptyDir of the profile, the memory-backed spool (a tmpfs the size of the rings, so
    a full one fails a write rather than evicting the pod), plus the baseline's own claim
    when it differs."""
    volumes: list[dict[str, Any]] = [
        {"name": BASELINE_VOLUME, "emptyDir": {}},
        {"name": SPOOL_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": spool_limit(dep)}},
    ]
    claim = pvc_claim(model.baseline_uri or "")
    if claim and _baseline_pvc_volume_name(model, model_pvc_volume) == BASELINE_PVC_VOLUME:
        volumes.append(pvc_volume(BASELINE_PVC_VOLUME, claim))
    return volumes


def sidecar_env(dep: OnlineDeployment) -> list[dict[str, Any]]:
    """Profile directory (the sidecar picks the one .json in it), the spool it drains, window,
    feature subset and the container's memory limit, which sizes the sidecar's queued-payload
    byte budget."""
    env = {c.ENV_DRIFT_PROFILE: c.DRIFT_BASELINE_DIR, c.ENV_DRIFT_SPOOL_DIR: c.DRIFT_SPOOL_DIR}
    if dep.drift is not None and dep.drift.window_size is not None:
        env[c.ENV_DRIFT_WINDOW_SIZE] = str(dep.drift.window_size)
    if dep.drift is not None and dep.drift.features:
        env[c.ENV_DRIFT_FEATURES] = ",".join(dep.drift.features)
    return [*env_list(env), memory_limit_env(DRIFT_CONTAINER)]


def drift_sidecar(dep: OnlineDeployment, config: OperatorConfig) -> dict[str, Any]:
    """The drift sidecar container: ingest + summary port, and a metrics port for Prometheus."""
    return {
        "name": DRIFT_CONTAINER,
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "drift-sidecar"],
        "args": [
            "--port",
            str(config.drift_port),
            "--metrics-port",
            str(c.DRIFT_METRICS_PORT),
        ],
        "env": sidecar_env(dep),
        "ports": [
            {"name": DRIFT_PORT_NAME, "containerPort": config.drift_port, "protocol": "TCP"},
            {
                "name": DRIFT_METRICS_PORT_NAME,
                "containerPort": c.DRIFT_METRICS_PORT,
                "protocol": "TCP",
            },
        ],
        # No readiness probe: drift monitoring must never take a replica out of the Service.
        "livenessProbe": http_probe("/healthz", port=DRIFT_PORT_NAME, period=10),
        "securityContext": container_security_context(config.run_as_user),
        "volumeMounts": [
            {"name": BASELINE_VOLUME, "mountPath": c.DRIFT_BASELINE_DIR, "readOnly": True},
            spool_mount(),
            tmp_mount(),
        ],
        "resources": SIDECAR_RESOURCES,
    }
