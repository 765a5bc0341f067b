"""Deployments, batch scorers and pipeline steps that name an Environment, on the real control
plane with the real operator (docs/environments.md §4/§5). The Environment's status is written
by the test as the cluster admin (what the environment controller would report after a build):
until it is Ready the users wait (EnvironmentNotReady), an image without the serving entrypoint
is refused (EnvironmentIncompatible), a Ready one puts its digest into the pods, the statuses
and the Model's record; a packaged model runs without the storage initializer."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_server import build_server_deployment
from mlkube.builders.environment_use import EnvironmentUse
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.names import EndpointRef, deployment_name
from mlkube.builders.operator_config import parse_operator_config
from mlkube.cli.model_view import render_details
from mlkube.contract import API_VERSION
from mlkube.handlers.config import operator_config
from mlkube.k8s import ApiError, Kube
from support.endpoints import (
    blue_green_spec,
    condition,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import patched_env, run_operator
from support.podexec import PodExecutor, executor_store
from support.waiting import wait_for

IMAGE = "127.0.0.1:5000/mlkube/environments@sha256:" + "e" * 64
PULL_SECRET = "envpull"
EP = "credit"


@pytest.fixture
def operator_with_pull_secret(namespace: str) -> Iterator[KopfRunner]:
    operator_config.cache_clear()
    with patched_env({"MLKUBE_IMAGE_PULL_SECRET": PULL_SECRET}), run_operator(namespace) as runner:
        yield runner
    operator_config.cache_clear()


def create_environment(kube: Kube, namespace: str, name: str, version: str) -> None:
    kube.create({
        "apiVersion": API_VERSION, "kind": "Environment",
        "metadata": {"name": f"{name}-{version}", "namespace": namespace},
        # On loopback (a closed port): an environment controller that tries to resolve the
        # tag fails at once, without a lookup off this machine.
        "spec": {"environmentName": name, "version": version,
                 "image": "127.0.0.1:9/team/scorer:2.1"},
    })  # fmt: skip


def write_ready(
    kube: Kube, namespace: str, obj_name: str, image: str = IMAGE, **extra: Any
) -> None:
    """The status a finished environment build reports (as the admin: the test plays it).

    Written until it holds: an environment controller running alongside (it cannot resolve the
    test's tag) may finish a pass that started before this write and overwrite it once; after
    that it sees a Ready status of the current generation and leaves it alone."""
    obj = kube.get(API_VERSION, "Environment", obj_name, namespace) or {}
    ready = {"type": "Ready", "status": "True", "reason": "Built", "message": "image built",
             "lastTransitionTime": "2026-11-30T12:00:00Z"}  # fmt: skip
    status = {"phase": "Ready", "observedGeneration": obj["metadata"]["generation"],
              "conditions": [ready], "image": image, "imageDigest": image.split("@")[1],
              "serving": {"compatible": True, "version": "0.1.0"}, **extra}  # fmt: skip

    def held() -> bool:
        now = (kube.get(API_VERSION, "Environment", obj_name, namespace) or {}).get("status")
        return bool(now) and now.get("phase") == "Ready" and now.get("image") == image

    stable = 0
    deadline = time.monotonic() + 20
    while stable < 3 and time.monotonic() < deadline:
        if not held():
            stable = 0
            kube.patch(API_VERSION, "Environment", obj_name, {"status": status}, namespace,
                       subresource="status")  # fmt: skip
        else:
            stable += 1
        time.sleep(0.3)
    assert held(), f"Environment {obj_name}: the status written did not hold"


def endpoint(kube: Kube, namespace: str) -> dict[str, Any]:
    return kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {}


def server_pod_spec(kube: Kube, namespace: str, dep: str) -> dict[str, Any]:
    obj = kube.get("apps/v1", "Deployment", deployment_name(EP, dep), namespace) or {}
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def wait_reason(kube: Kube, namespace: str, type_: str, reason: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = endpoint(kube, namespace)
        return obj if condition(obj, type_).get("reason") == reason else None

    return dict(wait_for(reached, timeout=30, interval=0.1, what=f"{type_} reason {reason}"))


def test_endpoint_waits_for_runs_on_and_records_the_environment(
    kube: Kube, namespace: str, tmp_path: Path, operator_with_pull_secret: KopfRunner
) -> None:
    digests = create_ready_models(kube, namespace, tmp_path)
    create_environment(kube, namespace, "lgbm", "1")
    spec = blue_green_spec()
    spec["deployments"][0]["environment"] = "lgbm:1"
    kube.create(endpoint_object(EP, namespace, spec))

    waiting = wait_reason(kube, namespace, "Ready", "EnvironmentNotReady")
    assert "Environment lgbm:1 is not Ready" in condition(waiting, "Ready")["message"]
    assert condition(waiting, "Degraded")["status"] == "False"  # waiting, not failed
    assert kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace) is None

    write_ready(kube, namespace, "lgbm-1")
    obj = wait_endpoint_ready(kube, namespace, EP)
    blue, green = (
        server_pod_spec(kube, namespace, "blue"),
        server_pod_spec(kube, namespace, "green"),
    )
    assert blue["containers"][0]["image"] == IMAGE
    assert blue["imagePullSecrets"] == [{"name": PULL_SECRET}]
    assert blue["initContainers"][0]["name"] == "storage-initializer"  # not packaged: download
    assert green["containers"][0]["image"] != IMAGE and "imagePullSecrets" not in green
    record = {"name": "lgbm", "version": "1", "image": IMAGE}
    statuses = {d["name"]: d for d in obj["status"]["deployments"]}
    assert statuses["blue"]["environment"] == record
    assert "environment" not in statuses["green"]

    model = wait_for(
        lambda: (m := kube.get(API_VERSION, "Model", "credit-risk-v3", namespace))
        and (m.get("status") or {}).get("environments") and m,
        timeout=20, interval=0.1, what="Model status.environments",
    )  # fmt: skip
    entry = {**record, "kind": "OnlineEndpoint", "endpoint": EP, "deployment": "blue"}
    assert model["status"]["environments"] == [entry]
    assert f"environment lgbm:1 sha256:{'e' * 64} (OnlineEndpoint {EP}/blue)" in render_details(
        model
    )

    # An image without mlkube_serving: refused with the probe's error, not crash-looped.
    create_environment(kube, namespace, "lgbm", "2")
    write_ready(kube, namespace, "lgbm-2", serving={
        "compatible": False, "message": "No module named 'mlkube_serving'"})  # fmt: skip
    spec["deployments"][0]["environment"] = "lgbm:2"
    kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": spec}, namespace)
    refused = wait_reason(kube, namespace, "Degraded", "EnvironmentIncompatible")
    assert condition(refused, "Degraded")["status"] == "True"
    assert condition(refused, "Degraded")["message"] == (
        f"environment lgbm:2 (image {IMAGE}) does not provide the mlkube serving entrypoint "
        "(`python -m mlkube_serving`): No module named 'mlkube_serving'; build it from a curated "
        "base (build.base: mlkube-sklearn:0.1.0) or install mlkube[serving] into the image"
    )

    # A packaged model: the image holds the verified artifact, nothing is downloaded.
    create_environment(kube, namespace, "credit-pkg", "3")
    packaged = {"name": "credit-risk-v3", "artifactDigest": digests["credit-risk-v3"]}
    write_ready(kube, namespace, "credit-pkg-3", packagedModel=packaged)
    spec["deployments"][0]["environment"] = "credit-pkg:3"
    kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": spec}, namespace)
    wait_endpoint_ready(kube, namespace, EP)
    blue = server_pod_spec(kube, namespace, "blue")
    assert "initContainers" not in blue
    assert [v["name"] for v in blue["volumes"]] == ["tmp"]
    env = {e["name"]: e.get("value") for e in blue["containers"][0]["env"]}
    assert env["MLKUBE_MODEL_DIR"] == "/opt/mlkube/model"


def test_batch_job_waits_for_and_scores_on_the_environment(
    kube: Kube, namespace: str, tmp_path: Path, operator_with_pull_secret: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    create_environment(kube, namespace, "lgbm", "1")
    out = tmp_path / "out"
    summary = {"digest": "sha256:" + "c" * 64, "miniBatches": 4, "items": 40,
               "itemsEstimated": False, "bytes": 10}  # fmt: skip
    (out / "_mlkube").mkdir(parents=True)
    (out / "_mlkube" / "plan-summary.json").write_text(json.dumps(summary))
    kube.create({"apiVersion": API_VERSION, "kind": "BatchEndpoint",
                 "metadata": {"name": "credit", "namespace": namespace},
                 "spec": {"deployments": [{"name": "d", "model": "credit-risk-v3",
                                           "environment": "lgbm@latest"}]}})  # fmt: skip
    kube.create({"apiVersion": API_VERSION, "kind": "BatchJob",
                 "metadata": {"name": "nightly", "namespace": namespace},
                 "spec": {"endpoint": "credit", "input": {"uri": "s3://data/in/"},
                          "output": {"uri": out.as_uri()}, "suspend": True}})  # fmt: skip

    def job() -> dict[str, Any]:
        return kube.get(API_VERSION, "BatchJob", "nightly", namespace) or {}

    waiting = wait_for(
        lambda: (
            (job().get("status") or {})
            .get("message", "")
            .startswith("waiting: Environment lgbm@latest")
            and job()
        ),
        timeout=30,
        what="BatchJob waiting",
    )
    assert waiting["status"]["phase"] == "Pending"
    assert kube.list("batch/v1", "Job", namespace) == []  # not even the plan before it is Ready

    write_ready(kube, namespace, "lgbm-1")
    suspended = wait_for(lambda: (job().get("status") or {}).get("phase") == "Suspended" and job(),
                         timeout=40, what="BatchJob Suspended (score Job created)")  # fmt: skip
    assert suspended["status"]["environment"] == {"name": "lgbm", "version": "1", "image": IMAGE}
    jobs = kube.list("batch/v1", "Job", namespace, label_selector="mlkube.dev/batch-job=nightly")
    score = next(j for j in jobs if j["metadata"]["name"].startswith("nightly-score-"))
    pod = score["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGE
    assert pod["imagePullSecrets"] == [{"name": PULL_SECRET}]
    model = kube.get(API_VERSION, "Model", "credit-risk-v3", namespace) or {}
    assert model["status"]["environments"] == [{
        "name": "lgbm", "version": "1", "image": IMAGE,
        "kind": "BatchEndpoint", "endpoint": "credit", "deployment": "d",
    }]  # fmt: skip


def test_pipeline_step_runs_on_the_environment_image(
    kube: Kube, namespace: str, tmp_path: Path, pod_executor: PodExecutor
) -> None:
    """The dev pod executor runs the step's python whatever the image: the run succeeds on the
    environment's digest, which the step records and the cache key covers."""
    python = "python@sha256:" + "1" * 64
    create_environment(kube, namespace, "train", "1")
    code = (
        "import os,pathlib;(pathlib.Path(os.environ['MLKUBE_OUTPUT_OUT'])/'m.txt').write_text('m')"
    )
    with executor_store(tmp_path / "store"), run_operator(namespace):
        kube.create({"apiVersion": API_VERSION, "kind": "Pipeline",
                     "metadata": {"name": "p", "namespace": namespace},
                     "spec": {"steps": [{"name": "train", "environment": "train:1",
                                         "command": ["python", "-c", code],
                                         "outputs": [{"name": "out"}]}]}})  # fmt: skip
        kube.create({"apiVersion": API_VERSION, "kind": "PipelineRun",
                     "metadata": {"name": "r1", "namespace": namespace},
                     "spec": {"pipeline": "p"}})  # fmt: skip

        def step() -> dict[str, Any]:
            run = kube.get(API_VERSION, "PipelineRun", "r1", namespace) or {}
            return next(iter((run.get("status") or {}).get("steps") or []), {})

        waiting = wait_for(lambda: "EnvironmentNotReady" in (step().get("message") or "")
                           and step(), timeout=30, what="step waiting")  # fmt: skip
        assert waiting["phase"] == "Pending" and "Environment train:1" in waiting["message"]
        write_ready(kube, namespace, "train-1", image=python)
        done = wait_for(lambda: step().get("phase") in ("Succeeded", "Failed") and step(),
                        timeout=120, interval=0.5, what="step finished")  # fmt: skip
        assert done["phase"] == "Succeeded", done
        assert done["environment"] == {"name": "train", "version": "1", "image": python}
        assert done["cache"]["key"]  # the digest-pinned image makes the step cacheable
        job = kube.get("batch/v1", "Job", done["job"], namespace) or {}
        main = next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "main")
        assert main["image"] == python


