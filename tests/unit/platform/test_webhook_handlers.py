"""The admission handlers fail open on their own: a DELETE guard that cannot list endpoints
allows the delete (it used to answer allowed=false, code 500), and audit stamping that fails
allows the write unstamped. Both are async, so they never queue behind Kopf's thread pool."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import kopf
import pytest
import urllib3

from mlkube.handlers import webhooks
from mlkube.k8s import ApiError

MODEL = kopf.Body({"metadata": {"name": "churn-v3", "namespace": "ml"}})  # type: ignore[arg-type]
ALICE = kopf.UserInfo({"username": "alice"})  # type: ignore[typeddict-item]


class Endpoints:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def list(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        if callable(self.answer):
            return self.answer()  # type: ignore[no-any-return]
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]


def guard(monkeypatch: pytest.MonkeyPatch, answer: Any) -> None:
    monkeypatch.setattr(webhooks, "kube", lambda: Endpoints(answer))
    asyncio.run(webhooks.guard_model_delete(body=MODEL, userinfo=ALICE))


@pytest.mark.parametrize(
    "failure",
    [
        ApiError(403, "Forbidden", "cannot list onlineendpoints"),
        ApiError(429, "TooManyRequests", "slow down"),
        ApiError(503, "ServiceUnavailable", "etcd"),
        urllib3.exceptions.MaxRetryError(None, "/apis", reason=ConnectionRefusedError()),  # type: ignore[arg-type]
        ConnectionResetError("peer"),
    ],
)
def test_the_guard_allows_the_delete_when_it_cannot_list(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    guard(monkeypatch, failure)  # no AdmissionError: allowed
    assert "allowed" in caplog.text and "churn-v3" in caplog.text


def test_a_hanging_list_allows_the_delete_before_the_api_server_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks, "GUARD_SECONDS", 0.2)
    release = threading.Event()
    try:
        guard(monkeypatch, lambda: release.wait(5) and [])
    finally:
        release.set()


def test_the_guard_still_refuses_a_referenced_model(monkeypatch: pytest.MonkeyPatch) -> None:
    user = {"metadata": {"name": "churn"}, "spec": {"deployments": [{"model": "churn-v3"}]}}
    with pytest.raises(kopf.AdmissionError) as refused:
        guard(monkeypatch, [user])
    assert refused.value.code == 409 and "OnlineEndpoint churn" in str(refused.value)
    guard(monkeypatch, [{"metadata": {"name": "other"}, "spec": {"deployments": []}}])


def test_stamping_that_fails_allows_the_write_unstamped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**_: Any) -> dict[str, str]:
        raise ValueError("damaged annotations")

    monkeypatch.setattr(webhooks._AuditKey, "value", b"k" * 32)
    monkeypatch.setattr(webhooks, "audit_annotations", broken)
    patch = kopf.Patch()
    asyncio.run(webhooks.stamp_audit(userinfo=ALICE, patch=patch, operation="CREATE", new=MODEL))
    assert dict(patch) == {}
    assert "allowed unstamped" in caplog.text


def test_the_webhook_handlers_run_on_the_event_loop() -> None:
    assert inspect.iscoroutinefunction(webhooks.guard_model_delete)
    assert inspect.iscoroutinefunction(webhooks.stamp_audit)
