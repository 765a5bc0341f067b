"""The generated CRDs against the real API server: samples apply, CEL rules bite.

No operator here: these pin down what the API server itself enforces for every client, from the
CRDs in crds/ (applied by the session `crds` fixture through `namespace`).
"""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.batch import (
    MSG_CRON,
    MSG_DEFAULT_DEPLOYMENT,
    MSG_MINI_BATCH_INT,
    MSG_SCHEDULE_DEPLOYMENT,
    MSG_SCHEDULE_NEEDS_DEPLOYMENT,
    MSG_URI_TEMPLATE,
)
from mlkube.api.batch_job import MSG_CANCEL_FINAL, MSG_RESUME_SELF, MSG_SPEC_IMMUTABLE
from mlkube.api.endpoint import (
    MSG_AUTOSCALE_TARGET,
    MSG_LIVE_AND_MIRROR,
    MSG_MIRROR_KEYS,
    MSG_REPLICAS_XOR,
    MSG_TRAFFIC_KEYS,
    MSG_TRAFFIC_SUM,
)
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.crd_checks import rejected, sample

pytestmark = pytest.mark.integration
DIGEST = "sha256:" + "cd" * 32


def _patch_model(kube: Kube, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return kube.patch(API_VERSION, "Model", "credit-risk-v3", {"spec": spec}, namespace)


def test_samples_apply_and_defaults_fill_in(kube: Kube, namespace: str) -> None:
    for file in ("model.yaml", "model-v4.yaml", "onlineendpoint.yaml"):
        created = kube.create(sample(file, namespace))
        assert created["metadata"]["uid"]
    endpoint = kube.get(API_VERSION, "OnlineEndpoint", "credit", namespace)
    assert endpoint is not None
    assert endpoint["spec"]["trafficBackend"] == "router"
    assert endpoint["spec"]["deployments"][0]["runtime"] == "auto"
    assert kube.resource(API_VERSION, "Model") == ("models", True)


def test_model_identity_is_immutable(kube: Kube, namespace: str) -> None:
    kube.create(sample("model.yaml", namespace))
    message = rejected(_patch_model, kube, namespace, {"version": "4"})
    assert "spec.version is immutable: register a new Model object for a new version" in message
    message = rejected(_patch_model, kube, namespace, {"artifact": {"digest": DIGEST}})
    assert "spec.artifact is immutable" in message
    assert "spec.framework is immutable" in rejected(
        _patch_model, kube, namespace, {"framework": "sklearn"}
    )
    updated = _patch_model(kube, namespace, {"description": "descriptions may change"})
    assert updated["spec"]["description"] == "descriptions may change"


def test_model_properties_are_add_only(kube: Kube, namespace: str) -> None:
    kube.create(sample("model.yaml", namespace))
    added = _patch_model(kube, namespace, {"properties": {"approved": "yes"}})
    assert added["spec"]["properties"] == {"owner": "risk-team@example.com", "approved": "yes"}
    assert "add-only" in rejected(_patch_model, kube, namespace, {"properties": {"owner": "x"}})
    assert "add-only" in rejected(_patch_model, kube, namespace, {"properties": {"owner": None}})
    assert "add-only" in rejected(_patch_model, kube, namespace, {"properties": None})


def test_model_baseline_is_set_once(kube: Kube, namespace: str) -> None:
    kube.create(sample("model.yaml", namespace))
    baseline = {"uri": "file:///var/lib/mlkube/baselines/credit-risk/3", "digest": DIGEST}
    assert _patch_model(kube, namespace, {"baseline": baseline})["spec"]["baseline"] == baseline
    changed = {"uri": "file:///var/lib/mlkube/baselines/credit-risk/3b"}
    assert "spec.baseline is immutable" in rejected(
        _patch_model, kube, namespace, {"baseline": changed}
    )
    assert "cannot be removed" in rejected(_patch_model, kube, namespace, {"baseline": None})


def test_model_create_time_rules(kube: Kube, namespace: str) -> None:
    custom = sample("model.yaml", namespace)
    custom["spec"]["framework"] = "custom"
    assert "entrypoint is required" in rejected(kube.create, custom)
    custom["spec"]["entrypoint"] = {"path": "src/../../etc/passwd"}
    assert "no '..' segments" in rejected(kube.create, custom)
    bad_digest = sample("model.yaml", namespace)
    bad_digest["spec"]["artifact"]["digest"] = "md5:abc"
    assert "spec.artifact.digest" in rejected(kube.create, bad_digest)


def test_model_status_subresource(kube: Kube, namespace: str) -> None:
    kube.create(sample("model.yaml", namespace))
    status = {
        "phase": "Ready",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "message": "",
                "lastTransitionTime": "2024-06-01T10:00:00Z",
            }
        ],
        "artifact": {"digest": DIGEST, "size": 10, "fileCount": 1},
    }
    done = kube.patch(
        API_VERSION, "Model", "credit-risk-v3", {"status": status}, namespace, "status"
    )
    assert done["status"]["phase"] == "Ready"
    assert done["metadata"]["generation"] == 1  # status writes do not bump generation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"traffic": {"blue": 70, "green": 20}}, MSG_TRAFFIC_SUM),
        ({"traffic": {"blue": 70, "green": 30, "red": 0}}, MSG_TRAFFIC_KEYS),
        ({"mirror": {"red": 10}}, MSG_MIRROR_KEYS),
        ({"mirror": {"green": 10}}, MSG_LIVE_AND_MIRROR),
        (
            {"deployments": [{"name": "blue", "model": "a"}, {"name": "blue", "model": "b"}]},
            "Duplicate value",
        ),
        (
            {
                "deployments": [
                    {"name": "blue", "model": "a", "replicas": 1},
                    {
                        "name": "green",
                        "model": "b",
                        "replicas": 1,
                        "autoscale": {"maxReplicas": 2, "targetConcurrency": 2},
                    },
                ]
            },
            MSG_REPLICAS_XOR,
        ),
        (
            {
                "deployments": [
                    {"name": "blue", "model": "a"},
                    {
                        "name": "green",
                        "model": "b",
                        "autoscale": {
                            "maxReplicas": 2,
                            "targetConcurrency": 2,
                            "targetCPUUtilization": 50,
                        },
                    },
                ]
            },
            MSG_AUTOSCALE_TARGET,
        ),
    ],
)
def test_endpoint_rules(kube: Kube, namespace: str, change: dict[str, Any], message: str) -> None:
    endpoint = sample("onlineendpoint.yaml", namespace)
    endpoint["spec"].update(change)
    assert message in rejected(kube.create, endpoint)


