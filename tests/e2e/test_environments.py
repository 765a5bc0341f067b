"""Environments on the real node (issue 17 "Tests", e2e list, and "Done means"):

- `mlkube env create --name lgbm --version 1 --pip requirements.txt` (lightgbm, from the dev
  package mirror on the bridge: build pods have no route off the machine) is built by the
  cluster on the curated scikit-learn environment (pushed to the dev registry by the dev
  cluster) and reports a digest, the package list and a size;
- a scoring-script Model importing lightgbm, served by an endpoint deployment with
  `environment: lgbm:1` (the node pulls the image from the dev registry), answers with
  lightgbm's predictions, and `mlkube model show` lists the environment digest in its lineage;
- the same script without the environment fails, the endpoint's message naming the module;
- a packaged model (`mlkube model package`) serves with no storage initializer;
- a rebuild with identical inputs makes no new image (same digest, no Job, no new tag).

Build times (cold: first build, the curated base pulled from the dev registry; cached: new
inputs, base on the node; reuse: identical inputs) and image sizes are printed
(docs/environments.md §9 has the figures).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.dev import start_operator
from mlkube.contract import API_VERSION, KIND_MODEL
from mlkube.devcluster import Cluster, procs
from mlkube.devcluster.buildsupport import BUILD_NAMESPACE
from mlkube.devcluster.realnode import RealNode, operator_env
from mlkube.devcluster.realnode_config import BUILD_ADDRESSES
from mlkube.devcluster.realnode_store import BUCKET, build_storage_secret
from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import apply_crds
from mlkube.storage import publish
from support.node_store import store_env
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
KIND_ENV = "Environment"
LIGHTGBM = "lightgbm==4.7.0"  # in the dev package mirror (devcluster/mirror.py)
SCRIPT = """
import json

import lightgbm  # provided by the environment, not by the serving image
import numpy as np

booster = None


def init():
    global booster
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(float)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=5)


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=float)
    return {"lightgbm": lightgbm.__version__, "p": booster.predict(rows).tolist()}
