"""GitOps health on live objects (issue 14, item 4): the `kubectl apply --server-side` line of
docs/deploy-argocd.md, run against the real API server into an existing argocd-cm, keeps Argo
CD's other settings and installs the four checks; the scripts read back from that ConfigMap
and the Flux expressions read from docs/deploy-flux.md then judge Models the operator really
verified and failed, one it has not seen, and BatchEndpoints on top of them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.devcluster.kubectl import kubectl_binary
from mlkube.k8s import ApiError, Kube
from support.gitops import REPO, flux_kustomization, run_argolua_cm, run_fluxcel, tool_binary
from support.shell_blocks import command_lines, fenced_block
from support.waiting import wait_for

BAD_DIGEST = "sha256:" + "0" * 64


def _model(name: str, namespace: str, uri: str, **artifact: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelName": "credit-risk", "version": name, "framework": "sklearn",
                 "artifact": {"uri": uri, **artifact}},
    }  # fmt: skip


def _phase(kube: Kube, namespace: str, name: str, phase: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "Model", name, namespace)
    return obj if obj and obj.get("status", {}).get("phase") == phase else None


def _batch_endpoint(name: str, namespace: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"deployments": [{"name": "main", "model": model}]},
    }


def _condition(kube: Kube, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "BatchEndpoint", name, namespace)
    conds = (obj or {}).get("status", {}).get("conditions", [])
    return obj if any(c["type"] == type_ and c["status"] == "True" for c in conds) else None


def _dump(tmp_path: Path, named: dict[str, dict[str, Any]]) -> list[Path]:
    paths = []
    for name, obj in named.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(obj))
        paths.append(path)
    return paths


def _install_checks_as_documented(cluster: Cluster, tmp_path: Path) -> None:
    """The documented line, verbatim, with a kubectl matching the cluster first on PATH."""
    section = (REPO / "docs" / "deploy-argocd.md").read_text()
    [line] = command_lines(fenced_block(section, "## Install the health checks"))
    assert line.startswith("kubectl apply --server-side")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(kubectl_binary())
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "KUBECONFIG": str(cluster.kubeconfig)}  # fmt: skip
    run = subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr


@pytest.fixture
def argocd_namespace(kube: Kube) -> Any:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
    yield "argocd"
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", "argocd")


def test_live_models_get_their_argocd_and_flux_health(
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    running_operator: KopfRunner,
    argocd_namespace: str,
    tmp_path: Path,
) -> None:
    argolua = tool_binary("argolua", "MLKUBE_ARGOLUA_BIN")
    fluxcel = tool_binary("fluxcel", "MLKUBE_FLUXCEL_BIN")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"bytes to hash")
    created = time.monotonic()
    kube.create(_model("good", namespace, folder.as_uri()))
    kube.create(_model("bad", namespace, folder.as_uri(), digest=BAD_DIGEST))
    failed_after = 0.0

    def failed() -> dict[str, Any] | None:
        nonlocal failed_after
        failed_after = time.monotonic() - created
        return _phase(kube, namespace, "bad", "Failed")

    bad = wait_for(failed, timeout=60, what="Model bad Failed")
    good = wait_for(lambda: _phase(kube, namespace, "good", "Ready"), timeout=60, what="Ready")
    assert failed_after < 10, f"a failed Model took {failed_after:.1f}s to show"
    # A Model no operator watches (another namespace): exactly what a fresh object looks like.
    unseen_ns = f"t-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": unseen_ns}})
    try:
        unseen = kube.create(_model("unseen", unseen_ns, folder.as_uri()))
    finally:
        with contextlib.suppress(ApiError):
            kube.delete("v1", "Namespace", unseen_ns)
    # The CRD defaults status (docs/status.md): generation 1, observed 0, nothing else.
    assert unseen.get("status") == {"observedGeneration": 0}, unseen.get("status")
    objects = _dump(tmp_path, {"good": good, "bad": bad, "unseen": unseen})
    kube.create(_batch_endpoint("ep-good", namespace, "good"))
    kube.create(_batch_endpoint("ep-bad", namespace, "bad"))
    ep_good = wait_for(lambda: _condition(kube, namespace, "ep-good", "Ready"), timeout=60,
                       what="BatchEndpoint ep-good Ready")  # fmt: skip
    ep_bad = wait_for(lambda: _condition(kube, namespace, "ep-bad", "Degraded"), timeout=60,
                      what="BatchEndpoint ep-bad Degraded")  # fmt: skip
    endpoints = _dump(tmp_path, {"ep-good": ep_good, "ep-bad": ep_bad})

    # Argo CD: an argocd-cm that exists already (Argo CD's install made it) keeps its settings.
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "argocd-cm", "namespace": argocd_namespace,
                              "labels": {"app.kubernetes.io/part-of": "argocd"}},
                 "data": {"url": "https://argocd.example.com"}})  # fmt: skip
    _install_checks_as_documented(cluster, tmp_path)
    cm = kube.get("v1", "ConfigMap", "argocd-cm", argocd_namespace)
    assert cm is not None
    assert cm["data"]["url"] == "https://argocd.example.com"
    # Argo CD's way: the script argocd-cm holds for each object's group/kind.
    configmap = tmp_path / "argocd-cm.yaml"
    configmap.write_text(yaml.safe_dump(cm))
    health = [r.get("got") for r in run_argolua_cm(argolua, configmap, objects + endpoints)]
    assert health[0] == {"status": "Healthy", "message": "artifact verified"}
    assert health[1]["status"] == "Degraded"
    assert "digest" in health[1]["message"]
    assert health[2]["status"] == "Progressing"
    assert [h["status"] for h in health[3:]] == ["Healthy", "Degraded"]
    assert "bad" in health[4]["message"]

    # Flux: the Kustomization from the docs, with Flux's own evaluator.
    kustomization = tmp_path / "kustomization.yaml"
    doc = (REPO / "docs" / "deploy-flux.md").read_text()
    kustomization.write_text(yaml.safe_dump(flux_kustomization(doc)))
    flux = run_fluxcel(fluxcel, kustomization, objects)
    assert [r.get("status") for r in flux[:2]] == ["Current", "Failed"]
    # Not yet seen (observedGeneration 0 of generation 1): in progress, never Current.
    assert flux[2].get("status") == "InProgress", flux[2]
    flux = run_fluxcel(fluxcel, kustomization, endpoints)
    assert [r.get("status") for r in flux] == ["Current", "Failed"]