def test_endpoint_traffic_shift_and_mirror_to_idle_deployment(kube: Kube, namespace: str) -> None:
    kube.create(sample("onlineendpoint.yaml", namespace))
    shifted = kube.patch(
        API_VERSION,
        "OnlineEndpoint",
        "credit",
        {"spec": {"traffic": {"blue": 100, "green": 0}, "mirror": {"green": 20}}},
        namespace,
    )
    assert shifted["spec"]["mirror"] == {"green": 20}


def _batch_endpoint(namespace: str, **spec: Any) -> dict[str, Any]:
    obj = sample("batchendpoint.yaml", namespace)
    obj["spec"].update(spec)
    return obj


def test_batch_samples_apply_with_azure_defaults(kube: Kube, namespace: str) -> None:
    kube.create(sample("batchendpoint.yaml", namespace))
    job = kube.create(sample("batchjob.yaml", namespace))
    endpoint = kube.get(API_VERSION, "BatchEndpoint", "credit-batch", namespace)
    assert endpoint is not None
    files = endpoint["spec"]["deployments"][0]
    assert files["miniBatchSize"] == 10
    assert (files["instanceCount"], files["maxConcurrencyPerInstance"]) == (1, 1)
    assert files["errorThreshold"] == -1
    assert files["retrySettings"] == {"maxRetries": 3, "timeoutSeconds": 30}
    assert files["output"] == {
        "action": "appendRow",
        "fileName": "predictions.csv",
        "format": "csv",
    }
    assert endpoint["spec"]["schedules"][0]["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["input"]["type"] == "folder" and job["spec"]["cancel"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"defaultDeployment": "gpu"}, MSG_DEFAULT_DEPLOYMENT),
        (
            {
                "schedules": [
                    {
                        "name": "n",
                        "cron": "@daily",
                        "input": {"uri": "file:///d"},
                        "deployment": "gpu",
                    }
                ]
            },
            MSG_SCHEDULE_DEPLOYMENT,
        ),
        (
            {
                "defaultDeployment": None,
                "schedules": [{"name": "n", "cron": "@daily", "input": {"uri": "file:///d"}}],
            },
            MSG_SCHEDULE_NEEDS_DEPLOYMENT,
        ),
        ({"deployments": [{"name": "rows", "model": "m", "miniBatchSize": 0}]}, MSG_MINI_BATCH_INT),
        (
            {"schedules": [{"name": "n", "cron": "@daily", "input": {"uri": "file:///d/{day}"}}]},
            MSG_URI_TEMPLATE,
        ),
        (
            {
                "schedules": [
                    {"name": "n", "cron": "*/5 * * * MON-SUN,8", "input": {"uri": "s3://d/"}}
                ]
            },
            MSG_CRON,
        ),
        (
            {
                "schedules": [
                    {
                        "name": "n",
                        "cron": "@daily",
                        "input": {"uri": "file:///d/{scheduledTime:%Y}"},
                        "output": {"uri": "file:///o/{scheduledTime:%x}"},
                    }
                ]
            },
            MSG_URI_TEMPLATE,
        ),
        (
            {"deployments": [{"name": "rows", "model": "m", "miniBatchSize": "10rowz"}]},
            "should match",
        ),
        (
            {"deployments": [{"name": "rows", "model": "m", "output": {"fileName": "_mlkube"}}]},
            "should match",
        ),
    ],
)
def test_batch_endpoint_rules(
    kube: Kube, namespace: str, change: dict[str, Any], message: str
) -> None:
    endpoint = _batch_endpoint(namespace, **change)
    endpoint["spec"] = {k: v for k, v in endpoint["spec"].items() if v is not None}
    assert message in rejected(kube.create, endpoint)