"""
REQUEST = {"inputs": [{"name": "X", "shape": [2, 3], "datatype": "FP64",
                       "data": [2.0, 2.0, 0.0, -2.0, -2.0, 0.0]}]}  # fmt: skip
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def env_cluster(node_cluster: tuple[Cluster, RealNode], kube: Kube) -> Iterator[str]:
    """The operator with the dev cluster's build settings; a restricted namespace for the
    environments, models and endpoints (build pods run in the build namespace)."""
    cluster, node = node_cluster
    apply_crds(kube, REPO / "crds", field_manager="mlkube-e2e")
    env = operator_env(node)
    assert env["MLKUBE_BUILD_REGISTRY"] == f"{BUILD_ADDRESSES.registry}/mlkube"
    start_operator(cluster, kube, env)
    ns = f"e2e-env-{uuid.uuid4().hex[:6]}"
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
    kube.create({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": ns, "labels": labels}})  # fmt: skip
    kube.create(build_storage_secret(ns, node.store_env()["AWS_SECRET_ACCESS_KEY"]))
    yield ns
    print(f"\nenvironment figures: {json.dumps(FIGURES, indent=1)}")
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", ns)
    procs.stop(cluster.state.pids.pop("operator"))


def mlkube(cluster: Cluster, *args: str, timeout: float = 900) -> str:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run([sys.executable, "-m", "mlkube", *args], capture_output=True,
                            text=True, env=env, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, f"mlkube {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result.stdout


def environment(kube: Kube, ns: str, name: str, version: str) -> dict[str, Any]:
    for obj in kube.list(API_VERSION, KIND_ENV, ns):
        if (obj["spec"]["environmentName"], obj["spec"]["version"]) == (name, version):
            return obj
    raise AssertionError(f"no Environment {name}:{version} in {ns}")


def wait_env_ready(kube: Kube, ns: str, name: str, version: str, timeout: float) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        status = environment(kube, ns, name, version).get("status") or {}
        if status.get("phase") == "Failed":
            raise AssertionError(f"environment {name}:{version} failed: {status}")
        return status if status.get("phase") == "Ready" else None

    what = f"environment {name}:{version} Ready"
    return dict(wait_for(ready, timeout=timeout, interval=1, what=what))


def registry_get(path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{BUILD_ADDRESSES.registry}{path}")
    req.add_header("Accept", "application/vnd.oci.image.manifest.v1+json, "
                   "application/vnd.docker.distribution.manifest.v2+json")  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def env_tags() -> list[str]:
    try:
        return sorted(registry_get("/v2/mlkube/environments/tags/list").get("tags") or [])
    except urllib.error.HTTPError:
        return []


def build_jobs(kube: Kube) -> list[dict[str, Any]]:
    return [j for j in kube.list("batch/v1", "Job", BUILD_NAMESPACE)
            if j["metadata"]["name"].startswith("envbuild-")]  # fmt: skip


def image_sizes(status: dict[str, Any]) -> dict[str, int]:
    """Compressed sizes from the registry: the whole image and the layer the build added."""
    manifest = registry_get(f"/v2/mlkube/environments/manifests/{status['imageDigest']}")
    layers = [int(layer["size"]) for layer in manifest["layers"]]
    return {"imageBytes": sum(layers), "addedLayerBytes": layers[-1], "layers": len(layers)}


def register_script_model(kube: Kube, node: RealNode, ns: str, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(SCRIPT)
    with store_env(node.store_env()):
        uri, _ = publish(str(folder), f"s3://{BUCKET}", namespace=ns, name="lgbm-score",
                         version="1")  # fmt: skip
    kube.create({
        "apiVersion": API_VERSION, "kind": KIND_MODEL,
        "metadata": {"name": "lgbm-score-v1", "namespace": ns},
        "spec": {"modelName": "lgbm-score", "version": "1", "framework": "custom",
                 "entrypoint": {"path": "score.py"}, "artifact": {"uri": uri}},
    })  # fmt: skip
    wait_for(lambda: ((kube.get(API_VERSION, KIND_MODEL, "lgbm-score-v1", ns) or {})
                      .get("status") or {}).get("phase") == "Ready",
             timeout=120, interval=0.5, what="Model lgbm-score-v1 Ready")  # fmt: skip
    return "lgbm-score-v1"


def serve(kube: Kube, ns: str, endpoint: str, deployment: dict[str, Any]) -> None:
    kube.create({"apiVersion": API_VERSION, "kind": "OnlineEndpoint",
                 "metadata": {"name": endpoint, "namespace": ns},
                 "spec": {"deployments": [{"name": "blue", "replicas": 1, **deployment}],
                          "traffic": {"blue": 100}}})  # fmt: skip


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), {})


def endpoint_ready(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", name, ns) or {}
        current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"][
            "generation"
        ]
        return obj if current and condition(obj, "Ready").get("status") == "True" else None

    try:
        return dict(wait_for(ready, timeout=300, interval=1, what=f"endpoint {name} Ready"))
    except AssertionError as err:
        raise AssertionError(f"{err}\n{describe(kube, ns, name)}") from None


def describe(kube: Kube, ns: str, endpoint: str) -> str:
    """The endpoint's conditions and its pods' container states (for a failure message)."""
    obj = kube.get(API_VERSION, "OnlineEndpoint", endpoint, ns) or {}
    lines = [f"{c['type']}={c['status']} {c.get('reason')}: {c.get('message')}"
             for c in (obj.get("status") or {}).get("conditions") or []]  # fmt: skip
    for pod in kube.list("v1", "Pod", ns, label_selector=f"mlkube.dev/endpoint={endpoint}"):
        states = [(c["name"], c.get("state")) for c in
                  (pod.get("status") or {}).get("containerStatuses") or []]  # fmt: skip
        lines.append(f"pod {pod['metadata']['name']}: {states}")
    return "\n".join(lines)


def infer(kube: Kube, ns: str, endpoint: str) -> dict[str, Any]:
    service = kube.get("v1", "Service", endpoint, ns)
    assert service is not None
    url = f"http://{service['spec']['clusterIP']}/v2/models/lgbm-score/infer"

    def answer() -> dict[str, Any] | None:
        req = urllib.request.Request(url, data=json.dumps(REQUEST).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return dict(json.loads(resp.read()))
        except OSError:
            return None  # the Service routes a second or so after Ready

    body = wait_for(answer, timeout=60, interval=0.5, what=f"an answer from {endpoint}")
    return dict(json.loads(body["outputs"][0]["data"][0]))


def run_pod(
    cluster: Cluster, kube: Kube, ns: str, name: str, image: str, command: list[str]
) -> str:
    """A restricted pod run to completion; its log (the pod must succeed)."""
    kube.create({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": command,
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    })  # fmt: skip

    def done() -> str | None:
        pod = kube.get("v1", "Pod", name, ns) or {}
        phase = (pod.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(done, timeout=300, interval=1, what=f"pod {name} done")
    _, body = cluster.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log")
    log = str(body.get("raw", body))
    assert phase == "Succeeded", f"pod {name}: {phase}: {log}"
    return log


def test_an_environment_adding_lightgbm_is_built_by_the_cluster(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, env_cluster: str, tmp_path: Path
) -> None:
    cluster, ns = node_cluster[0], env_cluster
    (tmp_path / "requirements.txt").write_text(f"{LIGHTGBM}\n")
    started = time.monotonic()
    mlkube(cluster, "env", "create", "-n", ns, "--name", "lgbm", "--version", "1",
           "--pip", str(tmp_path / "requirements.txt"))  # fmt: skip
    status = wait_env_ready(kube, ns, "lgbm", "1", timeout=900)
    FIGURES["coldBuildSeconds"] = round(time.monotonic() - started, 1)
    FIGURES["coldBuildJobSeconds"] = (status.get("build") or {}).get("durationSeconds")
    assert status["imageDigest"].startswith("sha256:")
    repository = f"{BUILD_ADDRESSES.registry}/mlkube/environments"
    assert status["image"] == f"{repository}@{status['imageDigest']}"
    assert LIGHTGBM in status["packages"]
    assert (status.get("build") or {}).get("reused") is False
    FIGURES["sizeBytes"] = status.get("sizeBytes")
    FIGURES["lgbm"] = image_sizes(status)
    shown = mlkube(cluster, "env", "show", "-n", ns, "lgbm:1")
    assert status["imageDigest"] in shown


def test_pods_pull_curated_images_from_the_dev_registry_and_install_from_the_mirror(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, env_cluster: str
) -> None:
    """The dev cluster's part alone: the node's containerd pulled the pushed curated image by
    digest over plain HTTP (hosts.toml; the cold build above pulled it as its base), and a
    pod on the bridge installs lightgbm from the wheelhouse with no index (no route off the
    machine)."""
    (cluster, node), ns = node_cluster, env_cluster
    env = operator_env(node)
    curated = dict(kv.split("=", 1) for kv in env["MLKUBE_CURATED_ENVIRONMENTS"].split(","))
    image = curated["mlkube-sklearn"]
    assert image.startswith(f"{BUILD_ADDRESSES.registry}/mlkube/") and "@sha256:" in image
    script = (
        "import subprocess, sys, mlkube_serving; "
        "subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', "
        "'--target', '/tmp/t', '--no-index', '--find-links', sys.argv[1], "
        "'--trusted-host', sys.argv[2], sys.argv[3]], check=True); "
        "sys.path.insert(0, '/tmp/t'); import lightgbm; print('lightgbm', lightgbm.__version__)"
    )
    command = ["python", "-c", script, env["MLKUBE_BUILD_PIP_FIND_LINKS"],
               env["MLKUBE_BUILD_PIP_TRUSTED_HOSTS"], LIGHTGBM]  # fmt: skip
    started = time.monotonic()
    log = run_pod(cluster, kube, ns, "mirror-check", image, command)
    assert f"lightgbm {LIGHTGBM.split('==')[1]}" in log
    FIGURES["podPipInstallFromMirrorSeconds"] = round(time.monotonic() - started, 1)
    pulled = subprocess.run(
        ["ctr", "-a", node.socket(), "-n", "k8s.io", "images", "ls", "-q"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert image in pulled, f"{image} not pulled by the node: {pulled}"


def test_a_rebuild_with_identical_inputs_makes_no_new_image(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, env_cluster: str, tmp_path: Path
) -> None:
    cluster, ns = node_cluster[0], env_cluster
    first = environment(kube, ns, "lgbm", "1")["status"]
    tags, jobs = env_tags(), len(build_jobs(kube))
    assert f"build-{first['buildKey'].removeprefix('sha256:')[:32]}" in tags
    (tmp_path / "requirements.txt").write_text(f"{LIGHTGBM}\n")
    started = time.monotonic()
    mlkube(cluster, "env", "create", "-n", ns, "--name", "lgbm", "--version", "2",
           "--pip", str(tmp_path / "requirements.txt"))  # fmt: skip
    status = wait_env_ready(kube, ns, "lgbm", "2", timeout=120)
    FIGURES["reuseSeconds"] = round(time.monotonic() - started, 1)
    assert status["buildKey"] == first["buildKey"]
    assert status["imageDigest"] == first["imageDigest"]
    assert (status.get("build") or {}).get("reused") is True
    assert env_tags() == tags  # no new image in the registry
    assert len(build_jobs(kube)) == jobs  # and no build ran


def test_a_build_with_new_inputs_on_a_cached_base(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, env_cluster: str
) -> None:
    """The cached figure: a different build key (an ENV line) with the base already pulled."""
    ns = env_cluster
    first = environment(kube, ns, "lgbm", "1")
    spec = {**first["spec"], "version": "3"}
    spec["build"] = {**spec["build"], "env": [{"name": "OMP_NUM_THREADS", "value": "1"}]}
    spec.pop("description", None)
    started = time.monotonic()
    kube.create({"apiVersion": API_VERSION, "kind": KIND_ENV,
                 "metadata": {"name": "lgbm-3", "namespace": ns}, "spec": spec})  # fmt: skip
    status = wait_env_ready(kube, ns, "lgbm", "3", timeout=900)
    FIGURES["cachedBuildSeconds"] = round(time.monotonic() - started, 1)
    FIGURES["cachedBuildJobSeconds"] = (status.get("build") or {}).get("durationSeconds")
    assert status["buildKey"] != first["status"]["buildKey"]
    assert status["imageDigest"] != first["status"]["imageDigest"]
    assert (status.get("build") or {}).get("reused") is False


def test_a_scoring_script_importing_lightgbm_is_served_from_the_environment(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, env_cluster: str, tmp_path: Path
) -> None:
    (cluster, node), ns = node_cluster, env_cluster
    model = register_script_model(kube, node, ns, tmp_path / "model")
    serve(kube, ns, "lgbm", {"model": model, "environment": "lgbm:1"})
    obj = endpoint_ready(kube, ns, "lgbm")
    env_status = environment(kube, ns, "lgbm", "1")["status"]
    recorded = next(d for d in obj["status"]["deployments"] if d["name"] == "blue")
    assert recorded["environment"]["image"] == env_status["image"]
    answer = infer(kube, ns, "lgbm")
    assert answer["lightgbm"] == LIGHTGBM.split("==")[1]
    assert answer["p"][0] > 0.5 > answer["p"][1]
    # The lineage names the environment by digest.
    shown = mlkube(cluster, "model", "show", "-n", ns, "lgbm-score:1")
    assert "lgbm:1" in shown and env_status["imageDigest"] in shown


def test_the_same_script_without_the_environment_names_the_missing_module(
    kube: Kube, env_cluster: str
) -> None:
    ns = env_cluster
    serve(kube, ns, "bare", {"model": "lgbm-score-v1"})

    def failing() -> str | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", "bare", ns) or {}
        messages = [c.get("message") or "" for c in (obj.get("status") or {}).get("conditions", [])]
        return next((m for m in messages if "lightgbm" in m), None)

    message = wait_for(failing, timeout=240, interval=1, what="a message naming lightgbm")
    print(f"\nwithout the environment: {message}")
    assert "No module named 'lightgbm'" in message or "ModuleNotFoundError" in message


def test_a_packaged_model_serves_without_a_storage_initializer(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, env_cluster: str
) -> None:
    cluster, ns = node_cluster[0], env_cluster
    started = time.monotonic()
    out = mlkube(
        cluster,
        "model",
        "package",
        "-n",
        ns,
        "lgbm-score:1",
        "--environment",
        "lgbm:1",
        "--wait",
        "900",
    )
    FIGURES["packageSeconds"] = round(time.monotonic() - started, 1)
    status = wait_env_ready(kube, ns, "lgbm-score-pkg", "1", timeout=600)
    assert status["image"] in out
    assert (status.get("packagedModel") or {}).get("name") == "lgbm-score-v1"
    FIGURES["packaged"] = image_sizes(status)
    serve(kube, ns, "packaged", {"model": "lgbm-score-v1", "environment": "lgbm-score-pkg:1"})
    endpoint_ready(kube, ns, "packaged")
    deployments = kube.list("apps/v1", "Deployment", ns,
                            label_selector="mlkube.dev/endpoint=packaged")  # fmt: skip
    pods = [d["spec"]["template"]["spec"] for d in deployments]
    server = [p for p in pods if any(c["name"] == "server" for c in p["containers"])]
    assert len(server) == 1
    assert not server[0].get("initContainers"), "a packaged model needs no storage initializer"
    env = {e["name"]: e.get("value") for c in server[0]["containers"] for e in c.get("env", [])}
    assert env.get("MLKUBE_MODEL_DIR") == "/opt/mlkube/model"
    assert infer(kube, ns, "packaged")["lightgbm"] == LIGHTGBM.split("==")[1]
