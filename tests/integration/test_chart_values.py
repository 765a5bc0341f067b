"""Every operator setting the chart offers reaches the operator Deployment's env in a form the
operator parses (the settings used to have no values; `logLevel` was never used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.operator_config import parse_operator_config, pipeline_store
from mlkube.handlers.main import log_flags
from support.helm import by_kind, helm_binary, render_chart


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