def test_batch_single_deployment_is_the_schedules_default(kube: Kube, namespace: str) -> None:
    schedule = {"name": "n", "cron": "@daily", "input": {"uri": "file:///d/{{x}}{scheduledTime}"}}
    endpoint = _batch_endpoint(namespace, schedules=[schedule])
    endpoint["spec"].pop("defaultDeployment")
    endpoint["spec"]["deployments"] = endpoint["spec"]["deployments"][:1]
    created = kube.create(endpoint)
    assert created["spec"]["schedules"][0]["input"]["uri"] == "file:///d/{{x}}{scheduledTime}"


def test_batch_mini_batch_size_is_int_or_rows(kube: Kube, namespace: str) -> None:
    sizes = [7, "7", "250000rows"]
    deployments = [{"name": f"d{i}", "model": "m", "miniBatchSize": s} for i, s in enumerate(sizes)]
    created = kube.create(
        _batch_endpoint(namespace, deployments=deployments, schedules=[], defaultDeployment="d0")
    )
    assert [d["miniBatchSize"] for d in created["spec"]["deployments"]] == sizes


def _patch_job(kube: Kube, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return kube.patch(API_VERSION, "BatchJob", "credit-batch-2024-06-01", {"spec": spec}, namespace)


def test_batch_job_spec_is_a_record(kube: Kube, namespace: str) -> None:
    kube.create(sample("batchjob.yaml", namespace))
    assert MSG_SPEC_IMMUTABLE in rejected(
        _patch_job, kube, namespace, {"input": {"uri": "file:///elsewhere"}}
    )
    assert MSG_SPEC_IMMUTABLE in rejected(_patch_job, kube, namespace, {"deployment": "files"})
    assert MSG_SPEC_IMMUTABLE in rejected(_patch_job, kube, namespace, {"overrides": None})
    assert _patch_job(kube, namespace, {"suspend": True})["spec"]["suspend"] is True
    assert _patch_job(kube, namespace, {"cancel": True})["spec"]["cancel"] is True
    assert MSG_CANCEL_FINAL in rejected(_patch_job, kube, namespace, {"cancel": False})
    itself = sample("batchjob.yaml", namespace)
    itself["metadata"]["name"] = "again"
    itself["spec"]["resumeFrom"] = "again"
    assert MSG_RESUME_SELF in rejected(kube.create, itself)
