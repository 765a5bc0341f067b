"""The Model controller: verification verdicts, retries of transient storage errors, and the
pvc:// verification Job against the in-memory API."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.model_retry import MAX_DELAY
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import model as controller
from mlkube.storage import StorageError, compute_digest
from support.cluster_objects import NOW, NS
from support.fake_kube import FakeKube

CONFIG = OperatorConfig(
    serving_image="registry.example/mlkube-serving:1", allow_file_artifacts=True
)


def model(uri: str, digest: str | None = None, **status: Any) -> dict[str, Any]:
    artifact = {"uri": uri, **({"digest": digest} if digest else {})}
    return {
        "apiVersion": "mlkube.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "fraud-v1", "namespace": NS, "uid": "m-uid", "generation": 1},
        "spec": {"modelName": "fraud", "version": "1", "framework": "onnx", "artifact": artifact},
        "status": status,
    }


@pytest.fixture
def artifact(tmp_path: Path) -> str:
    (tmp_path / "model.onnx").write_bytes(b"weights")
    return tmp_path.as_uri()


def ready_reason(status: dict[str, Any]) -> str:
    return str(next(c for c in status["conditions"] if c["type"] == "Ready")["reason"])


def run(obj: dict[str, Any], attempt: int = 0, created: bool = True) -> controller.ModelOutcome:
    return controller.reconcile(
        FakeKube(), CONFIG, obj, created=created, changes=["spec"], now=NOW, attempt=attempt
    )


def test_a_readable_artifact_is_verified_once(artifact: str) -> None:
    outcome = run(model(artifact))
    assert outcome.status["phase"] == "Ready"
    assert outcome.status["artifact"]["digest"] == compute_digest(artifact).digest
    assert [e[1] for e in outcome.events] == ["Registered", "Verified"]
    assert outcome.retry_delay is None
    again = run(model(artifact, **outcome.status), created=False)
    assert again == controller.ModelOutcome()  # level reached: nothing to redo


@pytest.mark.parametrize(
    ("uri_suffix", "digest"),
    [("/missing", None), ("", "sha256:" + "0" * 64)],
    ids=["not-found", "digest-mismatch"],
)
def test_verdicts_about_the_artifact_fail_for_good(
    artifact: str, uri_suffix: str, digest: str | None
) -> None:
    outcome = run(model(artifact + uri_suffix, digest))
    assert outcome.status["phase"] == "Failed"
    assert outcome.retry_delay is None


def test_an_unsupported_scheme_fails_for_good() -> None:
    outcome = run(model("ftp://store/fraud/1"))
    assert outcome.status["phase"] == "Failed"
    assert outcome.retry_delay is None


def test_a_transient_storage_error_is_retried_with_growing_delay(
    artifact: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(uri: str, *_: Any) -> Any:
        raise StorageError(f"cannot list {uri}: ClientConnectorError: connection refused")

    monkeypatch.setattr(controller, "compute_digest", unreachable)
    delays = []
    for attempt in range(8):
        outcome = run(model(artifact), attempt=attempt)
        assert outcome.status["phase"] == "Pending"
        assert ready_reason(outcome.status) == "Retrying"
        assert "connection refused" in outcome.status["message"]
        assert outcome.retry_delay is not None
        delays.append(outcome.retry_delay)
        kinds = [e[1] for e in outcome.events]
        assert kinds == (["Registered", "Retrying"] if attempt == 0 else ["Retrying"])
    assert delays == sorted(delays) and delays[0] < delays[1] and delays[-1] == MAX_DELAY
    monkeypatch.undo()  # the store is back: the next retry verifies
    outcome = run(model(artifact, **outcome.status), attempt=8)
    assert outcome.status["phase"] == "Ready"
    assert ready_reason(outcome.status) == "Verified"


def pvc_model() -> dict[str, Any]:
    return model("pvc://claim/fraud/1")


def test_pvc_artifacts_are_verified_by_one_job() -> None:
    fake = FakeKube()
    outcome = controller.reconcile(
        fake, CONFIG, pvc_model(), created=True, changes=["spec"], now=NOW
    )
    assert outcome.status["phase"] == "Verifying"
    jobs = fake.list("batch/v1", "Job", NS)
    assert len(jobs) == 1
    (ref,) = jobs[0]["metadata"]["ownerReferences"]
    assert ref["uid"] == "m-uid"
    again = controller.reconcile(
        fake, CONFIG, pvc_model(), created=False, changes=["spec"], now=NOW
    )
    assert len(fake.list("batch/v1", "Job", NS)) == 1
    assert [e[1] for e in again.events] == []


def test_a_job_deleted_under_the_poller_is_started_again() -> None:
    fake = FakeKube()
    controller.reconcile(fake, CONFIG, pvc_model(), created=True, changes=["spec"], now=NOW)
    (job,) = fake.list("batch/v1", "Job", NS)
    fake.delete("batch/v1", "Job", job["metadata"]["name"], NS)
    now = datetime.datetime(2026, 1, 1, 12, 0, 5, tzinfo=datetime.UTC)
    outcome = controller.poll_verification_job(fake, CONFIG, pvc_model(), now)
    assert [e[1] for e in outcome.events] == ["Verifying"]
    assert len(fake.list("batch/v1", "Job", NS)) == 1


def test_a_job_that_cannot_be_created_is_a_retryable_error() -> None:
    fake = FakeKube()
    fake.kinds.discard(("batch/v1", "Job"))
    with pytest.raises(controller.VerificationJobError, match="cannot start verification Job"):
        controller.reconcile(fake, CONFIG, pvc_model(), created=True, changes=["spec"], now=NOW)


def test_a_job_at_the_verification_name_that_is_not_ours_is_neither_read_nor_replaced() -> None:
    fake = FakeKube()
    name = "fraud-v1-verify-g1"
    forged = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
              "status": {"succeeded": 1, "completionTime": "2026-01-01T11:00:00Z"}}  # fmt: skip
    stored = fake.put(forged)
    with pytest.raises(controller.VerificationJobError, match="not controlled by this Model"):
        controller.reconcile(fake, CONFIG, pvc_model(), created=True, changes=["spec"], now=NOW)
    now = datetime.datetime(2026, 1, 1, 12, 0, 5, tzinfo=datetime.UTC)
    with pytest.raises(controller.VerificationJobError, match="not controlled by this Model"):
        controller.poll_verification_job(fake, CONFIG, pvc_model(), now)
    assert fake.stored("batch/v1", "Job", name, NS) == stored
    assert fake.writes == []


def test_a_huge_transient_error_still_makes_a_valid_bounded_status(
    artifact: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(uri: str, *_: Any) -> Any:
        raise StorageError("503 Slow Down " + "x" * 100_000)

    monkeypatch.setattr(controller, "compute_digest", unreachable)
    outcome = run(model(artifact))
    assert len(outcome.status["message"]) <= 4096
    assert outcome.status["message"].endswith("retrying in 10s")  # the tail is kept
