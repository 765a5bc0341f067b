"""With the API server unreachable, no handler leaves a traceback: each logs one line and
tries again later (a loop tick returns its delay; a Kopf handler raises TemporaryError; the
DELETE guard allows). The client raises ApiUnreachable, an ApiError, for "no answer at all"."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import kopf
import pytest
import yaml

from mlkube.devcluster.procs import free_port
from mlkube.handlers import endpoint, endpoint_drift, health, model, webhooks
from mlkube.k8s import ApiUnreachable, Kube

LOG = logging.getLogger("test")


@pytest.fixture(autouse=True)
def api_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real client, configured for an API server that is not there (a closed loopback
    port): every call fails the way a down API server makes it fail."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                  "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
    }))  # fmt: skip
    client = Kube(str(kubeconfig))
    with pytest.raises(ApiUnreachable):  # what every handler below meets
        client.list("v1", "Pod", "ml")
    for module in (endpoint, endpoint_drift, health, model, webhooks):
        monkeypatch.setattr(module, "kube", lambda: client)


OWNED = kopf.Meta(kopf.Body({  # type: ignore[arg-type]
    "metadata": {"name": "credit-blue", "namespace": "ml", "ownerReferences": [
        {"apiVersion": "mlkube.dev/v1alpha1", "kind": "OnlineEndpoint", "name": "credit",
         "controller": True}]},
}))  # fmt: skip
READY = kopf.Status(kopf.Body({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}))  # type: ignore[arg-type]


def test_loop_ticks_log_and_come_back(caplog: pytest.LogCaptureFixture) -> None:
    assert (
        endpoint.resync_tick("ml", "credit", "uid-1", LOG)
        == endpoint.operator_config().resync_seconds
    )
    interval = endpoint_drift.drift_tick("ml", "credit", "uid-1", LOG)
    assert interval == endpoint_drift.operator_config().drift_poll_interval
    assert model.verify_tick("ml", "m", "uid-2", LOG) is not None
    assert model.references_tick("ml", "m", "uid-2", LOG) is not None
    assert caplog.text.count("cannot reach the API server") == 4


def test_watch_reactions_log_one_line(caplog: pytest.LogCaptureFixture) -> None:
    async def react(type_: str) -> None:
        await endpoint.child_deployment_changed(type=type_, meta=OWNED, namespace="ml", logger=LOG)
        await endpoint.drain_passes()

    for type_ in ("MODIFIED", "DELETED"):
        asyncio.run(react(type_))

    async def model_ready() -> None:
        await endpoint.model_changed(name="m", namespace="ml", status=READY)
        await endpoint.drain_passes()

    endpoint.record_blocked("ml", "credit", frozenset({"m"}))  # an endpoint waits for "m"
    try:
        asyncio.run(model_ready())
    finally:
        endpoint.record_blocked("ml", "credit", frozenset())
    endpoint.release_endpoint("ml", "credit", "uid-1", LOG)
    assert caplog.text.count("cannot reach the API server") == 4


def test_kopf_handlers_retry_and_admission_allows() -> None:
    with pytest.raises(kopf.TemporaryError, match="cannot reach"):
        endpoint.reconcile_endpoint(namespace="ml", name="credit", retry=0)
    model_body = kopf.Body({"metadata": {"name": "m", "namespace": "ml"}})  # type: ignore[arg-type]
    asyncio.run(webhooks.guard_model_delete(body=model_body, userinfo={"username": "alice"}))  # type: ignore[arg-type]
    assert asyncio.run(health.ApiContact().check(60)) < 60  # within the grace period: alive
