"""B9/B11 builders: bounded model volume, byte budgets from memory limits, config hash check."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mlkube import contract as c
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import (
    build_router_config,
    build_router_configmap,
    router_byte_budgets,
    router_config_hash,
)
from mlkube.builders.endpoint_server import (
    DEFAULT_MODEL_VOLUME_LIMIT,
    build_server_deployment,
    model_volume_limit,
)
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.router_config import traffic_applied
from mlkube_serving.router.config import load_config

MiB = 1024 * 1024


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def test_model_volume_is_sized_from_the_verified_artifact(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    sized = dataclasses.replace(models["credit-risk-v3"], size=400 * MiB)
    got = build_server_deployment(owner, spec.deployments[0], sized, config)
    model_volume = next(v for v in pod(got)["volumes"] if v["name"] == "model")
    assert model_volume == {"name": "model", "emptyDir": {"sizeLimit": "564Mi"}}  # 400*1.25+64
    assert model_volume_limit(dataclasses.replace(sized, size=0)) == "64Mi"


def test_model_volume_without_a_recorded_size_gets_the_default(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    got = build_server_deployment(owner, spec.deployments[0], models["credit-risk-v3"], config)
    model_volume = next(v for v in pod(got)["volumes"] if v["name"] == "model")
    assert model_volume["emptyDir"] == {"sizeLimit": DEFAULT_MODEL_VOLUME_LIMIT}


def test_read_model_carries_the_verified_size() -> None:
    obj = {
        "metadata": {"generation": 1},
        "spec": {"modelName": "m", "version": "1", "artifact": {"uri": "s3://b/m"}},
        "status": {
            "observedGeneration": 1,
            "artifact": {"digest": "sha256:" + "0" * 64, "size": 1234},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    facts = read_model("m", obj)
    assert isinstance(facts, ModelFacts) and facts.size == 1234
    obj["status"]["artifact"]["size"] = "lots"
    facts = read_model("m", obj)
    assert isinstance(facts, ModelFacts) and facts.size is None


def test_server_learns_its_memory_limit_only_when_one_is_set(
    owner: EndpointRef, make_spec: Any, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    limited = make_spec(
        deployments=[
            {"name": "blue", "model": "credit-risk-v3", "resources": {"limits": {"memory": "2Gi"}}}
        ],
        traffic={"blue": 100},
    )
    got = build_server_deployment(owner, limited.deployments[0], models["credit-risk-v3"], config)
    env = {e["name"]: e for e in pod(got)["containers"][0]["env"]}
    assert env[c.ENV_MEMORY_LIMIT]["valueFrom"] == {
        "resourceFieldRef": {"containerName": "server", "resource": "limits.memory"}
    }
    unlimited = make_spec(
        deployments=[{"name": "blue", "model": "credit-risk-v3"}], traffic={"blue": 100}
    )
    got = build_server_deployment(owner, unlimited.deployments[0], models["credit-risk-v3"], config)
    assert c.ENV_MEMORY_LIMIT not in {e["name"] for e in pod(got)["containers"][0]["env"]}


def test_router_budgets_follow_its_memory_limit(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> None:
    doc = build_router_config(owner, spec, config)
    assert doc["maxInflightBytes"] == 128 * MiB
    assert doc["mirrorMaxBytes"] == 64 * MiB
    assert doc["maxResponseBytes"] == 32 * MiB
    # Together they leave more than half of the 512 Mi limit to the process itself.
    assert sum(router_byte_budgets().values()) <= 256 * MiB


def test_router_hash_of_the_configmap_matches_what_the_router_reports(
    tmp_path: Path, owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> None:
    configmap = build_router_configmap(owner, spec, config)
    path = tmp_path / c.ROUTER_CONFIG_FILE
    path.write_text(configmap["data"][c.ROUTER_CONFIG_FILE])  # what the kubelet mounts
    loaded = load_config(path)
    assert loaded.source_hash == router_config_hash(owner, spec, config)
    assert loaded.mirror_max_bytes == 64 * MiB and loaded.max_inflight_bytes == 128 * MiB


def test_traffic_is_applied_only_when_every_router_serves_the_expected_hash() -> None:
    assert traffic_applied("sha256:a", ["sha256:a", "sha256:a"])
    assert not traffic_applied("sha256:a", ["sha256:a", "sha256:old"])
    assert not traffic_applied("sha256:a", ["sha256:a", None])  # a replica not asked
    assert not traffic_applied("sha256:a", [])  # no router observed yet


def test_drift_sidecar_sizes_its_queue_from_its_own_memory_limit(
    make_spec: Any, config: OperatorConfig, monkeypatch: Any
) -> None:
    """The sidecar's container limit reaches it (downward API), so its budget follows it."""
    from mlkube.builders.endpoint_drift import DRIFT_CONTAINER, SIDECAR_RESOURCES, drift_sidecar
    from mlkube_serving._http.budget import derived_budget
    from mlkube_serving.drift.sidecar import parse_args

    spec = make_spec(
        deployments=[{"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": True}}],
        traffic={"blue": 100},
    )
    container = drift_sidecar(spec.deployments[0], config)
    env = {e["name"]: e for e in container["env"]}
    assert env[c.ENV_MEMORY_LIMIT]["valueFrom"] == {
        "resourceFieldRef": {"containerName": DRIFT_CONTAINER, "resource": "limits.memory"}
    }
    assert SIDECAR_RESOURCES["limits"]["memory"]  # the field the reference reads is set
    # What the kubelet would put there for a 256 Mi limit: a sixteenth of it, not 64 MiB.
    monkeypatch.setenv(c.ENV_MEMORY_LIMIT, str(256 * MiB))
    args = parse_args(["--profile", "/p.json"])
    assert args.max_queued_bytes == 16 * MiB == derived_budget(1 / 16, 64 * MiB)
