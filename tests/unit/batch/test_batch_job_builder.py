"""The plan, score (Indexed) and merge Jobs of a BatchJob: names, owners, args, security."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.batch import BatchEndpointSpec
from mlkube.api.batch_job import BatchJobSpec
from mlkube.builders.batch_job import (
    BatchJobRef,
    ScoreShape,
    build_merge_job,
    build_plan_job,
    build_score_job,
    step_job_name,
    work_path,
)
from mlkube.builders.batch_settings import SettingsProblem, output_uri, resolve_settings
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.operator_config import (
    OperatorConfigError,
    parse_operator_config,
)

DIGEST = "sha256:" + "a" * 64
PLAN = "sha256:" + "b" * 64
OWNER = BatchJobRef(name="nightly", namespace="ml", uid="uid-1")
MODEL = ModelFacts(
    name="credit-v1",
    model_name="credit",
    version="1",
    framework="sklearn",
    uri="s3://models/credit/1",
    digest=DIGEST,
    size=10 * 1024 * 1024,
)
CONFIG = parse_operator_config(
    {
        "MLKUBE_STORAGE_SECRET": "store-creds",
        "MLKUBE_S3_ENDPOINT_URL": "http://minio:9000",
        "MLKUBE_BATCH_POD_ANNOTATIONS": "mlkube.dev/exec=local,kwok.x-k8s.io/status=custom",
        "MLKUBE_BATCH_OUTPUT_STORE": "s3://batch/jobs/",
    }
)
ENDPOINT = BatchEndpointSpec.model_validate(
    {
        "defaultDeployment": "blue",
        "deployments": [
            {
                "name": "blue",
                "model": "credit-v1",
                "miniBatchSize": "1000rows",
                "instanceCount": 2,
                "maxConcurrencyPerInstance": 3,
                "errorThreshold": 5,
                "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "2Gi"}},
                "env": [{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "HOME", "value": "/x"}],
                "loggingLevel": "debug",
            },
            {"name": "green", "model": "credit-v2", "entrypoint": {"path": "batch_score.py"}},
        ],
    }
)
JOB = BatchJobSpec.model_validate(
    {
        "endpoint": "credit",
        "input": {"uri": "s3://data/in/", "format": "csv"},
        "overrides": {
            "instanceCount": 4,
            "retrySettings": {"maxRetries": 1, "timeoutSeconds": 9},
            "output": {"format": "jsonl", "fileName": "out.jsonl"},
        },
    }
)
SETTINGS = resolve_settings(ENDPOINT, JOB)
OUT = "s3://batch/jobs/ml/nightly/"


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def _jobs() -> list[dict[str, Any]]:
    shape = ScoreShape(plan_digest=PLAN, indexes=8)
    return [
        build_plan_job(
            OWNER,
            input_uri="s3://data/in/",
            input_format="csv",
            output=OUT,
            settings=SETTINGS,
            model=MODEL,
            config=CONFIG,
        ),
        build_score_job(
            OWNER, output=OUT, shape=shape, settings=SETTINGS, model=MODEL, config=CONFIG
        ),
        build_merge_job(OWNER, output=OUT, settings=SETTINGS, config=CONFIG),
    ]


def test_overrides_win_over_the_deployment_and_defaults_fill_the_rest() -> None:
    s = SETTINGS
    assert (s.deployment, s.model, s.mini_batch_size) == ("blue", "credit-v1", "1000rows")
    assert (s.instance_count, s.concurrency, s.error_threshold) == (4, 3, 5)
    assert (s.max_retries, s.timeout_seconds) == (1, 9)
    assert (s.output.format, s.output.file_name, s.output.action) == (
        "jsonl",
        "out.jsonl",
        "appendRow",
    )
    green = resolve_settings(
        ENDPOINT, JOB.model_copy(update={"deployment": "green", "overrides": None})
    )
    assert (green.model, green.entrypoint, green.max_retries, green.error_threshold) == (
        "credit-v2",
        "batch_score.py",
        3,
        -1,
    )
    with pytest.raises(SettingsProblem, match="no deployment 'red'"):
        resolve_settings(ENDPOINT, JOB.model_copy(update={"deployment": "red"}))


def test_output_is_the_spec_or_the_operator_store_per_namespace_and_job() -> None:
    assert output_uri(JOB, "ml", "nightly", CONFIG.batch_output_store) == OUT
    assert output_uri(JOB, "ml", "nightly", None) is None
    explicit = BatchJobSpec.model_validate(
        {**JOB.model_dump(by_alias=True, exclude_none=True), "output": {"uri": "s3://x/y"}}
    )
    assert output_uri(explicit, "ml", "nightly", None) == "s3://x/y"


def test_names_owners_and_labels_follow_contract_c1() -> None:
    plan, score, merge = _jobs()
    names = [j["metadata"]["name"] for j in (plan, score, merge)]
    assert [n.rsplit("-", 1)[0] for n in names] == [
        "nightly-plan",
        "nightly-score",
        "nightly-merge",
    ]
    assert names[0] == step_job_name("nightly", "plan", "uid-1")
    assert step_job_name("nightly", "plan", "uid-2") != names[0]  # a recreated job: new Jobs
    assert len(step_job_name("n" * 80, "score", "u")) <= 63
    for job, step in zip((plan, score, merge), ("plan", "score", "merge"), strict=True):
        meta = job["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "mlkube.dev/v1alpha1",
                "kind": "BatchJob",
                "name": "nightly",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = {"app.kubernetes.io/managed-by": "mlkube", "mlkube.dev/batch-job": "nightly"}
        assert meta["labels"] == labels
        template = job["spec"]["template"]["metadata"]
        assert template["labels"] == {**labels, "mlkube.dev/batch-step": step}
        assert template["annotations"] == {
            "mlkube.dev/exec": "local",
            "kwok.x-k8s.io/status": "custom",
        }
        container = _pod(job)["containers"][0]
        assert container["name"] == "scorer"
        assert container["command"][:5] == ["python", "-m", "mlkube_serving", "batch", step]
        assert container["envFrom"] == [{"secretRef": {"name": "store-creds", "optional": True}}]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MLKUBE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["MLKUBE_LOG_LEVEL"] == "debug"
        assert env["HOME"] == "/tmp"  # ours win over the deployment's env
        assert env["OMP_NUM_THREADS"] == "1"


def test_the_score_job_is_an_indexed_job_with_the_failure_policy() -> None:
    score = _jobs()[1]["spec"]
    assert score["completionMode"] == "Indexed"
    assert (score["completions"], score["parallelism"], score["backoffLimitPerIndex"]) == (8, 4, 1)
    assert score["suspend"] is False
    assert score["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "scorer", "operator": "In", "values": [42, 43]},
        },
    ]
    assert "maxFailedIndexes" not in score  # the threshold is global, in items: the operator's
    pod = score["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"][5:] == [
        "--output",
        OUT,
        "--model",
        "/mnt/models",
        "--indexes",
        "8",
        "--plan-digest",
        PLAN,
        "--concurrency",
        "3",
        "--timeout",
        "9",
        "--max-retries",
        "1",
        "--error-threshold",
        "5",
        "--model-digest",
        DIGEST,
        "--output-format",
        "jsonl",
        "--framework",
        "sklearn",
    ]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "1"},
        "limits": {"memory": "2Gi"},
    }
    init = pod["initContainers"][0]
    assert init["name"] == "storage-initializer"
    assert init["args"] == [
        "--uri",
        "s3://models/credit/1",
        "--dest",
        "/mnt/models",
        "--digest",
        DIGEST,
    ]
    assert {"name": "model", "emptyDir": {"sizeLimit": "77Mi"}} in pod["volumes"]
    # Fewer shards than instances: never more pods than indexes.
    small = build_score_job(
        OWNER,
        output=OUT,
        shape=ScoreShape(PLAN, 2),
        settings=SETTINGS,
        model=MODEL,
        config=CONFIG,
        suspend=True,
    )["spec"]
    assert (small["parallelism"], small["suspend"]) == (2, True)


def test_plan_merge_and_resume_arguments() -> None:
    plan, _, merge = _jobs()
    assert _pod(plan)["containers"][0]["command"][4:] == [
        "plan",
        "--input",
        "s3://data/in/",
        "--output",
        OUT,
        "--mini-batch-size",
        "1000rows",
        "--format",
        "csv",
    ]
    assert "resources" not in _pod(plan)["containers"][0]
    assert _pod(merge)["containers"][0]["command"][4:] == [
        "merge",
        "--output",
        OUT,
        "--file-name",
        "out.jsonl",
        "--output-format",
        "jsonl",
        "--action",
        "appendRow",
    ]
    resume = build_plan_job(
        OWNER,
        input_uri="s3://data/in/",
        input_format="csv",
        output=OUT,
        settings=SETTINGS,
        model=MODEL,
        config=CONFIG,
        resume=True,
    )
    assert _pod(resume)["containers"][0]["command"][4:] == [
        "work",
        "--output",
        OUT,
        "--job",
        "nightly",
        "--model-digest",
        DIGEST,
        "--output-format",
        "jsonl",
        "--framework",
        "sklearn",
    ]
    shape = ScoreShape(PLAN, 3, work=work_path("nightly"))
    score = build_score_job(
        OWNER, output=OUT, shape=shape, settings=SETTINGS, model=MODEL, config=CONFIG
    )
    assert _pod(score)["containers"][0]["command"][-2:] == ["--work", "_mlkube/work/nightly.json"]
    for job in (plan, merge):
        assert job["spec"]["backoffLimit"] == 2
        assert job["spec"]["podFailurePolicy"]["rules"][1]["action"] == "FailJob"


def test_entrypoint_functions_reach_the_work_and_score_steps() -> None:
    """initFunction/runFunction are scorer arguments of both steps that share the settings
    digest (work and score must agree on it, or resume reuses nothing)."""
    endpoint = BatchEndpointSpec.model_validate(
        {
            "deployments": [
                {
                    "name": "script",
                    "model": "credit-v1",
                    "entrypoint": {
                        "path": "src/batch.py",
                        "initFunction": "setup",
                        "runFunction": "score_batch",
                    },
                }
            ]
        }
    )
    settings = resolve_settings(endpoint, JOB.model_copy(update={"overrides": None}))
    assert (settings.init_function, settings.run_function) == ("setup", "score_batch")
    shape = ScoreShape(plan_digest=PLAN, indexes=1)
    score = build_score_job(
        OWNER, output=OUT, shape=shape, settings=settings, model=MODEL, config=CONFIG
    )
    work = build_plan_job(
        OWNER,
        input_uri="s3://data/in/",
        input_format="csv",
        output=OUT,
        settings=settings,
        model=MODEL,
        config=CONFIG,
        resume=True,
    )
    expected = ["--entrypoint", "src/batch.py", "--init-function", "setup",
                "--run-function", "score_batch"]  # fmt: skip
    for job in (score, work):
        command = _pod(job)["containers"][0]["command"]
        at = command.index("--entrypoint")
        assert command[at : at + 6] == expected
    # Without an entrypoint the model's runtime scores: no function arguments.
    assert "--run-function" not in _pod(_jobs()[1])["containers"][0]["command"]


def test_pvc_outputs_are_mounted_read_write_and_inputs_read_only() -> None:
    plan = build_plan_job(
        OWNER,
        input_uri="pvc://data/in",
        input_format="auto",
        output="pvc://scratch/out",
        settings=SETTINGS,
        model=MODEL,
        config=CONFIG,
    )
    pod = _pod(plan)
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"data": True, "scratch": False}
    mounts = {m["mountPath"]: m.get("readOnly") for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/mnt/pvc/data"] is True and mounts["/mnt/pvc/scratch"] is False


def test_every_batch_pod_meets_the_restricted_profile() -> None:
    for job in _jobs():
        pod = _pod(job)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert isinstance(pod["securityContext"]["runAsUser"], int)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert all("hostPath" not in v for v in pod["volumes"])
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["runAsNonRoot"] is True
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_batch_settings_are_parsed_and_checked() -> None:
    config = parse_operator_config(
        {
            "MLKUBE_BATCH_OUTPUT_STORE": "pvc://scratch/jobs/",
            "MLKUBE_BATCH_POD_ANNOTATIONS": " b=2 , a=1 ",
        }
    )
    assert config.batch_output_store == "pvc://scratch/jobs"
    assert config.batch_pod_annotations == (("a", "1"), ("b", "2"))
    assert parse_operator_config({}).batch_output_store is None
    with pytest.raises(OperatorConfigError, match="MLKUBE_BATCH_OUTPUT_STORE"):
        parse_operator_config({"MLKUBE_BATCH_OUTPUT_STORE": "https://example.com/x"})
    with pytest.raises(OperatorConfigError, match="MLKUBE_BATCH_POD_ANNOTATIONS"):
        parse_operator_config({"MLKUBE_BATCH_POD_ANNOTATIONS": "novalue"})
