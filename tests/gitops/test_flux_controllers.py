"""Flux for real (issue 14, item 4): source-controller and kustomize-controller, built from
the Go module proxy, run as processes against the dev control plane and apply mlkube Models
from a loopback MinIO bucket with the Kustomization from docs/deploy-flux.md — its
healthCheckExprs read from the page. The Kustomization is Ready once the Model the operator
verified is Ready, and fails within seconds (not at its 10-minute timeout) naming the Model
whose digest is wrong."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import ApiError, Kube
from mlkube.storage.digest import digest_of_contents
from support.flux import (
    ACCESS_KEY,
    FLUX_NAMESPACE,
    SECRET_KEY,
    FluxControllers,
    MinioBucket,
    apply_flux_crds,
    condition,
    flux_bin_dir,
    flux_controllers,
    minio_bucket,
    request_reconcile,
)
from support.gitops import REPO, flux_kustomization
from support.waiting import wait_for

KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
SOURCE = "source.toolkit.fluxcd.io/v1"
MODEL_BYTES = b"bytes to hash"
BAD_DIGEST = "sha256:" + "0" * 64


def _model(name: str, uri: str, digest: str) -> dict[str, Any]:
    # No namespace: the Kustomization's targetNamespace places it, as in a user's repository.
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"modelName": "credit-risk", "version": name, "framework": "sklearn",
                 "artifact": {"uri": uri, "digest": digest}},
    }  # fmt: skip


@pytest.fixture
def flux(
    kube: Kube, cluster: Cluster, running_operator: KopfRunner, tmp_path: Path
) -> Iterator[tuple[FluxControllers, MinioBucket]]:
    bin_dir = flux_bin_dir()
    apply_flux_crds(kube, bin_dir)
    with contextlib.suppress(ApiError):
        kube.create({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": FLUX_NAMESPACE}})  # fmt: skip
    with minio_bucket(tmp_path) as bucket, \
            flux_controllers(bin_dir, cluster.kubeconfig, tmp_path) as controllers:  # fmt: skip
        try:
            yield controllers, bucket
        finally:
            # While the controllers still run: their finalizers go with them (prune included).
            for api_version, kind in ((KUSTOMIZE, "Kustomization"), (SOURCE, "Bucket")):
                kube.delete(api_version, kind, "ml", FLUX_NAMESPACE)
                wait_for(lambda v=api_version, k=kind: kube.get(v, k, "ml", FLUX_NAMESPACE) is None,
                         timeout=30, what=f"{kind} ml deleted")  # fmt: skip


def _source(kube: Kube, bucket: MinioBucket) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "ml-bucket", "namespace": FLUX_NAMESPACE},
                "stringData": {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}},
               field_manager="mlkube-tests")  # fmt: skip
    kube.apply({"apiVersion": SOURCE, "kind": "Bucket",
                "metadata": {"name": "ml", "namespace": FLUX_NAMESPACE},
                "spec": {"interval": "1m", "provider": "generic", "bucketName": bucket.name,
                         "endpoint": bucket.endpoint, "insecure": True,
                         "secretRef": {"name": "ml-bucket"}}},
               field_manager="mlkube-tests")  # fmt: skip


def _documented_kustomization(namespace: str) -> dict[str, Any]:
    """docs/deploy-flux.md's Kustomization as written, its source swapped for the Bucket and
    its target for the namespace the operator watches."""
    doc = flux_kustomization((REPO / "docs" / "deploy-flux.md").read_text())
    assert doc["metadata"] == {"name": "ml", "namespace": FLUX_NAMESPACE}
    assert doc["spec"]["wait"] is True and doc["spec"]["timeout"] == "10m"
    doc["spec"]["sourceRef"] = {"kind": "Bucket", "name": "ml"}
    doc["spec"]["targetNamespace"] = namespace
    return doc


def _report(line: str) -> None:
    """Timings for `-s` runs: KopfRunner redirects sys.stdout while the operator runs."""
    if sys.__stdout__ is not None:
        sys.__stdout__.write(f"\n{line}\n")


def _ready(kube: Kube, status: str) -> dict[str, Any] | None:
    obj = kube.get(KUSTOMIZE, "Kustomization", "ml", FLUX_NAMESPACE)
    ready = condition(obj, "Ready")
    return ready if ready and ready["status"] == status else None


def test_flux_applies_models_and_reports_their_health(
    kube: Kube,
    namespace: str,
    flux: tuple[FluxControllers, MinioBucket],
    tmp_path: Path,
) -> None:
    controllers, bucket = flux
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(MODEL_BYTES)
    good_digest = digest_of_contents([("model.pkl", MODEL_BYTES)]).digest
    good = _model("good", folder.as_uri(), good_digest)
    bucket.put("ml/models.yaml", [good])
    _source(kube, bucket)
    started = time.monotonic()
    kube.apply(_documented_kustomization(namespace), field_manager="mlkube-tests")

    try:
        ready = wait_for(lambda: _ready(kube, "True"), timeout=120, what="Kustomization Ready")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{controllers.output()}") from err
    model = kube.get(API_VERSION, "Model", "good", namespace)
    assert model is not None and model["status"]["phase"] == "Ready", model
    applied = kube.get(KUSTOMIZE, "Kustomization", "ml", FLUX_NAMESPACE) or {}
    entries = applied["status"]["inventory"]["entries"]
    assert [e["id"] for e in entries] == [f"{namespace}_good_mlkube.dev_Model"], entries
    _report(f"Kustomization Ready after {time.monotonic() - started:.1f}s: {ready['message']}")

    # A new revision adds a Model whose digest is wrong: the operator fails it, Flux's health
    # expressions see Failed and the Kustomization fails at once, not after its 10 minutes.
    bucket.put("ml/models.yaml", [good, _model("bad", folder.as_uri(), BAD_DIGEST)])
    changed = time.monotonic()
    request_reconcile(kube, SOURCE, "Bucket", "ml")
    try:
        failed = wait_for(lambda: _ready(kube, "False"), timeout=90, what="Kustomization failed")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{controllers.output()}") from err
    took = time.monotonic() - changed
    _report(f"Kustomization failed after {took:.1f}s: {failed['message']}")
    assert failed["reason"] == "HealthCheckFailed", failed
    assert f"Model/{namespace}/bad" in failed["message"], failed
    assert "good" not in failed["message"], failed
    assert took < 30, f"the failure took {took:.1f}s (timeout 10m)"
    bad = kube.get(API_VERSION, "Model", "bad", namespace)
    assert bad is not None and bad["status"]["phase"] == "Failed", bad
