"""A Model at the CRD's size limits reaches a status, and a long error still gets written.

Before, Kopf copied the whole spec into the `mlkube.dev/last-handled-configuration` annotation:
for a CRD-valid Model with large lineage parameters and signature, that annotation alone was
over the 256 KiB the API server allows for all annotations, every patch of the Model failed,
and it never got a status. The essence is now compacted (`mlkube.reconcile.essence`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.api.common import MAX_MAP_ENTRIES, MAX_MESSAGE, MAX_TEXT, MAX_URI_LENGTH
from mlkube.api.model import ModelSpec
from mlkube.contract import API_VERSION, GROUP
from mlkube.k8s import Kube
from mlkube.reconcile.essence import TOTAL_LIMIT
from support.waiting import wait_for

DIFFBASE = f"{GROUP}/last-handled-configuration"
ANNOTATIONS_LIMIT = 256 * 1024


def tensor(i: int) -> dict[str, Any]:
    return {"name": f"t{i:04d}-" + "n" * 200, "datatype": "FP32", "shape": [-1] + [1024] * 31}


def large_model(name: str, namespace: str, uri: str) -> dict[str, Any]:
    spec = {
        "modelName": "credit-risk",
        "version": "3",
        "framework": "sklearn",
        "artifact": {"uri": uri},
        "description": "d" * MAX_TEXT,
        "properties": {f"key-{i:02d}": "p" * 256 for i in range(MAX_MAP_ENTRIES)},
        "lineage": {
            "parameters": {f"param-{i:02d}": "q" * MAX_TEXT for i in range(MAX_MAP_ENTRIES)},
            "metrics": {f"metric-{i:02d}": 0.5 for i in range(MAX_MAP_ENTRIES)},
        },
        "signature": {
            "inputs": [tensor(i) for i in range(400)],
            "outputs": [tensor(i) for i in range(400)],
        },
    }
    ModelSpec.model_validate(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def artifact(tmp_path: Path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"bytes to hash")
    return folder.as_uri()


def _status(kube: Kube, namespace: str, name: str, generation: int) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "Model", name, namespace) or {}
    status = obj.get("status") or {}
    done = status.get("phase") in ("Ready", "Failed")
    return obj if done and status.get("observedGeneration") == generation else None


def test_a_model_at_the_size_limits_gets_ready_and_keeps_its_audit(
    kube: Kube, namespace: str, artifact: str, running_operator: KopfRunner
) -> None:
    body = large_model("big", namespace, artifact)
    assert len(json.dumps(body["spec"])) > ANNOTATIONS_LIMIT
    kube.create(body)
    obj = wait_for(lambda: _status(kube, namespace, "big", 1), timeout=60, what="big Model status")
    assert obj["status"]["phase"] == "Ready", obj["status"].get("message")
    annotations = obj["metadata"]["annotations"]
    assert len(annotations[DIFFBASE]) <= TOTAL_LIMIT
    assert sum(len(k) + len(v) for k, v in annotations.items()) < ANNOTATIONS_LIMIT

    # A change inside a digested field is still a diff at its path (the audit trail shows it).
    kube.patch(API_VERSION, "Model", "big", {"spec": {"description": "shorter"}}, namespace)
    obj = wait_for(lambda: _status(kube, namespace, "big", 2), timeout=60, what="generation 2")
    assert obj["status"]["phase"] == "Ready"
    assert obj["status"]["history"][-1]["changes"] == ["spec.description"]


def test_an_error_longer_than_the_crd_allows_is_cut_and_written(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    # A missing file:// artifact at the URI's maximum length: the error names the URI twice,
    # which is more than status.message may hold (before, every status write got a 422).
    uri = tmp_path.as_uri()
    while len(uri) < MAX_URI_LENGTH:
        uri += "/" + "x" * min(200, MAX_URI_LENGTH - len(uri) - 1)
    assert len(uri) == MAX_URI_LENGTH
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "Model",
            "metadata": {"name": "broken", "namespace": namespace},
            "spec": {
                "modelName": "m",
                "version": "1",
                "framework": "sklearn",
                "artifact": {"uri": uri},
            },
        }
    )
    obj = wait_for(lambda: _status(kube, namespace, "broken", 1), timeout=60, what="Failed")
    status = obj["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith(f"cannot read artifact {uri[:100]}")
    assert "characters cut" in status["message"]
    assert len(status["message"]) <= MAX_MESSAGE
    assert all(len(c["message"]) <= MAX_MESSAGE for c in status["conditions"])
