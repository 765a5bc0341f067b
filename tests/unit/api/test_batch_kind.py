"""BatchEndpoint and BatchJob: Azure ML defaults, CEL rules and their Python mirrors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api import batch as be
from mlkube.api import batch_job as bj
from mlkube.api.batch import (
    BATCH_ENDPOINT,
    BatchDeployment,
    BatchEndpointSpec,
    MiniBatchSize,
    parse_mini_batch_size,
)
from mlkube.api.batch_job import BATCH_JOB, BatchJobSpec, BatchJobStatus
from mlkube.api.crdgen import build_crd, openapi_schema


def _spec_schema(kind: Any) -> Mapping[str, Any]:
    schema: Mapping[str, Any] = openapi_schema(build_crd(kind))["properties"]["spec"]
    return schema


def _messages(node: Mapping[str, Any]) -> list[str]:
    return [rule["message"] for rule in node.get("x-kubernetes-validations", [])]


def _endpoint(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deployments": [{"name": "files", "model": "m-v1"}, {"name": "rows", "model": "m-v2"}],
        "defaultDeployment": "files",
    }
    spec.update(overrides)
    return spec


def _job(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"endpoint": "credit-batch", "input": {"uri": "s3://data/in/"}}
    spec.update(overrides)
    return spec


def test_defaults_are_azure_ml_batch_defaults() -> None:
    deployment = BatchDeployment.model_validate({"name": "d", "model": "m"})
    assert deployment.mini_batch_size == 10
    assert (deployment.instance_count, deployment.max_concurrency_per_instance) == (1, 1)
    assert deployment.error_threshold == -1
    assert (deployment.retry_settings.max_retries, deployment.retry_settings.timeout_seconds) == (
        3,
        30,
    )
    assert deployment.output.action == "appendRow"
    assert (deployment.output.file_name, deployment.output.format) == ("predictions.csv", "csv")
    # ...and the CRD carries them, nested objects included (`default: {}` lets the server fill).
    props = _spec_schema(BATCH_ENDPOINT)["properties"]["deployments"]["items"]["properties"]
    assert props["miniBatchSize"]["default"] == 10
    assert props["errorThreshold"]["default"] == -1
    assert props["retrySettings"]["default"] == {}
    assert props["retrySettings"]["properties"]["timeoutSeconds"]["default"] == 30
    assert props["output"]["default"] == {}
    assert props["output"]["properties"]["fileName"]["default"] == "predictions.csv"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (10, MiniBatchSize(10, "files")),
        ("10", MiniBatchSize(10, "files")),
        ("10000rows", MiniBatchSize(10_000, "rows")),
        (" 5rows", MiniBatchSize(5, "rows")),
    ],
)
def test_parse_mini_batch_size(value: int | str, parsed: MiniBatchSize) -> None:
    assert parse_mini_batch_size(value) == parsed


@pytest.mark.parametrize("value", [0, -1, True, "0", "010", "rows", "10 rows", "1e3", "2000000"])
def test_parse_mini_batch_size_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="miniBatchSize"):
        parse_mini_batch_size(value)


def test_mini_batch_size_is_int_or_string_with_a_rule() -> None:
    props = _spec_schema(BATCH_ENDPOINT)["properties"]["deployments"]["items"]["properties"]
    size = props["miniBatchSize"]
    assert size["x-kubernetes-int-or-string"] is True
    assert size["pattern"] == be.MINI_BATCH_SIZE_PATTERN
    assert _messages(size) == [be.MSG_MINI_BATCH_INT]
    assert re.fullmatch(be.MINI_BATCH_SIZE_PATTERN.strip("^$"), "100000000rows")
    assert not re.fullmatch(be.MINI_BATCH_SIZE_PATTERN.strip("^$"), "0rows")


def test_cel_rules_are_attached_where_they_apply() -> None:
    spec = _spec_schema(BATCH_ENDPOINT)
    assert _messages(spec) == [
        be.MSG_DEFAULT_DEPLOYMENT,
        be.MSG_SCHEDULE_DEPLOYMENT,
        be.MSG_SCHEDULE_NEEDS_DEPLOYMENT,
    ]
    assert spec["properties"]["deployments"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["properties"]["schedules"]["maxItems"] == be.MAX_SCHEDULES
    job = _spec_schema(BATCH_JOB)
    assert _messages(job) == [bj.MSG_SPEC_IMMUTABLE]
    assert _messages(job["properties"]["cancel"]) == [bj.MSG_CANCEL_FINAL]
    for field in ("endpoint", "input", "deployment", "output", "overrides", "resumeFrom"):
        assert _messages(job["properties"][field]) == [bj.MSG_SPEC_IMMUTABLE], field
    assert "suspend" not in job.get("x-kubernetes-validations", [{}])[0]["rule"]
    root = openapi_schema(build_crd(BATCH_JOB))
    assert _messages(root) == [bj.MSG_RESUME_SELF]


def test_printer_columns_and_names() -> None:
    columns = build_crd(BATCH_JOB)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == [
        "Endpoint",
        "Phase",
        "Progress",
        "Failed",
        "Output",
        "Age",
    ]
    assert columns[2] == {
        "name": "Progress",
        "type": "integer",
        "jsonPath": ".status.progress",
        "description": "Percent of mini-batches done",
    }
    names = build_crd(BATCH_ENDPOINT)["spec"]["names"]
    assert (names["plural"], names["shortNames"]) == ("batchendpoints", ["mlbe", "be"])


def test_valid_endpoint_with_schedule() -> None:
    spec = BatchEndpointSpec.model_validate(
        _endpoint(
            schedules=[
                {"name": "nightly", "cron": "0 2 * * *", "input": {"uri": "s3://d/{scheduledTime}"}}
            ]
        )
    )
    (schedule,) = spec.schedules
    assert (schedule.time_zone, schedule.concurrency_policy) == ("UTC", "Forbid")
    assert schedule.starting_deadline_seconds == 3600


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"defaultDeployment": "gpu"}, be.MSG_DEFAULT_DEPLOYMENT),
        (
            {"deployments": [{"name": "a", "model": "m"}, {"name": "a", "model": "n"}]},
            be.MSG_DUPLICATE_DEPLOYMENT,
        ),
        (
            {
                "schedules": [
                    {"name": "s", "cron": "@daily", "input": {"uri": "s3://d/"}, "deployment": "x"}
                ]
            },
            be.MSG_SCHEDULE_DEPLOYMENT,
        ),
        (
            {
                "defaultDeployment": None,
                "schedules": [{"name": "s", "cron": "@daily", "input": {"uri": "s3://d/"}}],
            },
            be.MSG_SCHEDULE_NEEDS_DEPLOYMENT,
        ),
        ({"schedules": [{"name": "s", "cron": "daily", "input": {"uri": "s3://d/"}}]}, "pattern"),
        (
            {"schedules": [{"name": "s", "cron": "0 24 * * *", "input": {"uri": "s3://d/"}}]},
            be.MSG_CRON,
        ),
        (
            {"schedules": [{"name": "s", "cron": "@daily", "input": {"uri": "s3://d/{date}"}}]},
            be.MSG_URI_TEMPLATE,
        ),
        (
            {
                "schedules": [
                    {
                        "name": "s",
                        "cron": "@daily",
                        "input": {"uri": "s3://d/"},
                        "output": {"uri": "s3://o/{scheduledTime:%c}"},
                    }
                ]
            },
            be.MSG_URI_TEMPLATE,
        ),
        ({"deployments": [{"name": "a", "model": "m", "miniBatchSize": 0}]}, "greater than"),
        ({"deployments": [{"name": "a", "model": "m", "miniBatchSize": "9x"}]}, "pattern"),
        ({"deployments": [{"name": "a", "model": "m", "miniBatchSize": True}]}, "string"),
        ({"deployments": [{"name": "a", "model": "m", "miniBatchSize": 2.5}]}, "string"),
        (
            {"deployments": [{"name": "a", "model": "m", "miniBatchSize": "200000000rows"}]},
            be.MSG_MINI_BATCH_ROWS,
        ),
        (
            {"deployments": [{"name": "a", "model": "m", "output": {"fileName": "_mlkube"}}]},
            "pattern",
        ),
        (
            {"deployments": [{"name": "a", "model": "m", "output": {"fileName": "a/b.csv"}}]},
            "pattern",
        ),
        ({"deployments": [{"name": "a", "model": "m", "errorThreshold": -2}]}, "greater than"),
        (
            {"deployments": [{"name": "a", "model": "m", "entrypoint": {"path": "x/../../y"}}]},
            "no '..' segments",
        ),
    ],
)
def test_invalid_endpoints_rejected(overrides: dict[str, Any], message: str) -> None:
    spec = {k: v for k, v in _endpoint(**overrides).items() if v is not None}
    if "deployments" in overrides and "defaultDeployment" not in overrides:
        spec.pop("defaultDeployment")
    with pytest.raises(ValidationError, match=re.escape(message)):
        BatchEndpointSpec.model_validate(spec)


def test_job_defaults_and_overrides() -> None:
    spec = BatchJobSpec.model_validate(_job(overrides={"miniBatchSize": "500rows"}))
    assert (spec.input.type, spec.input.format) == ("folder", "auto")
    assert (spec.suspend, spec.cancel) == (False, False)
    assert spec.overrides is not None and spec.overrides.mini_batch_size == "500rows"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "input": {"uri": "s3://d/", "format": "files"},
                "overrides": {"miniBatchSize": "5rows"},
            },
            bj.MSG_ROWS_NEED_TABULAR,
        ),
        ({"overrides": {"miniBatchSize": "0"}}, "pattern"),
        ({"overrides": {"instanceCount": 0}}, "greater than"),
        ({"input": {"uri": "ftp://d/"}}, "pattern"),
        ({"input": {"uri": "s3://d/", "type": "table"}}, "file"),
        ({"resumeFrom": "Not_A_Name"}, "pattern"),
    ],
)
def test_invalid_jobs_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        BatchJobSpec.model_validate(_job(**overrides))


def test_status_is_bounded_and_dumps_as_a_patch() -> None:
    error = {"miniBatch": 3, "message": "x" * bj.MAX_ERROR_MESSAGE, "item": "in/a.csv"}
    status = BatchJobStatus.model_validate(
        {"phase": "Running", "lastErrors": [error], "items": {"total": 10, "failed": 1}}
    )
    assert status.to_status()["lastErrors"][0]["miniBatch"] == 3
    with pytest.raises(ValidationError):
        BatchJobStatus.model_validate({"lastErrors": [error] * (bj.MAX_LAST_ERRORS + 1)})
    with pytest.raises(ValidationError):
        BatchJobStatus.model_validate({"lastErrors": [{**error, "message": "x" * 1025}]})
    with pytest.raises(ValidationError):
        BatchJobStatus.model_validate({"progress": 101})
    with pytest.raises(ValidationError):
        BatchJobStatus.model_validate({"phase": "Done"})


def test_single_deployment_is_the_default_for_schedules() -> None:
    spec = BatchEndpointSpec.model_validate(
        {
            "deployments": [{"name": "only", "model": "m"}],
            "schedules": [{"name": "s", "cron": "@daily", "input": {"uri": "s3://d/"}}],
        }
    )
    assert spec.resolved_default() == "only"
    assert BatchEndpointSpec.model_validate(_endpoint()).resolved_default() == "files"
    two = _endpoint()
    two.pop("defaultDeployment")
    assert BatchEndpointSpec.model_validate(two).resolved_default() is None