KWOK_HANDS_OFF = {"kwok.x-k8s.io/status": "custom"}
LOAD_ERROR = (
    "model load failed: importing /mnt/models/score.py failed: "
    "ModuleNotFoundError(\"No module named 'lightgbm'\")"
)


def crash_loop(kube: Kube, pod: dict[str, Any]) -> None:
    """What the kubelet reports for a server that exits on its load error (the message the
    server writes to its termination log: mlkube_serving/termination.py, process-tested)."""
    now = "2026-11-30T12:00:00Z"
    term = {"exitCode": 3, "reason": "Error", "message": LOAD_ERROR, "startedAt": now,
            "finishedAt": now}  # fmt: skip
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
        "initContainerStatuses": [
            {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
             "state": {"terminated": {**term, "exitCode": 0, "reason": "Completed",
                                      "message": ""}}}
            for c in pod["spec"].get("initContainers") or []
        ],
        "containerStatuses": [
            {"name": "server", "image": pod["spec"]["containers"][0]["image"], "ready": False,
             "restartCount": 3, "lastState": {"terminated": term},
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}
        ],
    }  # fmt: skip
    kube.patch("v1", "Pod", pod["metadata"]["name"], {"status": status},
               pod["metadata"]["namespace"], subresource="status")  # fmt: skip


