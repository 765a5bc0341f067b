"""The generated CRDs on a real API server, and the operator's loop on the Model kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.contract import API_VERSION
from mlkube.k8s import ApiError, Kube
from mlkube.storage import compute_digest
from support.operator import run_operator
from support.waiting import wait_for


def model(name: str, namespace: str, uri: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "modelName": "credit-risk",
            "version": "3",
            "framework": "sklearn",
            "artifact": {"uri": uri},
            **spec,
        },
    }


@pytest.fixture
def artifact(tmp_path: Path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"not really a pickle, but bytes to hash")
    (folder / "conda.yaml").write_text("name: env\n")
    return folder.as_uri()


def test_every_generated_crd_is_established(kube: Kube, crds: list[str]) -> None:
    assert "models.mlkube.dev" in crds
    for name in crds:
        crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        assert crd is not None
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds.get("Established") == "True", name
        assert conds.get("NonStructuralSchema") != "True", name


def test_invalid_object_is_rejected_with_a_readable_message(
    kube: Kube, namespace: str, artifact: str
) -> None:
    bad = model("bad", namespace, artifact)
    bad["spec"]["framework"] = "tensorflow"
    with pytest.raises(ApiError) as err:
        kube.create(bad)
    assert err.value.status == 422
    assert "spec.framework" in str(err.value)
    assert "sklearn" in str(err.value)  # the message lists what is allowed


def test_cel_rule_rejects_changing_identity(kube: Kube, namespace: str, artifact: str) -> None:
    kube.create(model("m", namespace, artifact))
    with pytest.raises(ApiError) as err:
        kube.patch(API_VERSION, "Model", "m", {"spec": {"version": "4"}}, namespace)
    assert err.value.status == 422
    assert "immutable" in str(err.value)


def test_operator_sets_status_and_ready(
    kube: Kube, namespace: str, artifact: str, running_operator: KopfRunner
) -> None:
    kube.create(model("m", namespace, artifact))
    obj = wait_for(lambda: _ready(kube, namespace, "m"), what="Model Ready")
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["phase"] == "Ready"
    assert status["artifact"]["digest"] == compute_digest(artifact).digest
    assert status["artifact"]["fileCount"] == 2


def test_digest_mismatch_fails_the_model(
    kube: Kube, namespace: str, artifact: str, running_operator: KopfRunner
) -> None:
    wrong = "sha256:" + "0" * 64
    kube.create(model("m", namespace, artifact, **{"artifact": {"uri": artifact, "digest": wrong}}))

    def failed() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "Model", "m", namespace) or {}
        return obj if obj.get("status", {}).get("phase") == "Failed" else None

    obj = wait_for(failed, what="Model Failed")
    assert wrong in obj["status"]["message"]
    assert compute_digest(artifact).digest in obj["status"]["message"]


def test_restarting_the_operator_redoes_nothing(kube: Kube, namespace: str, artifact: str) -> None:
    with run_operator(namespace):
        kube.create(model("m", namespace, artifact))
        first = wait_for(lambda: _ready(kube, namespace, "m"), what="Model Ready")
    with run_operator(namespace):
        kube.create(model("m2", namespace, artifact))
        wait_for(lambda: _ready(kube, namespace, "m2"), what="second Model Ready")
        again = kube.get(API_VERSION, "Model", "m", namespace)
    assert again is not None
    assert again["status"] == first["status"]
    assert again["metadata"]["generation"] == first["metadata"]["generation"]
    events = kube.list("v1", "Event", namespace)
    verified = [
        e for e in events if e["involvedObject"]["name"] == "m" and e["reason"] == "Verified"
    ]
    assert len(verified) == 1
    assert sum(e.get("count", 1) for e in verified) == 1
    assert len(kube.list(API_VERSION, "Model", namespace)) == 2


def _ready(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "Model", name, namespace) or {}
    conds = obj.get("status", {}).get("conditions", [])
    ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    return obj if ok else None


@pytest.mark.parametrize(
    ("env", "uri_of", "reason", "says"),
    [
        # Two files, a cap of one: refused from the listing, nothing read.
        ({"MLKUBE_ARTIFACT_MAX_FILES": "1"}, lambda a: a, "ArtifactTooLarge",
         "holds 2 files, more than the cap of 1"),
        ({"MLKUBE_ARTIFACT_MAX_BYTES": "10"}, lambda a: a, "ArtifactTooLarge", "cap of 10"),
        # A store outside the namespace's allow-list (the Model names another team's bucket).
        ({"MLKUBE_ARTIFACT_STORES": "*=s3://shared"},
         lambda a: "s3://team-b-models/fraud/1/model.onnx", "ArtifactLocationRefused",
         "outside the stores"),
        # Loopback outside dev mode, and a listed internal network; both stand in for metadata
        # and Service addresses (unit tests cover those) so no traffic leaves this machine.
        ({"MLKUBE_ALLOW_FILE_ARTIFACTS": "false"}, lambda a: "http://127.0.0.1:9/model.pkl",
         "ArtifactLocationRefused", "loopback"),
        ({"MLKUBE_ARTIFACT_INTERNAL_NETWORKS": "127.0.0.2/32"},
         lambda a: "http://127.0.0.2:9/model.pkl", "ArtifactLocationRefused", "cluster-internal"),
    ],
)  # fmt: skip
def test_the_operator_refuses_what_it_must_not_fetch(
    kube: Kube, namespace: str, artifact: str, env: dict[str, str], uri_of: Any, reason: str,
    says: str,
) -> None:  # fmt: skip
    from mlkube.handlers.config import operator_config

    operator_config.cache_clear()
    try:
        with run_operator(namespace, env=env):
            kube.create(model("m", namespace, uri_of(artifact)))

            def failed() -> dict[str, Any] | None:
                obj = kube.get(API_VERSION, "Model", "m", namespace) or {}
                return obj if obj.get("status", {}).get("phase") == "Failed" else None

            status = wait_for(failed, what="Model Failed")["status"]
    finally:
        operator_config.cache_clear()
    assert says in status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == reason, ready
