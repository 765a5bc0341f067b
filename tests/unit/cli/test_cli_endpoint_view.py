"""`mlkube endpoint` pure helpers: split arguments, map merge patches, manifests, rendering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from mlkube.cli import endpoint_view as view
from mlkube.cli.errors import CliError
from mlkube.cli.main import build_parser
from support.rollouts import endpoint, metric, with_rollout

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_parse_split() -> None:
    assert view.parse_split("blue=70,green=30", "--traffic") == {"blue": 70, "green": 30}
    assert view.parse_split(" blue = 100 ", "--traffic") == {"blue": 100}
    assert view.parse_split("none", "--mirror") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blue:70", "NAME=PERCENT"),
        ("blue=seventy", "not an integer"),
        ("blue=170", "between 0 and 100"),
        ("blue=50,blue=50", "twice"),
        ("=5", "NAME=PERCENT"),
    ],
)
def test_parse_split_errors(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        view.parse_split(text, "--traffic")


def test_split_patch_removes_keys_with_null() -> None:
    assert view.split_patch({"blue": 70, "green": 30}, {"blue": 100}) == {
        "green": None,
        "blue": 100,
    }
    assert view.split_patch({}, {"green": 10}) == {"green": 10}


MANIFEST = """
apiVersion: mlkube.dev/v1alpha1
kind: OnlineEndpoint
metadata: {name: credit}
spec:
  deployments: [{name: blue, model: credit-risk-v3}]
  traffic: {blue: 100}
"""


def test_read_manifests_places_and_validates() -> None:
    (doc,) = view.read_manifests(MANIFEST, "ml")
    assert doc["metadata"] == {"name": "credit", "namespace": "ml"}
    explicit = MANIFEST.replace("{name: credit}", "{name: credit, namespace: other}")
    assert view.read_manifests(explicit, "ml")[0]["metadata"]["namespace"] == "other"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no objects"),
        ("kind: Model\napiVersion: mlkube.dev/v1alpha1\n", "expected kind OnlineEndpoint"),
        (MANIFEST.replace("{blue: 100}", "{blue: 90}"), "sum to 100"),
        (MANIFEST.replace("v1alpha1", "v1"), "expected apiVersion"),
        ("a: [", "not valid YAML"),
    ],
)
def test_read_manifests_errors(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        view.read_manifests(text, "ml")


def _endpoint() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "credit",
            "namespace": "ml",
            "creationTimestamp": "2026-01-01T11:00:00Z",
        },
        "spec": {
            "deployments": [
                {"name": "blue", "model": "credit-risk-v3"},
                {"name": "green", "model": "credit-risk-v4"},
            ],
            "traffic": {"blue": 50, "green": 50},
            "auth": {"mode": "key"},
        },
        "status": {
            "url": "http://credit.ml.svc.cluster.local",
            "traffic": {"blue": 70, "green": 30},
            "deployments": [{"name": "blue", "readyReplicas": 2, "replicas": 2}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing"}],
            "message": "waiting for green (0/1 ready)",
        },
    }


def test_render_details() -> None:
    text = view.render_details(_endpoint(), NOW)
    assert text.splitlines() == [
        "Name:       credit",
        "Namespace:  ml",
        "URL:        http://credit.ml.svc.cluster.local",
        "Ready:      False (Progressing)",
        "Auth:       key",
        "Backend:    router",
        "Traffic:    blue=50 green=50  (applied: blue=70 green=30)",
        "Mirror:     (none)",
        "Age:        60m",
        "Deployments:",
        "  blue         model=credit-risk-v3  ready=2/2",
        "  green        model=credit-risk-v4  ready=0/?",
        "Message:    waiting for green (0/1 ready)",
    ]


def test_render_table() -> None:
    assert view.render_table([_endpoint()], NOW).splitlines() == [
        "NAME    READY  TRAFFIC           URL                                 AGE",
        "credit  False  blue=70 green=30  http://credit.ml.svc.cluster.local  60m",
    ]


def test_the_endpoint_group_is_registered() -> None:
    args = build_parser().parse_args(
        ["endpoint", "update", "credit", "--traffic", "blue=70,green=30", "-n", "ml"]
    )
    assert (args.group, args.verb, args.name, args.namespace) == (
        "endpoint",
        "update",
        "credit",
        "ml",
    )
    args = build_parser().parse_args(
        ["endpoint", "invoke", "credit", "--request-file", "r.json", "--deployment", "green"]
    )
    assert (args.path, args.protocol) == (None, "auto")  # the route follows the body
    assert args.deployment == "green"


def test_show_includes_the_drift_verdict() -> None:
    from datetime import UTC, datetime

    from mlkube.cli.endpoint_view import render_details

    obj = {
        "metadata": {"name": "credit", "namespace": "ns"},
        "spec": {"deployments": [{"name": "blue", "model": "m-v1"}], "traffic": {"blue": 100}},
        "status": {"deployments": [{"name": "blue", "readyReplicas": 1, "replicas": 1, "drift": {
            "detected": True, "driftedFeatures": 2, "evaluatedFeatures": 4, "samples": 200,
            "windowSize": 200, "replicasReporting": 1, "reason": "Evaluated",
            "topFeatures": [{"name": "x0", "method": "wasserstein", "score": 0.42,
                             "threshold": 0.1}]}}]},
    }  # fmt: skip
    text = render_details(obj, datetime.now(UTC))
    assert "drift: DRIFT (2/4 features, window 200/200, 1 replicas, Evaluated)" in text
    assert "top: x0 wasserstein 0.420/0.100" in text


def test_render_details_shows_why_pods_fail() -> None:
    obj = _endpoint()
    why = "init container storage-initializer CrashLoopBackOff (exited 3: error: digest mismatch)"
    obj["status"]["deployments"] = [
        {"name": "blue", "model": "credit-risk-v3", "readyReplicas": 0, "replicas": 1,
         "message": why},
    ]  # fmt: skip
    lines = view.render_details(obj, NOW).splitlines()
    blue = lines.index("  blue         model=credit-risk-v3  ready=0/1")
    assert lines[blue + 1] == f"    pods: {why}"


def test_a_rollout_condition_that_does_not_compile_is_refused_before_the_api() -> None:
    doc = endpoint("credit", "ns")
    doc["spec"] = with_rollout(metric("errors", failureCondition="result >"))
    with pytest.raises(CliError, match="metric errors: condition 'result >' does not compile"):
        view.read_manifests(yaml.safe_dump(doc), "ns")
    doc["spec"] = with_rollout(metric("errors", failureCondition="result > 0"))
    assert view.read_manifests(yaml.safe_dump(doc), "ns")[0]["spec"] == doc["spec"]