def test_a_missing_module_reaches_the_endpoint_status(
    kube: Kube, namespace: str, tmp_path: Path, operator_with_pull_secret: KopfRunner
) -> None:
    """An environment that lacks a package the scoring script imports: the endpoint is
    Degraded with the module's name (pod termination message → builders/pod_problems.py)."""
    create_ready_models(kube, namespace, tmp_path)
    create_environment(kube, namespace, "lgbm", "1")
    spec = {"deployments": [{"name": "blue", "model": "credit-risk-v3", "replicas": 1,
                             "environment": "lgbm:1"}], "traffic": {"blue": 100}}  # fmt: skip
    # The endpoint waits for the environment, so the test can create blue's Deployment first,
    # with kwok's hands-off annotation (kwok would report its pods Running and Ready).
    created = kube.create(endpoint_object(EP, namespace, spec))
    wait_reason(kube, namespace, "Ready", "EnvironmentNotReady")
    owner = EndpointRef(EP, namespace, created["metadata"]["uid"])
    facts = read_model("credit-risk-v3", kube.get(API_VERSION, "Model", "credit-risk-v3",
                                                  namespace))  # fmt: skip
    assert isinstance(facts, ModelFacts)
    use = EnvironmentUse(reference="lgbm:1", name="lgbm", version="1", image=IMAGE)
    dep = OnlineEndpointSpec.model_validate(spec).deployments[0]
    server = build_server_deployment(owner, dep, facts, parse_operator_config(os.environ), use)
    server["spec"]["template"]["metadata"]["annotations"].update(KWOK_HANDS_OFF)
    kube.create(server)
    try:
        write_ready(kube, namespace, "lgbm-1")
        pod = wait_for(lambda: next(iter(kube.list("v1", "Pod", namespace,
                                                   label_selector="mlkube.dev/deployment=blue")),
                                    None), timeout=30, what="blue pod")  # fmt: skip
        crash_loop(kube, pod)
        degraded = wait_reason(kube, namespace, "Degraded", "PodsFailing")
        message = condition(degraded, "Degraded")["message"]
        assert "No module named 'lightgbm'" in message, message
        blue = degraded["status"]["deployments"][0]
        assert "No module named 'lightgbm'" in blue["message"]
        assert blue["environment"] == {"name": "lgbm", "version": "1", "image": IMAGE}
    finally:
        kube.delete(API_VERSION, "OnlineEndpoint", EP, namespace)
        for left in kube.list("v1", "Pod", namespace, label_selector="mlkube.dev/deployment=blue"):
            path = f"/api/v1/namespaces/{namespace}/pods/{left['metadata']['name']}"
            with contextlib.suppress(ApiError):
                kube.request("DELETE", path, body={"gracePeriodSeconds": 0})
