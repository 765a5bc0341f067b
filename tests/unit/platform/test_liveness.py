"""The liveness probe can fail: it reports the age of the last successful API call and raises
(Kopf then answers 500 on /healthz) once that age passes the limit. It used to return True."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from mlkube.handlers import health, main  # noqa: F401 - main registers every handler
from mlkube.k8s import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Api:
    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.calls: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append(f"{method} {path}")
        if self.failure is not None:
            raise self.failure
        return {"major": "1"}


def test_the_probe_fails_once_the_api_server_has_been_unreachable_too_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, clock = Api(), Clock()
    monkeypatch.setattr(health, "kube", lambda: api)
    contact = health.ApiContact(clock)
    assert asyncio.run(contact.check(180)) == 0.0
    api.failure = ApiError(503, "ServiceUnavailable", "down")
    clock.now += 100
    assert asyncio.run(contact.check(180)) == 100.0  # a short outage is ridden out
    clock.now += 100
    with pytest.raises(kopf.PermanentError, match=r"no successful API call for 200s.*503"):
        asyncio.run(contact.check(180))
    api.failure = None  # back: healthy again at once
    assert asyncio.run(contact.check(180)) == 0.0
    assert api.calls == ["GET /version"] * 4


def test_a_hanging_call_counts_as_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()

    class Hanging:
        def request(self, *_: Any, **__: Any) -> dict[str, Any]:
            import time

            time.sleep(0.5)
            return {}

    monkeypatch.setattr(health, "kube", Hanging)
    monkeypatch.setattr(health, "CALL_TIMEOUT", 0.05)
    contact = health.ApiContact(clock)
    clock.now += 10
    with pytest.raises(kopf.PermanentError, match="TimeoutError"):
        asyncio.run(contact.check(5))


def test_the_probe_is_registered_async_and_the_limit_is_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers = kopf.get_default_registry()._activities.get_all_handlers()
    probes = [h for h in handlers if h.activity is not None and h.activity.value == "probe"]
    # The always-True probe is gone; `leader` only reports the role (it never fails).
    assert [p.id for p in probes] == ["apiContactAgeSeconds", "leader"]
    assert probes[0].fn is health.api_contact
    assert asyncio.iscoroutinefunction(health.api_contact)
    monkeypatch.setenv(health.ENV_MAX_AGE, "60")
    assert health.max_age() == 60.0
    monkeypatch.setenv(health.ENV_MAX_AGE, "")
    assert health.max_age() == health.DEFAULT_MAX_AGE
