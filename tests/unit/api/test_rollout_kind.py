"""OnlineEndpoint spec.rollout / status.rollout: the pydantic side of every docs/rollouts.md §1
rule, where each CEL rule lands in the CRD, and the CLI request format (§5).

The same rules against the real API server: tests/integration/test_rollout_crd.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import ValidationError

from mlkube import contract
from mlkube.api import endpoint as ep
from mlkube.api import rollout as ro
from mlkube.api.crdgen import build_crd, openapi_schema
from mlkube.api.endpoint import ONLINE_ENDPOINT, OnlineEndpointSpec, OnlineEndpointStatus
from mlkube.api.rollout_status import (
    RolloutAction,
    RolloutRequest,
    RolloutStatus,
    parse_rollout_request,
)
from support.rollouts import (
    BROKEN,
    aborted_status,
    builtin,
    endpoint_spec,
    metric,
    rollout_status,
    with_rollout,
)

Obj = dict[str, Any]


def _messages(node: Mapping[str, Any]) -> list[str]:
    return [rule["message"] for rule in node.get("x-kubernetes-validations", [])]


@pytest.fixture(scope="module")
def schema() -> Mapping[str, Any]:
    result: Mapping[str, Any] = openapi_schema(build_crd(ONLINE_ENDPOINT))
    return result


def test_the_documented_example_is_valid_with_defaults() -> None:
    spec = OnlineEndpointSpec.model_validate(endpoint_spec())
    rollout = spec.rollout
    assert rollout is not None
    assert (rollout.stable, rollout.candidate, len(rollout.steps)) == ("blue", "green", 6)
    assert [s.describe() for s in rollout.steps] == [
        "setWeight 10", "analysis errors, p99", "setMirror 50", "pause 2m", "setWeight 50",
        "analysis errors",
    ]  # fmt: skip
    p99 = rollout.metric("p99")
    assert p99 is not None
    assert (p99.interval, p99.count, p99.failure_limit, p99.inconclusive_limit) == ("30s", 1, 0, 0)
    assert (p99.consecutive_error_limit, p99.no_data_policy, p99.min_sample_count) == (
        4, "Inconclusive", 1,
    )  # fmt: skip
    web = rollout.metric("web")
    assert web is not None and web.provider.web is not None
    assert web.provider.web.timeout == "5s"
    assert rollout.metric("ghost") is None
    assert ro.RolloutStep(pause=ro.RolloutPause()).describe() == "pause (until promote)"
    # Round trip: the wire form is camelCase and validates again unchanged.
    wire = spec.model_dump(mode="json", exclude_unset=True)
    assert wire["rollout"]["backgroundAnalysis"] == {"metrics": ["errors"], "startingStep": 1}
    assert OnlineEndpointSpec.model_validate(wire) == spec


@pytest.mark.parametrize(("spec", "message"), BROKEN, ids=[f"{i}" for i in range(len(BROKEN))])
def test_each_rule_is_enforced_by_pydantic(spec: Obj, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        OnlineEndpointSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.update(steps=[]), "steps"),
        (lambda r: r.update(steps=[{"setWeight": 1}] * 33), "steps"),
        (lambda r: r.update(metrics=[{**r["metrics"][0], "name": f"m{i}"} for i in range(17)]),
         "metrics"),
        (lambda r: r["steps"][0].update(setWeight=101), "setWeight"),
        (metric("errors", noDataPolicy="Pass"), "noDataPolicy"),
        (metric("errors", minSampleCount=0), "minSampleCount"),
        (builtin("p99", quantile=1.0), "quantile"),
        (builtin("errors", type="accuracy"), "type"),
        (metric("prom", provider={"prometheus": {"address": "ftp://x", "query": "up"}}),
         "address"),
        (metric("web", provider={"web": {"url": "http://x/", "jsonPath": "data.v"}}), "jsonPath"),
        (metric("errors", successCondition=""), "successCondition"),
        (lambda r: r.update(abortScaleDownDelay="10 minutes"), "abortScaleDownDelay"),
    ],
)  # fmt: skip
def test_bounds_and_enums(change: Callable[[Obj], Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        OnlineEndpointSpec.model_validate(with_rollout(change))


def test_intervals_of_a_second_or_more_are_valid() -> None:
    for interval in ("1s", "10s", "1m", "1h30m", "1d", "0m1s"):
        spec = OnlineEndpointSpec.model_validate(with_rollout(metric("errors", interval=interval)))
        assert spec.rollout is not None and spec.rollout.metrics[0].interval == interval


def test_an_endpoint_without_rollout_is_unchanged() -> None:
    spec = OnlineEndpointSpec.model_validate({"deployments": [{"name": "a", "model": "m"}]})
    assert spec.rollout is None
    assert "rollout" not in spec.model_dump(mode="json", exclude_unset=True)


def test_cel_rules_sit_where_they_apply(schema: Mapping[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert _messages(spec)[-4:] == [
        ep.MSG_ROLLOUT_STABLE, ep.MSG_ROLLOUT_CANDIDATE, ep.MSG_ROLLOUT_CANDIDATE_WEIGHT,
        ep.MSG_ROLLOUT_ROUTER_METRICS,
    ]  # fmt: skip
    rollout = spec["properties"]["rollout"]
    assert _messages(rollout) == [
        ro.MSG_STABLE_IS_CANDIDATE, ro.MSG_METRIC_NAMES_UNIQUE, ro.MSG_ANALYSIS_METRICS,
        ro.MSG_BACKGROUND_METRICS, ro.MSG_STARTING_STEP,
    ]  # fmt: skip
    props = rollout["properties"]
    assert _messages(props["steps"]["items"]) == [ro.MSG_STEP_ONE]
    metric = props["metrics"]["items"]
    assert _messages(metric) == [ro.MSG_LIMITS]
    assert _messages(metric["properties"]["interval"]) == [ro.MSG_INTERVAL]
    provider = metric["properties"]["provider"]
    assert _messages(provider) == [ro.MSG_PROVIDER_ONE]
    assert _messages(provider["properties"]["builtin"]) == [
        ro.MSG_QUANTILE, ro.MSG_AGREEMENT_COMPARE,
    ]  # fmt: skip
    # Bounded lists: what keeps the cross-list rules inside the CEL cost budget.
    assert (props["steps"]["maxItems"], props["metrics"]["maxItems"]) == (32, 16)
    analysis = props["steps"]["items"]["properties"]["analysis"]["properties"]["metrics"]
    assert (analysis["maxItems"], analysis["items"]["maxLength"]) == (16, 63)
    assert metric["properties"]["successCondition"]["maxLength"] == ro.MAX_CONDITION
    # Defaults the API server fills in.
    assert metric["properties"]["interval"]["default"] == "30s"
    assert metric["properties"]["consecutiveErrorLimit"]["default"] == 4
    assert metric["properties"]["noDataPolicy"]["default"] == "Inconclusive"
    assert props["abortScaleDownDelay"]["default"] == "30s"


def test_status_schema_and_printer_column(schema: Mapping[str, Any]) -> None:
    rollout = schema["properties"]["status"]["properties"]["rollout"]["properties"]
    assert rollout["phase"]["enum"] == ["Progressing", "Paused", "Promoted", "Aborted"]
    measurement = rollout["metrics"]["items"]["properties"]["measurements"]
    assert measurement["maxItems"] == 5
    assert measurement["items"]["properties"]["phase"]["enum"] == [
        "Successful", "Failed", "Inconclusive", "Error", "NoData",
    ]  # fmt: skip
    columns = build_crd(ONLINE_ENDPOINT)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert {"name": "Rollout", "type": "string", "jsonPath": ".status.rollout.phase",
            "description": "Rollout phase"} in columns  # fmt: skip


def test_status_models_read_what_the_operator_writes() -> None:
    status = OnlineEndpointStatus.model_validate({"rollout": aborted_status()})
    rollout = status.rollout
    assert rollout is not None and rollout.abort is not None
    assert (rollout.phase, rollout.abort.metric, rollout.abort.value) == ("Aborted", "errors", 0.12)
    errors = rollout.metrics[0]
    assert (errors.phase, errors.count, errors.failed) == ("Failed", 3, 1)
    assert [m.phase for m in errors.measurements] == ["Successful", "Successful", "Failed"]
    assert rollout.metrics[2].background
    # to_status writes only what was set: the operator's merge patch.
    assert RolloutStatus.model_validate(rollout_status()).to_status() == rollout_status()
    with pytest.raises(ValidationError, match="phase"):
        RolloutStatus.model_validate(rollout_status(phase="Running"))
    with pytest.raises(ValidationError, match="reason"):
        RolloutStatus.model_validate(rollout_status(reason="not camel case"))


def test_request_annotation_round_trip() -> None:
    assert get_args(RolloutAction) == contract.ROLLOUT_ACTIONS
    assert contract.ANNOTATION_ROLLOUT_REQUEST == "mlkube.dev/rollout-request"
    request = RolloutRequest(action="promote-full", id="0b8f", revision="sha256:ab")
    text = request.to_annotation()
    assert text == '{"action":"promote-full","id":"0b8f","revision":"sha256:ab"}'
    assert parse_rollout_request(text) == request


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "invalid rollout request"),
        ('{"action":"skip","id":"1","revision":"r"}', "action"),
        ('{"action":"abort","revision":"r"}', "id: Field required"),
        ('{"action":"abort","id":"","revision":"r"}', "id"),
        ('{"action":"abort","id":"1","revision":"r","force":true}', "force"),
        ('{"action":"abort","id":"' + "x" * 2000 + '","revision":"r"}', "larger than 1024"),
    ],
)
def test_bad_requests_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_rollout_request(text)


@pytest.mark.parametrize(
    ("doc", "heading"),
    [("rollouts.md", "## 1. The API"), ("online-endpoints.md", "## Progressive")],
)
def test_the_docs_examples_are_valid(doc: str, heading: str) -> None:
    text = (Path(__file__).parents[3] / "docs" / doc).read_text()
    example = yaml.safe_load(text.split(heading, 1)[1].split("```yaml", 1)[1].split("```", 1)[0])
    rollout = OnlineEndpointSpec.model_validate(example["spec"]).rollout
    assert rollout is not None and rollout.candidate == "green" and rollout.steps
