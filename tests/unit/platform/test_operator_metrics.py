"""The operator's /metrics (handlers/metrics.py): reconcile passes counted by kind and result
from the real handler entry points, BatchJobs by phase with their items from watch events, and
the page served on MLKUBE_METRICS_PORT and scraped over HTTP."""

from __future__ import annotations

import logging
import socket
import urllib.request
from typing import Any

import kopf
import pytest

from mlkube.handlers import batch_job, endpoint, metrics
from mlkube.k8s import ApiError


def value(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_reconciling_counts_ok_and_error_and_times_both() -> None:
    ok, err = (
        value("mlkube_operator_reconcile_total", kind="X", result="ok"),
        value("mlkube_operator_reconcile_total", kind="X", result="error"),
    )
    with metrics.reconciling("X"):
        pass
    with pytest.raises(RuntimeError), metrics.reconciling("X"):
        raise RuntimeError("boom")
    assert value("mlkube_operator_reconcile_total", kind="X", result="ok") == ok + 1
    assert value("mlkube_operator_reconcile_total", kind="X", result="error") == err + 1
    assert value("mlkube_operator_reconcile_duration_seconds_count", kind="X") >= 2


@pytest.mark.parametrize(("module", "kind"), [(batch_job, "BatchJob"),
                                              (endpoint, "OnlineEndpoint")])  # fmt: skip
def test_a_failed_reconcile_is_counted_as_an_error(
    monkeypatch: pytest.MonkeyPatch, module: Any, kind: str
) -> None:
    def failing(*_: Any) -> Any:
        raise ApiError(503, "ServiceUnavailable", "apiserver down")

    monkeypatch.setattr(module.sync, "reconcile", failing)
    monkeypatch.setattr(module, "kube", lambda: None)
    monkeypatch.setattr(module, "operator_config", lambda: None)
    before = value("mlkube_operator_reconcile_total", kind=kind, result="error")
    with pytest.raises(kopf.TemporaryError):
        module.run_reconcile("ml", "x")
    assert value("mlkube_operator_reconcile_total", kind=kind, result="error") == before + 1


def test_batch_jobs_by_phase_and_items() -> None:
    jobs = metrics.BatchJobs()
    jobs.seen("u1", "ml", "a", {"phase": "Running", "items": {"total": 10, "succeeded": 4,
                                                              "failed": 1}})  # fmt: skip
    jobs.seen("u2", "ml", "b", {"phase": "Running"})
    jobs.seen("u3", "ml", "c", None)  # not yet seen by the operator: Pending
    jobs.seen("u2", "ml", "b", {"phase": "Succeeded", "items": {"total": 3, "succeeded": 3}})
    families = {f.name: f for f in jobs.collect()}
    phases = {s.labels["phase"]: s.value for s in families["mlkube_batch_jobs"].samples}
    assert phases["Running"] == 1 and phases["Succeeded"] == 1 and phases["Pending"] == 1
    assert phases["Failed"] == 0 and len(phases) == 8
    items = {(s.labels["batchjob"], s.labels["state"]): s.value
             for s in families["mlkube_batch_job_items"].samples}  # fmt: skip
    assert items[("a", "succeeded")] == 4 and items[("a", "failed")] == 1
    assert items[("b", "total")] == 3
    jobs.gone("u1")
    jobs.gone("u2")
    jobs.gone("u3")
    families = {f.name: f for f in jobs.collect()}
    assert families["mlkube_batch_jobs"].samples == []
    assert families["mlkube_batch_job_items"].samples == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_served_on_the_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv(metrics.ENV_METRICS_PORT, str(port))
    metrics.BATCH_JOBS.seen("uid-m", "ml", "nightly", {"phase": "Merging"})
    metrics.serve_metrics(logger=logging.getLogger("test"))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            page = answer.read().decode()
    finally:
        metrics.stop_metrics()
        metrics.BATCH_JOBS.gone("uid-m")
    assert 'mlkube_batch_jobs{batchjob_namespace="ml",phase="Merging"} 1.0' in page
    assert "# TYPE mlkube_operator_reconcile_total counter" in page
    assert "python_gc" not in page  # a private registry: mlkube's series only
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_bad_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.ENV_METRICS_PORT, "metrics")
    with pytest.raises(kopf.PermanentError):
        metrics.serve_metrics(logger=logging.getLogger("test"))


def test_router_config_pushes_are_exported_by_result() -> None:
    from mlkube.controllers import router_push

    before = value("mlkube_operator_router_config_pushes_total", result="forbidden")
    router_push.count("forbidden", 2)
    assert value("mlkube_operator_router_config_pushes_total", result="forbidden") == before + 2
