"""The Environment admission decisions (reconcile/environment_admission.py) and handlers
(handlers/environment_webhooks.py): who uses an Environment (pinned, @latest, duplicates,
curated), which new references are refused as archived, and the fail-open behaviour of both
handlers when the API cannot answer (like the Model guard)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import kopf
import pytest

from mlkube.api.environment import version_key
from mlkube.contract import LABEL_ARCHIVED
from mlkube.handlers import environment_webhooks as hooks
from mlkube.k8s import ApiError
from mlkube.reconcile.environment_admission import (
    archived_message,
    new_references,
    references,
    resolves_to,
    users_of,
)

ALICE = kopf.UserInfo({"username": "alice"})  # type: ignore[typeddict-item]


def env(name: str, version: str, *, obj: str = "", created: str = "2026-01-01T00:00:00Z",
        archived: bool = False) -> dict[str, Any]:  # fmt: skip
    labels = {LABEL_ARCHIVED: "true"} if archived else {}
    meta = {"name": obj or f"{name}-{version}", "uid": obj or f"{name}-{version}",
            "creationTimestamp": created, "labels": labels, "namespace": "ml"}  # fmt: skip
    return {"metadata": meta, "spec": {"environmentName": name, "version": version}}


def endpoint(name: str, *refs: str) -> dict[str, Any]:
    deployments = [{"name": f"d{i}", "model": "m", "environment": r} for i, r in enumerate(refs)]
    return {"metadata": {"name": name}, "spec": {"deployments": deployments}}


def pipeline(name: str, ref: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"steps": [{"name": "train", "environment": ref}]}}


def test_versions_order_numerically() -> None:
    ordered = ["1", "1.2", "1.10", "2", "10", "2024.06.1"]
    assert sorted(reversed(ordered), key=version_key) == ordered


def test_references_name_their_deployment_or_step() -> None:
    refs = references("Pipeline", pipeline("retrain", "lgbm:1"))
    assert [(r.ref, r.kind, r.name, r.part) for r in refs] == [
        ("lgbm:1", "Pipeline", "retrain", "step train")
    ]
    assert references("OnlineEndpoint", {"metadata": {"name": "x"}, "spec": {}}) == []


def test_pinned_latest_and_curated_resolution() -> None:
    envs = [env("lgbm", "1"), env("lgbm", "2"), env("lgbm", "10"), env("other", "1")]
    assert resolves_to("lgbm:2", envs) is envs[1]
    assert resolves_to("lgbm@latest", envs) is envs[2]
    assert resolves_to("lgbm:3", envs) is None
    assert resolves_to("mlkube-sklearn:0.1.0", envs) is None


def test_users_of_an_environment() -> None:
    one, ten = env("lgbm", "1"), env("lgbm", "10")
    refs = [
        *references("OnlineEndpoint", endpoint("shop", "lgbm:1", "lgbm@latest")),
        *references("Pipeline", pipeline("retrain", "lgbm:1")),
        *references("BatchEndpoint", endpoint("nightly", "other:1")),
    ]
    assert users_of(one, [one, ten], refs) == [
        "OnlineEndpoint shop (deployment d0)",
        "Pipeline retrain (step train)",
    ]
    # @latest protects only the version it resolves to now.
    assert users_of(ten, [one, ten], refs) == ["OnlineEndpoint shop (deployment d1)"]
    # A list that lags behind (the object not in it yet) still counts the object.
    assert users_of(ten, [one], refs) == ["OnlineEndpoint shop (deployment d1)"]


def test_a_younger_duplicate_may_go_the_older_may_not() -> None:
    older = env("lgbm", "1", obj="lgbm-1", created="2026-01-01T00:00:00Z")
    younger = env("lgbm", "1", obj="lgbm-1-copy", created="2026-02-01T00:00:00Z")
    refs = references("OnlineEndpoint", endpoint("shop", "lgbm:1"))
    assert users_of(younger, [older, younger], refs) == []
    assert users_of(older, [older, younger], refs) == ["OnlineEndpoint shop (deployment d0)"]


def test_only_new_pinned_references_are_checked() -> None:
    old = endpoint("shop", "lgbm:1")
    new = endpoint("shop", "lgbm:1", "lgbm:2", "lgbm@latest")
    assert [r.ref for r in new_references("OnlineEndpoint", new, old)] == ["lgbm:2"]
    assert [r.ref for r in new_references("OnlineEndpoint", old, None)] == ["lgbm:1"]
    # Another deployment on an already referenced environment adds nothing.
    assert new_references("OnlineEndpoint", endpoint("shop", "lgbm:1", "lgbm:1"), old) == []


def test_archived_message_names_the_references() -> None:
    envs = [env("lgbm", "1", archived=True), env("lgbm", "2")]
    refs = references("OnlineEndpoint", endpoint("shop", "lgbm:1", "lgbm:2", "ghost:1"))
    message = archived_message(refs, envs)
    assert message is not None
    assert message.startswith("Environment lgbm:1 (deployment d0) is archived")
    assert "existing users keep it" in message and "lgbm:2" not in message
    assert archived_message(refs[1:], envs) is None


class FakeKube:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def list(self, _api: str, kind: str, _ns: str | None = None) -> list[dict[str, Any]]:
        answer = self.answers.get(kind, [])
        if callable(answer):
            return answer()  # type: ignore[no-any-return]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


def _delete(monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], answers: dict[str, Any]) -> None:
    monkeypatch.setattr(hooks, "kube", lambda: FakeKube(answers))
    asyncio.run(hooks.guard_environment_delete(body=kopf.Body(body), userinfo=ALICE))  # type: ignore[arg-type]


def test_the_guard_refuses_a_used_environment_with_409(monkeypatch: pytest.MonkeyPatch) -> None:
    one = env("lgbm", "1")
    answers = {"Environment": [one], "Pipeline": [pipeline("retrain", "lgbm:1")]}
    with pytest.raises(kopf.AdmissionError) as refused:
        _delete(monkeypatch, one, answers)
    assert refused.value.code == 409
    assert "Environment ml/lgbm-1 (lgbm:1) is used by Pipeline retrain (step train)" in str(
        refused.value
    )
    _delete(monkeypatch, one, {"Environment": [one], "Pipeline": [pipeline("r", "lgbm:2")]})


@pytest.mark.parametrize(
    "failure",
    [ApiError(403, "Forbidden", "cannot list pipelines"), ConnectionResetError("peer")],
)
def test_the_guard_fails_open(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    _delete(monkeypatch, env("lgbm", "1"), {"Pipeline": failure})  # allowed: no AdmissionError
    assert "allowed" in caplog.text and "lgbm-1" in caplog.text


def test_a_hanging_list_allows_the_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks.webhooks, "GUARD_SECONDS", 0.2)
    release = threading.Event()
    try:
        _delete(monkeypatch, env("lgbm", "1"), {"OnlineEndpoint": lambda: release.wait(5) and []})
    finally:
        release.set()


def _write(
    monkeypatch: pytest.MonkeyPatch, new: dict[str, Any], old: dict[str, Any] | None, envs: Any
) -> None:
    monkeypatch.setattr(hooks, "kube", lambda: FakeKube({"Environment": envs}))
    resource = kopf.Resource("mlkube.dev", "v1alpha1", "onlineendpoints")
    asyncio.run(hooks.refuse_archived_references(
        resource=resource, new=kopf.Body(new), old=kopf.Body(old) if old else None,  # type: ignore[arg-type]
    ))  # fmt: skip


def test_new_references_to_archived_environments_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archived = [env("lgbm", "1", archived=True)]
    with pytest.raises(kopf.AdmissionError) as refused:
        _write(monkeypatch, endpoint("shop", "lgbm:1"), None, archived)
    assert refused.value.code == 422 and "is archived" in str(refused.value)
    # An existing reference keeps working (an unrelated update), and no API call is made.
    same = endpoint("shop", "lgbm:1")
    _write(monkeypatch, same, same, ApiError(500, "Boom", "must not be called"))
    # The API cannot answer: allowed.
    _write(monkeypatch, endpoint("shop", "lgbm:1"), None, ApiError(503, "Unavailable", "etcd"))


def test_the_handlers_run_on_the_event_loop() -> None:
    assert inspect.iscoroutinefunction(hooks.guard_environment_delete)
    assert inspect.iscoroutinefunction(hooks.refuse_archived_references)
