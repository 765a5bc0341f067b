"""The serving image in a real pod: the model-server Deployment exactly as the operator builds
it (storage initializer + server, restricted security context) downloads the sample credit-risk
model from this machine, becomes Ready and answers an inference from the host; from inside the
running container the restrictions hold and the pod network stays on this machine."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.stream import stream

from mlkube.api.endpoint import OnlineDeployment
from mlkube.builders.endpoint_server import build_server_deployment
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_config import BRIDGE
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.artifacts import artifact_server
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "examples" / "models" / "credit-risk" / "3"


def ready_pod(kube: Kube, namespace: str) -> dict[str, Any] | None:
    for pod in kube.list("v1", "Pod", namespace):
        conds = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            return pod
    return None


def exec_python(kubeconfig: Path, pod: dict[str, Any], code: str) -> Any:
    """Run Python in the pod's server container; the code prints one JSON document."""
    api = k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=str(kubeconfig)))
    out = stream(
        api.connect_get_namespaced_pod_exec,
        pod["metadata"]["name"],
        pod["metadata"]["namespace"],
        container="server",
        command=["python", "-c", code],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def serving_pod(node_cluster: tuple[Cluster, RealNode], kube: Kube) -> Iterator[dict[str, Any]]:
    node = node_cluster[1]
    namespace = "e2e-serving"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    with artifact_server(MODEL_DIR) as base:
        uri = f"{base}model.onnx"
        model = ModelFacts(
            name="credit-risk-v3",
            model_name="credit-risk",
            version="3",
            framework="onnx",
            uri=uri,
            digest=compute_digest(uri).digest,
        )
        config = OperatorConfig(serving_image=node.images["serving"], image_pull_policy="Never")
        dep = OnlineDeployment.model_validate({"name": "blue", "model": "credit-risk-v3"})
        owner = EndpointRef(name="credit", namespace=namespace, uid="e2e")
        deployment = build_server_deployment(owner, dep, model, config)
        # No OnlineEndpoint owns it here (the garbage collector would remove an orphan).
        deployment["metadata"].pop("ownerReferences", None)
        deployment["spec"]["replicas"] = 1
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
        kube.create(deployment)
        pod = wait_for(
            lambda: ready_pod(kube, namespace), timeout=180, interval=0.5, what="serving pod Ready"
        )
        yield pod
    kube.delete("v1", "Namespace", namespace)


def test_serving_pod_answers_inference_from_the_host(serving_pod: dict[str, Any]) -> None:
    request = (MODEL_DIR / "sample-request.json").read_bytes()
    url = f"http://{serving_pod['status']['podIP']}:8080/v2/models/credit-risk/infer"
    req = urllib.request.Request(
        url, data=request, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        body = json.loads(resp.read())
    assert body["model_name"] == "credit-risk"
    assert body["outputs"] and body["outputs"][0]["data"]


def test_serving_pod_answers_the_same_over_grpc(serving_pod: dict[str, Any]) -> None:
    """The Open Inference Protocol over gRPC on the pod's grpc port (8081), with tritonclient:
    the same prediction as over HTTP for the sample request."""
    sample = json.loads((MODEL_DIR / "sample-request.json").read_bytes())
    ip = serving_pod["status"]["podIP"]
    req = urllib.request.Request(f"http://{ip}:8080/v2/models/credit-risk/infer",
                                 data=json.dumps(sample).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        over_http = json.loads(resp.read())["outputs"][0]
    client = triton_grpc.InferenceServerClient(f"{ip}:8081")
    assert client.is_server_ready() and client.is_model_ready("credit-risk")
    tensors = []
    for given in sample["inputs"]:
        tensor = triton_grpc.InferInput(given["name"], given["shape"], given["datatype"])
        dtype = np.float32 if given["datatype"] == "FP32" else np.float64
        tensor.set_data_from_numpy(np.array(given["data"], dtype=dtype).reshape(given["shape"]))
        tensors.append(tensor)
    result = client.infer("credit-risk", tensors)
    assert result.as_numpy(over_http["name"]).reshape(-1).tolist() == over_http["data"]


INSIDE = r"""
import errno, json, os, socket
def root_write():
    try:
        open("/mlkube-probe", "w")
    except OSError as err:
        return errno.errorcode.get(err.errno)
    return "written"
lines = open("/proc/self/status").read().splitlines()
status = dict(l.split(":\t", 1) for l in lines if ":\t" in l)
def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError:
        return None
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "root_write": root_write(),
    "sa_token": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount"),
    "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip(),
    "api_dns": resolve("kubernetes.default.svc.cluster.local"),
    "outside_dns": resolve("deb.debian.org"),
    "api_reachable": connect("10.96.0.1", 443),
}))
"""


def test_restrictions_hold_inside_the_running_container(
    node_cluster: tuple[Cluster, RealNode], serving_pod: dict[str, Any]
) -> None:
    facts = exec_python(node_cluster[0].kubeconfig, serving_pod, INSIDE)
    assert facts["uid"] != 0 and facts["gid"] != 0
    assert facts["root_write"] == "EROFS"
    assert facts["sa_token"] is False
    assert facts["no_new_privs"] == "1"
    assert int(facts["cap_eff"], 16) == 0


def test_pod_network_resolves_cluster_names_only_and_reaches_the_api_server(
    node_cluster: tuple[Cluster, RealNode], serving_pod: dict[str, Any]
) -> None:
    facts = exec_python(node_cluster[0].kubeconfig, serving_pod, INSIDE)
    assert facts["api_dns"] == "10.96.0.1"
    assert facts["outside_dns"] is None
    assert facts["api_reachable"] is True


def test_only_the_bridge_forwards(serving_pod: dict[str, Any]) -> None:
    """Pods run and reach Services, yet the global net.ipv4.ip_forward stays off."""
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"
    assert Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding").read_text().strip() == "1"
