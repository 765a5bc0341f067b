"""Drift monitoring end to end on a real control plane, with a REAL drift sidecar process.

kwok pods have fake, unreachable IPs, so the test plays kubelet and network for the drift
deployment: its Deployment is created up front from the builder's own manifest plus kwok's
"status=custom" annotation (kwok then leaves those pods alone), and the test marks each pod
Ready with podIP 127.0.0.1, where the sidecar listens on the port the operator is told to poll
(one replica, one address). The operator therefore never sees, let alone dials, a fake IP.
It then applies the same Deployment (adding only its owner reference), polls the sidecar,
merges, writes status, and posts DriftDetected / DriftEnded. Also: the ServiceMonitor and
PrometheusRule appear once the Prometheus Operator kinds are served (fixture CRDs), and the
live rules pass `promtool check rules`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_monitoring import (
    MONITORING_API_VERSION,
    build_prometheus_rule,
    build_service_monitor,
)
from mlkube.builders.endpoint_server import build_server_deployment
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.names import EndpointRef, deployment_name
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import API_VERSION
from mlkube.devcluster.procs import free_port
from mlkube.events.catalogue import DRIFT_DETECTED, DRIFT_ENDED
from mlkube.events.extract import implied_events
from mlkube.events.occurrence import Occurrence
from mlkube.handlers.config import operator_config
from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import established
from mlkube.storage import compute_digest
from mlkube_serving.drift import synthetic
from mlkube_serving.drift.profile import build_profile, write_profile
from support.endpoints import (
    condition,
    endpoint_object,
    is_subset,
    make_artifact,
    model_object,
    wait_endpoint_ready,
)
from support.operator import patched_env, run_operator
from support.waiting import wait_for

EP = "credit"
WINDOW = 200
FEATURES = ["x0", "x1", "x2", "x3"]
KWOK_HANDS_OFF = {"kwok.x-k8s.io/status": "custom"}
CRD_FILE = Path(__file__).parent / "fixtures" / "prometheus-operator-crds.yaml"
CRD_API = "apiextensions.k8s.io/v1"


def make_baseline(folder: Path) -> tuple[str, str]:
    """A real profile from synthetic training data, stored as a file:// artifact."""
    profile = build_profile(
        synthetic.make_columns(5000, seed=1),
        window_size=WINDOW,
        prediction_column=synthetic.PREDICTION,
        model="credit-risk",
        bootstrap_windows=300,
    )
    folder.mkdir(parents=True)
    path = folder / "credit-risk.profile.json"
    write_profile(profile, path)
    return path.as_uri(), compute_digest(path.as_uri()).digest


def create_models(kube: Kube, namespace: str, tmp: Path, baseline: tuple[str, str]) -> None:
    """credit-risk-v3 with a baseline, credit-risk-v4 without one; both verified and Ready."""
    for version in ("3", "4"):
        body = model_object(
            f"credit-risk-v{version}",
            namespace,
            make_artifact(tmp / f"v{version}", f"weights {version}"),
            version,
        )
        if version == "3":
            body["spec"]["baseline"] = {"uri": baseline[0], "digest": baseline[1]}
        kube.create(body)
    for name in ("credit-risk-v3", "credit-risk-v4"):
        wait_for(
            lambda n=name: (
                condition(kube.get(API_VERSION, "Model", n, namespace), "Ready").get("status")
                == "True"
            ),
            timeout=20,
            interval=0.05,
            what=f"Model {name} Ready",
        )


@contextlib.contextmanager
def real_sidecar(profile_dir: Path, port: int) -> Iterator[str]:
    metrics = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile", str(profile_dir),
         "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics),
         "--features", ",".join(FEATURES), "--eval-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                return True
            return False

        wait_for(healthy, timeout=20, interval=0.05, what="drift sidecar healthy")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post_rows(url: str, columns: dict[str, Any]) -> None:
    for payload in synthetic.to_payloads(columns, 100, model="credit-risk"):
        request = urllib.request.Request(
            url + "/v1/samples", json.dumps(payload).encode(), method="POST"
        )
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202


