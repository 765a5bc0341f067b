"""The webhook configurations (builders/webhook_config.py) and the operator's serve-only mode."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

import mlkube.handlers.main  # noqa: F401  (registers the admission handlers)
from mlkube.builders.webhook_config import (
    NAMESPACE_DELETERS,
    build_webhook_configurations,
    service_client,
    url_client,
)
from mlkube.handlers import webhooks


def test_service_reference_fail_open_and_namespace_deletion_skipped() -> None:
    mutating, validating = build_webhook_configurations(service_client("ops"), ca_bundle="Q0E=")
    (audit,), (guard, environment_guard, references) = mutating["webhooks"], validating["webhooks"]
    assert audit["clientConfig"] == {
        "service": {"namespace": "ops", "name": "mlkube-webhook", "port": 9443, "path": "/audit"},
        "caBundle": "Q0E=",
    }
    assert guard["clientConfig"]["service"]["path"] == "/delete-guard"
    for hook in (audit, guard):
        assert hook["failurePolicy"] == "Ignore"
        assert hook["timeoutSeconds"] <= 5
        assert "namespaceSelector" not in hook
    (condition,) = guard["matchConditions"]
    for user in NAMESPACE_DELETERS:
        assert f"request.userInfo.username != '{user}'" in condition["expression"]
    assert environment_guard["matchConditions"] == [condition]
    assert environment_guard["rules"][0]["resources"] == ["environments"]
    assert environment_guard["rules"][0]["operations"] == ["DELETE"]
    for hook in (environment_guard, references):
        assert hook["failurePolicy"] == "Ignore"
    # The archived-reference check sees only writes to the kinds that reference Environments,
    # and only those that carry a reference (most endpoint writes never reach the operator).
    assert references["rules"][0]["resources"] == ["onlineendpoints", "batchendpoints", "pipelines"]
    assert references["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    (has_reference,) = references["matchConditions"]
    assert "has(d.environment)" in has_reference["expression"]
    assert "has(s.environment)" in has_reference["expression"]
    names = [hook["name"] for hook in validating["webhooks"]]
    assert len(set(names)) == len(names)


def test_loopback_url_and_namespace_selector_for_the_dev_cluster() -> None:
    configs = build_webhook_configurations(
        url_client("https://127.0.0.1:1234/"), ca_bundle=None, name="t", namespaces=["b", "a"]
    )
    for config in configs:
        assert config["metadata"]["name"] == "t"
        for hook in config["webhooks"]:
            assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:1234/")
            assert "caBundle" not in hook["clientConfig"]
            assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["a", "b"]


def test_paths_are_the_served_handler_ids() -> None:
    """Kopf serves each admission handler at /<id>: the configurations must name those ids."""
    served = {h.id for h in kopf.get_default_registry()._webhooks.get_all_handlers()}
    paths = {
        hook["clientConfig"]["service"]["path"].lstrip("/")
        for config in build_webhook_configurations(service_client("ops"), ca_bundle=None)
        for hook in config["webhooks"]
    }
    assert paths == served


@pytest.mark.parametrize("port", [None, "9443"])
def test_the_operator_never_manages_configurations(
    port: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLKUBE_NAMESPACE", "ops")
    if port:
        monkeypatch.setenv("MLKUBE_WEBHOOK_PORT", port)
    else:
        monkeypatch.delenv("MLKUBE_WEBHOOK_PORT", raising=False)
    monkeypatch.setattr(webhooks, "load_audit_key", lambda namespace: b"k" * 32)
    settings: Any = kopf.OperatorSettings()
    settings.admission.managed = "left over"
    webhooks.configure_webhooks(settings=settings)
    assert settings.admission.managed is None
    assert (webhooks.audit_key() is not None) == bool(port)
