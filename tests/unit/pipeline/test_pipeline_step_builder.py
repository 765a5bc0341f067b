"""The step Job of one attempt (docs/pipelines.md §2): name, labels, owner, the three
containers, env, volumes, credentials only where they belong, the restricted profile."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mlkube.builders import pipeline_contract as pc
from mlkube.builders.operator_config import (
    OperatorConfigError,
    parse_operator_config,
    pipeline_store,
)
from mlkube.builders.pipeline_step import (
    RunRef,
    StepInput,
    StepOutput,
    StepPod,
    build_step_job,
    cache_key_label,
    step_job_name,
)
from mlkube.devcluster.podexec_command import expand as expand_kubelet

KEY = "sha256:" + "c" * 64
DIGEST = "sha256:" + "d" * 64
RUN = RunRef("nightly", "ml", "uid-1")
CONFIG = parse_operator_config(
    {
        "MLKUBE_STORAGE_SECRET": "store-creds",
        "MLKUBE_S3_ENDPOINT_URL": "http://minio:9000",
        "MLKUBE_BATCH_POD_ANNOTATIONS": "mlkube.dev/exec=local,kwok.x-k8s.io/status=custom",
        "MLKUBE_SERVING_IMAGE": "mlkube-serving:dev",
    }
)
POD = StepPod(
    step="train",
    attempt=2,
    image="trainer@sha256:" + "e" * 64,
    prefix="s3://b/ml/pipelineruns/nightly/train/a2",
    command=("python", "train.py"),
    args=("--lr", "0.1"),
    env=({"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "MLKUBE_INPUTS", "value": "x"}),
    resources={"limits": {"memory": "1Gi"}},
    inputs=(
        StepInput("data", uri="s3://data/credit/", digest=DIGEST),
        StepInput("shared", uri="pvc://datasets/credit", digest=DIGEST),
        StepInput("lr", value="0.1"),
    ),
    outputs=(StepOutput("model"), StepOutput("auc", "metrics"), StepOutput("best-lr", "parameter")),
    parameters=(("lr", "0.1"), ("max-depth", "3")),
    cache_key=KEY,
    timeout_seconds=600,
)


def _containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["initContainers"] + pod["containers"]}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_job_name_labels_owner_and_attempt() -> None:
    job = build_step_job(RUN, POD, CONFIG)
    meta = job["metadata"]
    assert meta["name"] == "nightly-train-a2" and meta["namespace"] == "ml"
    labels = {
        "app.kubernetes.io/managed-by": "mlkube",
        "mlkube.dev/pipeline-run": "nightly",
        "mlkube.dev/pipeline-step": "train",
        "mlkube.dev/cache-key": "c" * 63,
    }
    assert meta["labels"] == labels
    assert meta["annotations"] == {"mlkube.dev/attempt": "2"}
    template = job["spec"]["template"]["metadata"]
    assert template["labels"] == labels
    assert template["annotations"] == {"mlkube.dev/exec": "local", "kwok.x-k8s.io/status": "custom"}
    owner = meta["ownerReferences"][0]
    assert owner["kind"] == "PipelineRun" and owner["uid"] == "uid-1" and owner["controller"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_uncacheable_steps_have_no_cache_key_label_and_no_deadline_without_timeout() -> None:
    pod = StepPod(step="s", attempt=1, image="img:1", prefix="file:///x", command=("true",))
    job = build_step_job(RUN, pod, parse_operator_config({}))
    assert "mlkube.dev/cache-key" not in job["metadata"]["labels"]
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "annotations" not in job["spec"]["template"]["metadata"]


@pytest.mark.parametrize(
    ("run", "step", "attempt"),
    [("r" * 63, "s" * 40, 10), ("Run.With_Odd", "x", 1), ("1abc", "train", 3), ("a", "b", 1)],
)
def test_job_names_are_dns_labels_of_at_most_52_characters(
    run: str, step: str, attempt: int
) -> None:
    name = step_job_name(run, step, attempt)
    assert len(name) <= 52 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
    assert name == step_job_name(run, step, attempt)


def test_long_names_stay_distinct_per_step_and_attempt() -> None:
    run = "r" * 60
    names = {step_job_name(run, s, a) for s in ("train", "train2") for a in (1, 2)}
    assert len(names) == 4


def test_cache_key_label_is_63_hex_characters() -> None:
    assert cache_key_label(KEY) == "c" * 63
    assert cache_key_label("f" * 64) == "f" * 63


def test_main_runs_the_users_command_under_the_wrapper_with_paths_and_parameters() -> None:
    main = _containers(build_step_job(RUN, POD, CONFIG))["main"]
    assert main["image"] == POD.image
    assert main["command"] == [
        "/bin/sh",
        "-c",
        pc.WRAPPER.replace("$", "$$"),
        "mlkube-step",
        "python",
        "train.py",
        "--lr",
        "0.1",
    ]
    # What the kubelet hands the shell ($$ -> $; the script has no $(VAR)) is the wrapper.
    assert expand_kubelet(main["command"][2], {}) == pc.WRAPPER
    env = _env(main)
    assert env["MLKUBE_INPUTS"] == "/mlkube/inputs"  # ours win over the user's
    assert env["MLKUBE_OUTPUTS"] == "/mlkube/outputs"
    assert env["MLKUBE_INPUT_DATA"] == "/mlkube/inputs/data"
    assert env["MLKUBE_INPUT_LR"] == "0.1"
    assert env["MLKUBE_OUTPUT_MODEL"] == "/mlkube/outputs/model"
    assert env["MLKUBE_OUTPUT_BEST_LR"] == "/mlkube/outputs/best-lr"
    assert env["MLKUBE_PARAM_MAX_DEPTH"] == "3"
    assert env["OMP_NUM_THREADS"] == "1"
    assert [e["name"] for e in main["env"]].count("MLKUBE_INPUTS") == 1
    assert main["resources"] == {"limits": {"memory": "1Gi"}}
    assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_only_the_mlkube_containers_get_storage_credentials_and_the_manifest() -> None:
    containers = _containers(build_step_job(RUN, POD, CONFIG))
    assert "envFrom" not in containers["main"]
    assert not any("AWS" in n or "S3" in n for n in _env(containers["main"]))
    for name in ("inputs", "outputs"):
        c = containers[name]
        assert c["image"] == "mlkube-serving:dev"
        assert c["command"] == ["python", "-m", "mlkube_serving", "step", name]
        assert c["envFrom"] == [{"secretRef": {"name": "store-creds", "optional": True}}]
        env = _env(c)
        assert env["MLKUBE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["MLKUBE_STEP_ROOT"] == "/mlkube"
        manifest = json.loads(env["MLKUBE_STEP"])
        assert manifest == {
            "run": "nightly",
            "step": "train",
            "attempt": 2,
            "prefix": "s3://b/ml/pipelineruns/nightly/train/a2",
            "inputs": [
                {"name": "data", "uri": "s3://data/credit/", "digest": DIGEST},
                {"name": "shared", "uri": "pvc://datasets/credit", "digest": DIGEST},
            ],
            "outputs": [
                {"name": "model", "type": "artifact"},
                {"name": "auc", "type": "metrics"},
                {"name": "best-lr", "type": "parameter"},
            ],
        }


def test_volumes_and_mounts() -> None:
    job = build_step_job(RUN, POD, CONFIG)
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {"mlkube-inputs", "mlkube-outputs", "mlkube-run", "tmp"} <= set(volumes)
    assert volumes["pvc-datasets"]["persistentVolumeClaim"] == {
        "claimName": "datasets",
        "readOnly": True,
    }
    c = _containers(job)
    mounts = {n: {m["mountPath"]: m.get("readOnly", False) for m in c[n]["volumeMounts"]}
              for n in c}  # fmt: skip
    assert mounts["main"]["/mlkube/inputs"] is True
    assert mounts["main"]["/mlkube/outputs"] is False and mounts["main"]["/mlkube/run"] is False
    assert mounts["inputs"]["/mlkube/inputs"] is False
    assert mounts["inputs"]["/mnt/pvc/datasets"] is True
    assert "/mnt/pvc/datasets" not in mounts["main"]
    assert mounts["outputs"]["/mlkube/run"] is True
    assert pod["shareProcessNamespace"] is True


def test_an_artifact_store_on_a_claim_is_mounted_writable_for_outputs_only() -> None:
    pod = StepPod(
        step="s",
        attempt=1,
        image="i",
        prefix="pvc://store/ml/pipelineruns/r/s/a1",
        command=("true",),
    )
    c = _containers(build_step_job(RUN, pod, CONFIG))
    outs = {m["mountPath"]: m.get("readOnly") for m in c["outputs"]["volumeMounts"]}
    assert outs["/mnt/pvc/store"] is False
    assert all(m["mountPath"] != "/mnt/pvc/store" for m in c["main"]["volumeMounts"])


def test_the_step_pod_meets_the_restricted_profile_without_api_credentials() -> None:
    pod = build_step_job(RUN, POD, CONFIG)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert all("hostPath" not in v and "secret" not in v for v in pod["volumes"])
    for container in pod["containers"] + pod["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["runAsNonRoot"] is True
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in ctx
        tmp = {"main": "mlkube-main-tmp"}.get(container["name"], "tmp")
        assert {"name": tmp, "mountPath": "/tmp"} in container["volumeMounts"]
    # The user's code cannot write into the HOME (/tmp) of the containers holding the store
    # credentials (a .pth in its user site-packages, an SDK config file).
    main, outputs = pod["containers"]
    writable = {m["name"] for m in main["volumeMounts"] if not m.get("readOnly")}
    theirs = {m["name"]: m.get("readOnly", False) for m in outputs["volumeMounts"]}
    shared = writable & set(theirs)
    assert shared == {"mlkube-outputs", "mlkube-run"} and all(theirs[v] for v in shared)


def test_artifact_store_setting_falls_back_to_the_batch_store() -> None:
    both = parse_operator_config(
        {"MLKUBE_ARTIFACT_STORE": "s3://a/p/", "MLKUBE_BATCH_OUTPUT_STORE": "s3://b/jobs"}
    )
    assert pipeline_store(both) == "s3://a/p"
    assert pipeline_store(parse_operator_config({"MLKUBE_BATCH_OUTPUT_STORE": "s3://b/j"})) == (
        "s3://b/j"
    )
    assert pipeline_store(parse_operator_config({})) is None
    with pytest.raises(OperatorConfigError, match="MLKUBE_ARTIFACT_STORE"):
        parse_operator_config({"MLKUBE_ARTIFACT_STORE": "https://example.com/x"})


def test_without_a_command_the_first_arg_runs_and_without_either_the_build_refuses() -> None:
    pod = StepPod(step="s", attempt=1, image="i", prefix="s3://b/p", args=("python", "x.py"))
    main = _containers(build_step_job(RUN, pod, CONFIG))["main"]
    assert main["command"][-2:] == ["python", "x.py"]
    with pytest.raises(pc.ContractError, match="needs a command"):
        build_step_job(RUN, StepPod(step="s", attempt=1, image="i", prefix="s3://b/p"), CONFIG)


def test_the_credential_holding_containers_run_as_another_uid_than_main() -> None:
    # Same uid + a shared process namespace would let main read /proc/<outputs>/environ.
    pod = build_step_job(RUN, POD, CONFIG)["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    c = {x["name"]: x for x in pod["containers"] + pod["initContainers"]}
    main_uid = c["main"]["securityContext"]["runAsUser"]
    assert "envFrom" not in c["main"]
    for name in ("inputs", "outputs"):
        ctx = c[name]["securityContext"]
        assert ctx["runAsUser"] != main_uid, name
        # One group: each reads what the other writes (and the volumes' fsGroup is that group).
        assert ctx["runAsGroup"] == pod["securityContext"]["runAsGroup"] == main_uid