def sidecar_summary(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/v1/summary", timeout=5) as response:
        summary: dict[str, Any] = json.load(response)
    return summary


def mark_ready_on_loopback(kube: Kube, pod: dict[str, Any]) -> None:
    """What the kubelet and CNI would report for a running pod; here the pod is 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec = pod["spec"]
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    running = [
        {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
         "started": True, "state": {"running": {"startedAt": now}}}
        for c in spec["containers"]
    ]  # fmt: skip
    done = [
        {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now,
                                  "finishedAt": now}}}
        for c in spec.get("initContainers") or []
    ]  # fmt: skip
    status = {
        "phase": "Running",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": conditions,
        "containerStatuses": running,
        "initContainerStatuses": done,
    }
    kube.patch("v1", "Pod", pod["metadata"]["name"], {"status": status},
               pod["metadata"]["namespace"], subresource="status")  # fmt: skip


def blue_pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    selector = "mlkube.dev/endpoint=credit,mlkube.dev/deployment=blue"
    return kube.list("v1", "Pod", namespace, label_selector=selector)


def release_loopback_pods(kube: Kube, namespace: str) -> None:
    """kwok will not finish deleting pods it was told to leave alone: delete the endpoint
    (its children go with it), then remove the pods without a grace period."""
    with contextlib.suppress(ApiError, AssertionError):
        kube.delete(API_VERSION, "OnlineEndpoint", EP, namespace)
        wait_for(lambda: kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) is None,
                 timeout=10, interval=0.1, what="endpoint deleted")  # fmt: skip
    for pod in blue_pods(kube, namespace):
        path = f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}"
        with contextlib.suppress(ApiError):
            kube.request("DELETE", path, body={"gracePeriodSeconds": 0})


def drift_status(kube: Kube, namespace: str, deployment: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {}
    for entry in (obj.get("status") or {}).get("deployments") or []:
        if entry["name"] == deployment:
            return dict(entry.get("drift") or {})
    return {}


def events(kube: Kube, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.list("v1", "Event", namespace)
        if e["reason"] == reason and e["involvedObject"]["name"] == EP
    ]


SPEC: dict[str, Any] = {
    "deployments": [
        {"name": "blue", "model": "credit-risk-v3", "replicas": 1,
         "drift": {"enabled": True, "sampleRate": 0.5, "features": FEATURES}},
        {"name": "green", "model": "credit-risk-v4", "replicas": 1, "drift": {"enabled": True}},
    ],
    "traffic": {"blue": 100, "green": 0},
}  # fmt: skip


def test_drift_is_detected_and_ends_through_a_real_sidecar(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    baseline = make_baseline(tmp_path / "baseline")
    port = free_port()
    env = {
        "MLKUBE_DRIFT_PORT": str(port),
        "MLKUBE_DRIFT_POLL_INTERVAL_SECONDS": "0.3",
        "MLKUBE_DRIFT_POLL_TIMEOUT_SECONDS": "1",
        "MLKUBE_DRIFT_CLEAR_EVALUATIONS": "2",
        "MLKUBE_DRIFT_COOLDOWN_SECONDS": "1",
    }
    # Settings are read once per operator process: clear the cache around this test's env.
    with patched_env(env), contextlib.ExitStack() as stack:
        operator_config.cache_clear()
        stack.callback(operator_config.cache_clear)
        sidecar = stack.enter_context(real_sidecar(tmp_path / "baseline", port))
        stack.enter_context(run_operator(namespace, env=env))
        try:
            create_models(kube, namespace, tmp_path, baseline)
            facts = read_model(
                "credit-risk-v3", kube.get(API_VERSION, "Model", "credit-risk-v3", namespace)
            )
            assert isinstance(facts, ModelFacts) and facts.baseline_digest == baseline[1]
            # The endpoint waits for a Model that does not exist yet, so the test can create
            # blue's Deployment first, with kwok's hands-off annotation, as the endpoint's child
            # (the operator never adopts an object it does not control).
            waiting = copy.deepcopy(SPEC)
            waiting["deployments"][0]["model"] = "not-registered"
            endpoint = kube.create(endpoint_object(EP, namespace, waiting))
            owner = EndpointRef(EP, namespace, endpoint["metadata"]["uid"])
            spec = OnlineEndpointSpec.model_validate(SPEC)
            expected = build_server_deployment(owner, spec.deployments[0], facts,
                                               parse_operator_config(os.environ))  # fmt: skip
            created = copy.deepcopy(expected)
            created["spec"]["template"]["metadata"]["annotations"].update(KWOK_HANDS_OFF)
            kube.create(created)
            kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": SPEC}, namespace)

            def blue_ready() -> bool:
                pods = [p for p in blue_pods(kube, namespace)
                        if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
                for pod in pods:
                    ip = (pod.get("status") or {}).get("podIP")
                    # kwok must have left these pods alone: no fake IP the operator could dial.
                    assert ip in (None, "127.0.0.1"), f"kwok gave {pod['metadata']['name']} {ip}"
                    if ip is None:
                        mark_ready_on_loopback(kube, pod)
                return len(pods) == 1 and all(
                    condition(p, "Ready").get("status") == "True" for p in pods
                )

            wait_for(blue_ready, timeout=20, interval=0.1, what="blue pod Ready on 127.0.0.1")
            obj = wait_endpoint_ready(kube, namespace, EP)
            marks = {"endpoint Ready": time.monotonic() - started}

            # The pod template is the builder's: baseline init step, sidecar, server wiring.
            live = kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace)
            assert live is not None
            assert live["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
            template = live["spec"]["template"]
            assert not is_subset(expected["spec"]["template"], template)
            # The operator's apply left the spec as the test built it: same template, no rollout
            # (adopting it adds the manifest-digest annotation, which bumps a Deployment's
            # generation; one ReplicaSet means the template never changed).
            selector = ",".join(
                f"{k}={v}" for k, v in live["spec"]["selector"]["matchLabels"].items()
            )
            replica_sets = kube.list("apps/v1", "ReplicaSet", namespace, label_selector=selector)
            assert len(replica_sets) == 1, [r["metadata"]["name"] for r in replica_sets]
            assert live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
            pod_spec = template["spec"]
            assert [c["name"] for c in pod_spec["initContainers"]] == [
                "storage-initializer",
                "drift-baseline",
            ]
            assert [c["name"] for c in pod_spec["containers"]] == ["server", "drift"]
            assert {"name": "MLKUBE_DRIFT_URL", "value": f"http://127.0.0.1:{port}"} in (
                pod_spec["containers"][0]["env"]
            )
            # The samples spool: a memory emptyDir both containers mount, stored as built.
            spool = {"name": "drift-spool", "emptyDir": {"medium": "Memory", "sizeLimit": "15Mi"}}
            assert spool in pod_spec["volumes"]
            for container in pod_spec["containers"]:
                assert {"name": "drift-spool", "mountPath": "/mnt/drift-spool"} in (
                    container["volumeMounts"]
                )
            green = kube.get("apps/v1", "Deployment", deployment_name(EP, "green"), namespace)
            assert green is not None
            assert [c["name"] for c in green["spec"]["template"]["spec"]["containers"]] == [
                "server"
            ]

            # green's Model has no baseline: reported, not failed.
            wait_for(lambda: drift_status(kube, namespace, "green").get("reason")
                     == "DriftBaselineMissing", timeout=10, interval=0.1,
                     what="green DriftBaselineMissing")  # fmt: skip
            wait_for(lambda: events(kube, namespace, "DriftBaselineMissing"), timeout=10,
                     interval=0.1, what="DriftBaselineMissing Event")  # fmt: skip
            assert (
                condition(kube.get(API_VERSION, "OnlineEndpoint", EP, namespace), "Ready")["status"]
                == "True"
            )

            # Shifted traffic: drift on x0..x3.
            shift = {name: 1.0 for name in FEATURES}
            post_rows(sidecar, synthetic.make_columns(WINDOW, seed=11, shift=shift))
            drifted = wait_for(
                lambda: (d := drift_status(kube, namespace, "blue")).get("detected") and d,
                timeout=15,
                interval=0.1,
                what="status.deployments[blue].drift.detected",
            )
            marks["drift detected"] = time.monotonic() - started
            assert drifted["replicasReporting"] == 1 and drifted["samples"] == WINDOW
            assert drifted["driftedFeatures"] == drifted["evaluatedFeatures"] == len(FEATURES)
            assert {f["name"] for f in drifted["topFeatures"]} == set(FEATURES)
            summary = sidecar_summary(sidecar)
            assert summary["datasetDrift"]["detected"] is True
            obj = wait_for(
                lambda: (
                    (o := kube.get(API_VERSION, "OnlineEndpoint", EP, namespace))
                    and condition(o, "DriftDetected").get("status") == "True"
                    and o
                ),
                timeout=10,
                interval=0.1,
                what="DriftDetected=True",
            )
            assert "blue" in condition(obj, "DriftDetected")["message"]
            wait_for(lambda: events(kube, namespace, "DriftDetected"), timeout=10,
                     interval=0.1, what="DriftDetected Event")  # fmt: skip
            # The stored status implies the drift.detected CloudEvent of the episode.
            (detected,) = wait_for(lambda: drift_events_of(kube, namespace, 1), timeout=10,
                                   interval=0.1, what="drift.detected implied")  # fmt: skip
            assert detected.type == DRIFT_DETECTED.type and detected.data["deployment"] == "blue"

            # Clean traffic refills the window; the episode ends after the cooldown, once.
            clean_at = time.monotonic()
            post_rows(sidecar, synthetic.make_columns(WINDOW, seed=12))
            wait_for(
                lambda: (
                    condition(
                        kube.get(API_VERSION, "OnlineEndpoint", EP, namespace), "DriftDetected"
                    ).get("status")
                    == "False"
                ),
                timeout=15,
                interval=0.1,
                what="DriftDetected=False",
            )
            ended_after = time.monotonic() - clean_at
            assert ended_after >= 1.0  # the cooldown held
            wait_for(lambda: events(kube, namespace, "DriftEnded"), timeout=10,
                     interval=0.1, what="DriftEnded Event")  # fmt: skip
            time.sleep(1.5)  # several more evaluations: nothing new may be posted
            assert len(events(kube, namespace, "DriftEnded")) == 1
            assert len(events(kube, namespace, "DriftDetected")) == 1
            assert len(events(kube, namespace, "DriftBaselineMissing")) == 1
            final = drift_status(kube, namespace, "blue")
            assert final["detected"] is False and final["episode"]["active"] is False
            # Once ended, the status implies the same detected (same id) and the ended event.
            after = drift_events_of(kube, namespace, 2) or []
            assert [e.type for e in after] == [DRIFT_DETECTED.type, DRIFT_ENDED.type]
            assert after[0].id == detected.id
            assert after[1].data["startedAt"] == detected.data["startedAt"]
            assert after[1].time == final["lastEpisode"]["endedAt"]
            marks["drift ended after clean traffic"] = ended_after
            marks["total"] = time.monotonic() - started
        finally:
            release_loopback_pods(kube, namespace)
    # After the operator stopped: KopfRunner captures stdout while it runs.
    print("\n" + ", ".join(f"{k} {v:.1f}s" for k, v in marks.items()))
    print(f"blue drift message: {drifted['message']}")


def drift_events_of(kube: Kube, namespace: str, count: int) -> list[Occurrence] | None:
    """The drift CloudEvents the stored endpoint implies, once there are `count` of them."""
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {}
    kinds = (DRIFT_DETECTED.type, DRIFT_ENDED.type)
    found = [e for e in implied_events("OnlineEndpoint", obj) if e.type in kinds]
    return found if len(found) == count else None


def remove_monitoring_crds(kube: Kube) -> None:
    for doc in yaml.safe_load_all(CRD_FILE.read_text()):
        kube.delete(CRD_API, "CustomResourceDefinition", doc["metadata"]["name"])
    for doc in yaml.safe_load_all(CRD_FILE.read_text()):
        wait_for(lambda n=doc["metadata"]["name"]: kube.get(CRD_API, "CustomResourceDefinition", n)
                 is None, timeout=20, interval=0.05, what="monitoring CRD removed")  # fmt: skip


@pytest.fixture
def monitoring_crds(kube: Kube) -> Iterator[None]:
    """The Prometheus Operator kinds, served for this test only."""
    for doc in yaml.safe_load_all(CRD_FILE.read_text()):
        kube.apply(doc, field_manager="mlkube-tests")
    for doc in yaml.safe_load_all(CRD_FILE.read_text()):
        name = doc["metadata"]["name"]
        wait_for(lambda n=name: established(kube, n), timeout=10, interval=0.05,
                 what=f"{name} Established")  # fmt: skip
    yield
    with contextlib.suppress(ApiError):
        remove_monitoring_crds(kube)


def test_service_monitor_and_rules_when_prometheus_operator_is_installed(
    kube: Kube,
    namespace: str,
    tmp_path: Path,
    monitoring_crds: None,
    running_operator: KopfRunner,
) -> None:
    for version in ("3", "4"):
        kube.create(model_object(f"credit-risk-v{version}", namespace,
                                 make_artifact(tmp_path / version, version), version))  # fmt: skip
    spec = {"deployments": [{"name": "blue", "model": "credit-risk-v3"}], "traffic": {"blue": 100}}
    kube.create(endpoint_object(EP, namespace, spec))
    obj = wait_endpoint_ready(kube, namespace, EP)
    owner = EndpointRef(EP, namespace, obj["metadata"]["uid"])
    config = operator_config()
    monitor = kube.get(MONITORING_API_VERSION, "ServiceMonitor", EP, namespace)
    rule = kube.get(MONITORING_API_VERSION, "PrometheusRule", EP, namespace)
    assert monitor is not None and rule is not None
    assert not is_subset(build_service_monitor(owner, config), monitor)
    parsed = OnlineEndpointSpec.model_validate(spec)
    assert not is_subset(build_prometheus_rule(owner, parsed, config), rule)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run hack/ensure-promtool"
    rules_file = tmp_path / "live-rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The Service the ServiceMonitor selects carries the labels it matches on.
    service = kube.get("v1", "Service", deployment_name(EP, "blue"), namespace)
    assert service is not None
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
