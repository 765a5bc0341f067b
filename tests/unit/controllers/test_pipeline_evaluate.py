"""evaluate against the in-memory API: thresholds, the comparison with the Model serving on an
endpoint (most traffic, or named), the no-baseline pass, and the messages that say why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlkube.builders.pipeline_outcome import Done, Failed
from mlkube.contract import API_VERSION
from mlkube.controllers.pipeline_builtin import run_builtin
from support.fake_kube import FakeKube
from support.pipeline_builtin import DIGEST_MODEL, NS, fake, run_obj, upstream

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
TRAIN_M = {"step": "train", "output": "m"}


def serving_cluster(blue_auc: float | None = 0.90, green_auc: float | None = 0.80) -> FakeKube:
    kube = fake()
    for name, auc in (("credit-risk-v3", blue_auc), ("credit-risk-v4", green_auc)):
        lineage = {"metrics": {"auc": auc}} if auc is not None else {}
        kube.put({
            "apiVersion": API_VERSION, "kind": "Model",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"modelName": "credit-risk", "version": name[-1], "framework": "sklearn",
                     "artifact": {"uri": f"s3://m/{name}/"}, "lineage": lineage},
        })  # fmt: skip
    kube.put({
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": "credit", "namespace": NS},
        "spec": {"deployments": [{"name": "blue", "model": "credit-risk-v3"},
                                 {"name": "green", "model": "credit-risk-v4"}],
                 "traffic": {"blue": 70, "green": 30}},
    })  # fmt: skip
    return kube


def step(metrics: list[dict[str, Any]] | None = None, **compare: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"metrics": metrics or []}
    if compare:
        block["compareWith"] = {"endpoint": "credit", "metric": "auc", "from": TRAIN_M, **compare}
    return {"name": "gate", "type": "evaluate", "evaluate": block}


def test_thresholds_pass_and_fail_with_the_numbers_in_the_message() -> None:
    kube = fake()
    ok = run_builtin(kube, run_obj(), step([{"name": "auc", "from": TRAIN_M, "min": 0.9}]),
                     upstream(auc=0.93), NOW)  # fmt: skip
    assert isinstance(ok, Done)
    assert ok.message == "gate passed: auc 0.93 >= min 0.90"
    assert ok.metrics == {"auc": 0.93}
    low = run_builtin(kube, run_obj(), step([{"name": "auc", "from": TRAIN_M, "min": 0.95,
                                              "max": 0.99}]), upstream(auc=0.93), NOW)  # fmt: skip
    assert isinstance(low, Failed) and low.reason == "GateFailed"
    assert low.message == "gate failed: auc 0.93 < min 0.95"


def test_a_metric_the_step_did_not_record_fails_the_gate() -> None:
    outcome = run_builtin(fake(), run_obj(), step([{"name": "f1", "from": TRAIN_M, "min": 0}]),
                          upstream(auc=0.9), NOW)  # fmt: skip
    assert isinstance(outcome, Failed) and "metric f1 missing from step train" in outcome.message


def test_compares_with_the_deployment_that_has_the_most_traffic() -> None:
    better = run_builtin(serving_cluster(), run_obj(), step(minImprovement=0.01),
                         upstream(auc=0.92), NOW)  # fmt: skip
    assert isinstance(better, Done)
    assert "auc 0.92 >= serving credit-risk-v3 (credit/blue) 0.90 + 0.01" in (better.message)
    worse = run_builtin(serving_cluster(), run_obj(), step(minImprovement=0.03),
                        upstream(auc=0.92), NOW)  # fmt: skip
    assert isinstance(worse, Failed) and worse.reason == "GateFailed"
    assert (
        worse.message == "gate failed: auc 0.92 < serving credit-risk-v3 (credit/blue) 0.90 + 0.03"
    )


def test_named_deployment_and_lower_is_better() -> None:
    lower = step(deployment="green", higherIsBetter=False)
    outcome = run_builtin(serving_cluster(), run_obj(), lower, upstream(auc=0.79), NOW)
    assert isinstance(outcome, Done)
    assert "auc 0.79 <= serving credit-risk-v4 (credit/green) 0.80 - 0.00" in outcome.message
    missing = run_builtin(serving_cluster(), run_obj(), step(deployment="red"), upstream(), NOW)
    assert isinstance(missing, Failed) and missing.reason == "DeploymentNotFound"


def test_no_baseline_metric_passes_and_says_so() -> None:
    outcome = run_builtin(
        serving_cluster(blue_auc=None), run_obj(), step(minImprovement=0), upstream(auc=0.5), NOW
    )
    assert isinstance(outcome, Done)
    assert "auc 0.50: no baseline (serving credit-risk-v3 (credit/blue) has no auc metric)" in (
        outcome.message
    )


def test_missing_endpoint_fails_and_no_live_traffic_passes() -> None:
    gone = run_builtin(fake(), run_obj(), step(minImprovement=0), upstream(), NOW)
    assert isinstance(gone, Failed) and gone.reason == "EndpointNotFound"
    kube = serving_cluster()
    kube.mutate((API_VERSION, "OnlineEndpoint", NS, "credit"),
                lambda obj: obj["spec"].update(traffic={}))  # fmt: skip
    idle = run_builtin(kube, run_obj(), step(minImprovement=0), upstream(), NOW)
    assert (
        isinstance(idle, Done)
        and "no baseline (endpoint credit serves no live traffic)" in idle.message
    )


def test_a_candidate_already_serving_is_not_compared_with_itself() -> None:
    # A rerun after the pipeline's own canary took all live traffic: the serving Model is the
    # artifact train produced (again, from the cache), so there is nothing to beat.
    kube = serving_cluster(blue_auc=0.91)
    kube.mutate((API_VERSION, "Model", NS, "credit-risk-v3"),
                lambda obj: obj.update(status={"phase": "Ready",
                                               "artifact": {"digest": DIGEST_MODEL}}))  # fmt: skip
    rerun = run_builtin(kube, run_obj(), step(minImprovement=0.01), upstream(auc=0.91), NOW)
    assert isinstance(rerun, Done), rerun
    assert rerun.message == (
        "gate passed: auc 0.91: no baseline (serving credit-risk-v3 (credit/blue) is this"
        f" candidate: the same artifact {DIGEST_MODEL})"
    )
    other = serving_cluster(blue_auc=0.91)
    beaten = run_builtin(other, run_obj(), step(minImprovement=0.01), upstream(auc=0.91), NOW)
    assert isinstance(beaten, Failed) and "auc 0.91 < serving credit-risk-v3" in beaten.message
