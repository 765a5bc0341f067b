"""deploy against an SSA-faithful in-memory API: the new deployment copies the serving one's
settings, canary weights scale the others to exactly 100, mirrors leave traffic alone, re-entry
applies nothing, a concurrent change is recomputed, and Done waits for the endpoint status."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.pipeline_outcome import Done, Failed, StepResult, Waiting
from mlkube.contract import API_VERSION
from mlkube.controllers.pipeline_builtin import run_builtin
from mlkube.reconcile.traffic_shares import scaled_traffic
from support.pipeline_builtin import NS, SsaFakeKube, fake, run_obj

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
KEY = (API_VERSION, "OnlineEndpoint", NS, "credit")
NEW = "credit-risk-v5"


def cluster(traffic: dict[str, int] | None = None, baseline: bool = False) -> SsaFakeKube:
    kube = fake(ssa=True)
    assert isinstance(kube, SsaFakeKube)
    spec: dict[str, Any] = {"modelName": "credit-risk", "version": "5", "framework": "sklearn",
                            "artifact": {"uri": "s3://m/v5/"}}  # fmt: skip
    if baseline:
        spec["baseline"] = {"uri": "s3://m/v5.baseline/"}
    kube.put({"apiVersion": API_VERSION, "kind": "Model",
              "metadata": {"name": NEW, "namespace": NS}, "spec": spec})  # fmt: skip
    blue = {"name": "blue", "model": "credit-risk-v3", "replicas": 3,
            "resources": {"limits": {"cpu": "2"}}, "requestSettings": {"timeoutSeconds": 5},
            "drift": {"enabled": True}}  # fmt: skip
    kube.put({
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": "credit", "namespace": NS},
        "spec": {"deployments": [blue, {"name": "green", "model": "credit-risk-v4"}],
                 "traffic": {"blue": 70, "green": 30} if traffic is None else traffic},
    })  # fmt: skip
    return kube


def registered() -> dict[str, StepResult]:
    return {"register": StepResult("register", "Succeeded", produced_models=(NEW,))}


def step(**deploy: Any) -> dict[str, Any]:
    return {"name": "canary", "type": "deploy",
            "deploy": {"endpoint": "credit", "model": {"step": "register"}, **deploy}}  # fmt: skip


def endpoint(kube: SsaFakeKube) -> dict[str, Any]:
    return kube.stored(*KEY[:2], KEY[3], NS)


def report_ready(kube: SsaFakeKube, ready: int = 3) -> None:
    def change(obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "traffic": spec.get("traffic") or {}, "mirror": spec.get("mirror") or {},
            "deployments": [{"name": d["name"], "model": d["model"], "replicas": 3,
                             "readyReplicas": ready} for d in spec["deployments"]],
        }  # fmt: skip

    kube.mutate(KEY, change)


def test_canary_scales_the_others_copies_settings_and_waits_until_ready() -> None:
    kube = cluster()
    outcome = run_builtin(
        kube, run_obj(), step(canaryWeight=10, runtime="sklearn"), registered(), NOW
    )
    assert isinstance(outcome, Waiting)
    spec = endpoint(kube)["spec"]
    OnlineEndpointSpec.model_validate(spec)  # the CRD's rules: sum 100, keys are deployments
    assert spec["traffic"] == {"blue": 63, "green": 27, NEW: 10}
    assert spec["deployments"][2] == {
        "name": NEW,
        "model": NEW,
        "runtime": "sklearn",
        "replicas": 3,
        "resources": {"limits": {"cpu": "2"}},
        "requestSettings": {"timeoutSeconds": 5},
    }  # fmt: skip  (no drift: the new Model has no baseline)
    assert kube.managers == [f"mlkube-pipeline/{NEW}"]

    report_ready(kube, ready=1)
    still = run_builtin(kube, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert isinstance(still, Waiting) and f"{NEW}: 1/3 replicas ready" in still.message
    report_ready(kube)
    done = run_builtin(kube, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert isinstance(done, Done)
    assert done.message == (
        f"Model {NEW} serves on credit/{NEW} (traffic blue=63, {NEW}=10, green=27)"
    )
    assert kube.written("apply") == [KEY]  # re-entry applied nothing more


def test_drift_settings_are_copied_when_the_model_has_a_baseline() -> None:
    kube = cluster(baseline=True)
    run_builtin(kube, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert endpoint(kube)["spec"]["deployments"][2]["drift"] == {"enabled": True}


def test_drift_comes_from_a_monitored_deployment_when_the_serving_one_has_none() -> None:
    # The sample's shape: blue serves most, unmonitored; green watches drift.
    kube = cluster(baseline=True)
    kube.mutate(KEY, lambda o: o["spec"]["deployments"][0].pop("drift"))
    kube.mutate(
        KEY,
        lambda o: o["spec"]["deployments"][1].update(drift={"enabled": True, "sampleRate": 0.5}),
    )
    run_builtin(kube, run_obj(), step(canaryWeight=10), registered(), NOW)
    added = endpoint(kube)["spec"]["deployments"][2]
    assert added["replicas"] == 3  # scale still from the serving deployment (blue)
    assert added["drift"] == {"enabled": True, "sampleRate": 0.5}
    unmonitored = cluster(baseline=False)
    run_builtin(unmonitored, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert "drift" not in endpoint(unmonitored)["spec"]["deployments"][2]


def test_mirror_leaves_traffic_alone() -> None:
    kube = cluster()
    run_builtin(kube, run_obj(), step(mirrorPercent=25, deployment="shadow"), registered(), NOW)
    spec = endpoint(kube)["spec"]
    OnlineEndpointSpec.model_validate(spec)
    assert spec["traffic"] == {"blue": 70, "green": 30}
    assert spec["mirror"] == {"shadow": 25}
    report_ready(kube)
    done = run_builtin(
        kube, run_obj(), step(mirrorPercent=25, deployment="shadow"), registered(), NOW
    )
    assert isinstance(done, Done) and "mirror 25%" in done.message


def test_first_live_deployment_takes_everything() -> None:
    kube = cluster(traffic={})
    run_builtin(kube, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert endpoint(kube)["spec"]["traffic"] == {NEW: 100}


def test_a_concurrent_change_is_recomputed_not_overwritten() -> None:
    kube = cluster()
    changed = []

    def meanwhile(verb: str, key: tuple[str, str, str, str]) -> None:
        if verb == "apply" and not changed:
            changed.append(key)
            kube.mutate(KEY, lambda obj: obj["spec"].update(traffic={"blue": 50, "green": 50}))

    kube.before.append(meanwhile)
    first = run_builtin(kube, run_obj(), step(canaryWeight=20), registered(), NOW)
    assert isinstance(first, Waiting) and "changed meanwhile" in first.message
    assert endpoint(kube)["spec"]["traffic"] == {"blue": 50, "green": 50}
    run_builtin(kube, run_obj(), step(canaryWeight=20), registered(), NOW)
    assert endpoint(kube)["spec"]["traffic"] == {"blue": 40, "green": 40, NEW: 20}


def test_refusals() -> None:
    gone = run_builtin(fake(ssa=True), run_obj(), step(canaryWeight=10), registered(), NOW)
    assert isinstance(gone, Failed) and gone.reason == "ModelNotFound"
    kube = cluster()
    kube.objects.pop(KEY)
    missing = run_builtin(kube, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert isinstance(missing, Failed) and missing.reason == "EndpointNotFound"
    nothing = run_builtin(cluster(), run_obj(), step(canaryWeight=10),
                          {"register": StepResult("register", "Failed")}, NOW)  # fmt: skip
    assert isinstance(nothing, Failed) and nothing.reason == "ModelNotRegistered"
    live = run_builtin(cluster(), run_obj(), step(mirrorPercent=10, deployment="green"),
                       registered(), NOW)  # fmt: skip
    assert isinstance(live, Failed) and "takes live traffic" in live.message

    full = cluster()
    full.mutate(KEY, lambda obj: obj["spec"]["deployments"].extend(
        {"name": f"d{i}", "model": "credit-risk-v3"} for i in range(14)))  # fmt: skip
    refused = run_builtin(full, run_obj(), step(canaryWeight=10), registered(), NOW)
    assert isinstance(refused, Failed) and "16 deployments already" in refused.message


@pytest.mark.parametrize("seed", range(200))
def test_scaled_traffic_is_integer_proportional_and_sums_to_100(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"d{i}" for i in range(rng.randint(1, 15))]
    cuts = sorted(rng.randint(0, 100) for _ in range(len(names) - 1))
    traffic = {n: b - a for n, a, b in zip(names, [0, *cuts], [*cuts, 100], strict=True)}
    weight = rng.randint(0, 100)
    scaled = scaled_traffic(traffic, "new", weight)
    assert sum(scaled.values()) == 100 and scaled["new"] == weight
    for name, before in traffic.items():
        exact = before * (100 - weight) / 100
        assert abs(scaled[name] - exact) < 1  # largest remainder: never a whole point off
