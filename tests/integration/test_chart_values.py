"""Every operator setting the chart offers reaches the operator Deployment's env in a form the
operator parses (the settings used to have no values; `logLevel` was never used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.operator_config import parse_operator_config, pipeline_store
from mlkube.handlers.main import log_flags
from mlkube.k8s import ApiError, Kube
from support.helm import by_kind, helm_binary, render_chart
from support.waiting import wait_for


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_defaults_reach_the_operator_and_match_its_own(helm: Path) -> None:
    env = operator_env(render_chart(helm, "ops"))
    assert env["MLKUBE_LOG_LEVEL"] == "info"
    assert "MLKUBE_ARTIFACT_STORES" not in env and "MLKUBE_POD_NETWORKS" not in env
    from_chart = parse_operator_config({**env, "KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    built_in = parse_operator_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    for field in ("artifact_max_bytes", "artifact_max_files", "artifact_timeout",
                  "artifact_stores", "artifact_internal_networks", "pod_networks",
                  "verify_workers"):  # fmt: skip
        assert getattr(from_chart, field) == getattr(built_in, field), field
    assert env["MLKUBE_LIVENESS_MAX_AGE_SECONDS"] == "180"


def test_every_artifact_and_network_value_is_wired(helm: Path) -> None:
    env = operator_env(render_chart(helm, "ops", [
        "artifacts.stores.team-a={s3://models/team-a,https://models.example.com/a}",
        "artifacts.stores.\\*={s3://shared}",
        "artifacts.internalNetworks={10.0.0.0/8,100.64.0.0/10}",
        "artifacts.maxBytes=512Mi", "artifacts.maxFiles=1000000",
        "artifacts.timeoutSeconds=120", "artifacts.verifyWorkers=4",
        "podNetworks={10.88.0.0/16}", "logLevel=debug", "livenessMaxAgeSeconds=60",
    ]))  # fmt: skip
    config = parse_operator_config(env)
    assert config.artifact_stores == (
        ("*", ("s3://shared",)),
        ("team-a", ("s3://models/team-a", "https://models.example.com/a")),
    )
    assert config.artifact_internal_networks == ("10.0.0.0/8", "100.64.0.0/10")
    assert (config.artifact_max_bytes, config.artifact_max_files) == (512 * 1024**2, 1_000_000)
    assert (config.artifact_timeout, config.verify_workers) == (120.0, 4)
    assert config.pod_networks == ("10.88.0.0/16",)
    assert env["MLKUBE_LOG_LEVEL"] == "debug" and log_flags(env["MLKUBE_LOG_LEVEL"])["debug"]
    assert env["MLKUBE_LIVENESS_MAX_AGE_SECONDS"] == "60"


def test_batch_values_are_wired(helm: Path) -> None:
    assert "MLKUBE_BATCH_OUTPUT_STORE" not in operator_env(render_chart(helm, "ops"))
    values = [
        "batch.outputStore=s3://batch/jobs/",
        "batch.podAnnotations.example\\.com/team=ml",
        "batch.podAnnotations.replicas=2",
    ]
    config = parse_operator_config(operator_env(render_chart(helm, "ops", values)))
    assert config.batch_output_store == "s3://batch/jobs"
    assert config.batch_pod_annotations == (("example.com/team", "ml"), ("replicas", "2"))


def test_pipeline_artifact_store_is_wired(helm: Path) -> None:
    assert "MLKUBE_ARTIFACT_STORE" not in operator_env(render_chart(helm, "ops"))
    values = ["pipelines.artifactStore=s3://ml/pipelines/", "batch.outputStore=s3://batch/jobs"]
    config = parse_operator_config(operator_env(render_chart(helm, "ops", values)))
    assert config.artifact_store == "s3://ml/pipelines"
    assert pipeline_store(config) == "s3://ml/pipelines"


def test_an_unknown_log_level_fails_the_render(helm: Path) -> None:
    with pytest.raises(AssertionError, match="logLevel"):
        render_chart(helm, "ops", ["logLevel=loud"])


def _volume(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == name]
    assert mount["mountPath"] == "/var/lib/mlkube"
    (volume,) = [v for v in pod["volumes"] if v["name"] == name]
    return dict(volume)


def test_notification_values_are_wired_and_default_like_the_operator(helm: Path) -> None:
    objects = render_chart(helm, "ops")
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    from_chart = parse_operator_config({**operator_env(objects), **in_pod}).notifications
    assert from_chart == parse_operator_config(in_pod).notifications
    assert from_chart.outbox_path == "/var/lib/mlkube/outbox.db"
    # The outbox survives container restarts (emptyDir), not pod deletion, by default.
    assert _volume(objects, "outbox") == {"name": "outbox", "emptyDir": {}}
    assert not by_kind(objects, "PersistentVolumeClaim")
    values = ["notifications.sink.uri=https://events.example.com/in",
              "notifications.sink.format=azureml", "notifications.sink.mode=structured",
              "notifications.replayWindow=1h", "notifications.maxEvents=5000"]  # fmt: skip
    config = parse_operator_config({**operator_env(render_chart(helm, "ops", values)), **in_pod})
    sink = config.notifications.default_sink
    assert sink is not None and (sink.uri, sink.format, sink.mode) == (
        "https://events.example.com/in", "azureml", "structured",
    )  # fmt: skip
    assert (config.notifications.replay_window, config.notifications.outbox_max_events) == (
        3600.0, 5000,
    )  # fmt: skip


def test_outbox_persistence_is_a_kept_claim(helm: Path) -> None:
    values = ["replicas=1", "notifications.persistence.enabled=true",
              "notifications.persistence.size=2Gi",
              "notifications.persistence.storageClassName=fast"]  # fmt: skip
    objects = render_chart(helm, "ops", values)
    (claim,) = by_kind(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "mlkube-outbox"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": "2Gi"}}}  # fmt: skip
    assert _volume(objects, "outbox")["persistentVolumeClaim"] == {"claimName": "mlkube-outbox"}
    # A claim of your own: mounted, none created.
    objects = render_chart(helm, "ops", [*values, "notifications.persistence.existingClaim=mine"])
    assert not by_kind(objects, "PersistentVolumeClaim")
    assert _volume(objects, "outbox")["persistentVolumeClaim"] == {"claimName": "mine"}


def test_outbox_claim_with_replicas_needs_read_write_many(helm: Path) -> None:
    """Every replica mounts the volume (only the leader opens the outbox): a ReadWriteOnce claim
    would keep the standby (or a rolling update) from starting on another node."""
    with pytest.raises(AssertionError, match="ReadWriteMany"):
        render_chart(helm, "ops", ["replicas=2", "notifications.persistence.enabled=true"])
    objects = render_chart(
        helm,
        "ops",
        [
            "replicas=2",
            "notifications.persistence.enabled=true",
            "notifications.persistence.accessModes={ReadWriteMany}",
        ],
    )
    (claim,) = by_kind(objects, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}  # fmt: skip


@pytest.mark.parametrize("persistence", [False, True])
def test_operator_pod_with_its_outbox_volume_passes_pod_security_restricted(
    helm: Path, kube: Kube, namespace: str, persistence: bool
) -> None:
    """The real API server's PodSecurity admission judges the operator's pod template, its
    outbox volume (emptyDir or claim) and fsGroup included."""
    kube.patch("v1", "Namespace", namespace, {"metadata": {"labels": RESTRICTED}})
    values = ["replicas=1", f"notifications.persistence.enabled={str(persistence).lower()}"]
    (deployment,) = by_kind(render_chart(helm, namespace, values), "Deployment")
    template = deployment["spec"]["template"]
    spec = {k: v for k, v in template["spec"].items() if k != "serviceAccountName"}
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": spec,
           "metadata": {"name": "operator", "namespace": namespace}}  # fmt: skip
    wait_for(lambda: kube.get("v1", "ServiceAccount", "default", namespace), what="default SA")
    created = kube.create(pod)
    assert created["spec"]["securityContext"]["fsGroup"] == 65532
    root = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": namespace},
            "spec": {**spec, "securityContext": {}}}  # fmt: skip
    with pytest.raises(ApiError) as refused:  # the profile is really enforced here
        kube.create(root)
    assert refused.value.status == 403 and "restricted" in str(refused.value)
