"""The sidecar's ASGI app, worker thread and Prometheus collector, driven in-process."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlkube_serving.drift import synthetic
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.metrics import DriftCollector, EvaluationTimes, select_series_features
from mlkube_serving.drift.sidecar import DriftApp, parse_args
from mlkube_serving.drift.worker import DriftWorker, held_bytes
from support.drift_app import call, wait_for


@pytest.fixture
def worker(profile: dict[str, Any]) -> Iterator[DriftWorker]:
    w = DriftWorker(DriftEngine(profile), eval_interval=0.05, queue_size=4)
    yield w
    w.stop()


def test_samples_are_accepted_then_evaluated_off_the_request_path(worker: DriftWorker) -> None:
    app = DriftApp(worker)
    cols = synthetic.make_columns(1000, seed=3, shift={"x0": 1.0})
    bodies = [orjson.dumps(p) for p in synthetic.to_payloads(cols, 250)]
    for body in bodies:
        assert call(app, "POST", "/v1/samples", body, chunk=4096) == (202, {"accepted": True})
    # Nothing is processed until the worker thread runs: the request path only queued.
    assert worker.engine.ingested == 0 and worker.received == 1000
    worker.start()
    wait_for(lambda: worker.summary["windowSamples"] == 1000)
    status, summary = call(app, "GET", "/v1/summary")
    assert status == 200 and summary["ready"] and summary["samplesReceived"] == 1000
    assert summary["features"][0]["name"] == "x0" and summary["features"][0]["drifted"]
    assert summary["evaluatedAt"].endswith("Z")


def test_full_queue_drops_and_counts_rows(worker: DriftWorker) -> None:
    app = DriftApp(worker)
    body = orjson.dumps(synthetic.to_payloads(synthetic.make_columns(10, seed=1), 10)[0])
    for _ in range(6):  # queue holds 4 payloads; the worker is not running
        assert call(app, "POST", "/v1/samples", body)[0] == 202
    assert worker.received == 60 and worker.dropped == 20


def parsed_size(body: bytes) -> int:
    """Bytes `orjson.loads(body)` allocates and keeps, measured."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        payload = orjson.loads(body)
        size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del payload
    return size


def test_queued_payloads_are_budgeted_at_what_they_hold_once_parsed(
    worker: DriftWorker,
) -> None:
    """A parsed payload is several times its JSON text: the budget counts the parsed size."""
    app = DriftApp(worker)
    payload = synthetic.to_payloads(synthetic.make_columns(2000, seed=1), 2000)[0]
    body = orjson.dumps(payload)
    held = parsed_size(body)
    assert held > 2 * len(body)  # why counting the text was not enough
    assert call(app, "POST", "/v1/samples", body)[0] == 202  # queued: the worker is not running
    assert held <= worker.queued_bytes <= 3 * held, (len(body), held, worker.queued_bytes)
    # A budget of a few texts' worth holds fewer payloads than the text count would admit.
    small = DriftWorker(worker.engine, queue_size=100, max_queued_bytes=4 * len(body))
    app = DriftApp(small)
    for _ in range(4):
        call(app, "POST", "/v1/samples", body)
    assert small.queued_bytes <= small.max_queued_bytes and small.dropped_full > 0
    assert held_bytes({"rows": 5}, 10) == 10 and held_bytes([1, 2], 7) == 7  # malformed


def test_bad_requests(worker: DriftWorker) -> None:
    app = DriftApp(worker, max_body_bytes=100)
    assert call(app, "POST", "/v1/samples", b"x" * 500)[0] == 413
    assert call(app, "POST", "/v1/samples", b"{not json")[0] == 202  # the sender is never blamed
    assert call(app, "POST", "/v1/samples", b'{"no": "rows"}')[0] == 202
    assert worker.invalid_payloads == 2 and worker.received == 0
    assert call(app, "GET", "/v1/samples")[0] == 405
    assert call(app, "GET", "/nope")[0] == 404
    assert call(app, "GET", "/healthz") == (200, {"status": "ok"})


def test_malformed_rows_are_counted_as_dropped(worker: DriftWorker) -> None:
    app = DriftApp(worker)
    call(app, "POST", "/v1/samples", orjson.dumps({"rows": [[1, 2], [3]]}))
    worker.start()
    wait_for(lambda: worker.rejected == 2)
    assert worker.dropped == 2 and worker.engine.ingested == 0


def test_lifespan_starts_and_stops_the_worker(worker: DriftWorker) -> None:
    app = DriftApp(worker)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not worker._thread.is_alive()


def metric_families(worker: DriftWorker, max_series: int) -> dict[str, Any]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriftCollector(worker, EvaluationTimes(), max_series))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_carry_only_feature_and_method_labels(worker: DriftWorker) -> None:
    for payload in synthetic.to_payloads(synthetic.make_columns(1000, seed=8), 500):
        worker.engine.ingest(payload)
    worker.evaluate()
    families = metric_families(worker, max_series=50)
    expected = {
        "mlkube_drift_score": {"feature", "method"},
        "mlkube_drift_threshold": {"feature", "method"},
        "mlkube_feature_null_ratio": {"feature"},
        "mlkube_drift_detected": set(),
        "mlkube_drift_drifted_features_ratio": set(),
        "mlkube_drift_window_samples": set(),
        "mlkube_drift_samples_received": set(),
        "mlkube_drift_samples_dropped": set(),
        "mlkube_drift_evaluation_seconds": {"le"},
    }
    for name, labels in expected.items():
        family = families[name]
        keys = {k for s in family.samples for k in s.labels}
        assert keys <= labels, (name, keys)
    features = {s.labels["feature"] for s in families["mlkube_drift_score"].samples}
    assert features == set(synthetic.FEATURES)
    methods = {s.labels["method"] for s in families["mlkube_drift_score"].samples}
    assert methods == {"wasserstein", "ks", "psi", "jensenshannon"}
    assert families["mlkube_drift_window_samples"].samples[0].value == 1000
    assert families["mlkube_drift_evaluation_seconds"].type == "histogram"


def test_many_features_export_only_the_most_important() -> None:
    features: list[dict[str, Any]] = [{"name": f"f{i}", "importance": None} for i in range(5)]
    features[3]["importance"] = 0.9
    features[1]["importance"] = 0.5
    assert select_series_features(features, 3) == {"f3", "f1", "f0"}
    assert select_series_features(features, 10) == {f"f{i}" for i in range(5)}


def test_top_n_limit_applies_to_the_exported_series(worker: DriftWorker) -> None:
    families = metric_families(worker, max_series=4)
    names = {s.labels["feature"] for s in families["mlkube_drift_threshold"].samples}
    assert names == {"x0", "x1", "x2", "x3"}


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKUBE_DRIFT_PROFILE", "/p.json")
    monkeypatch.setenv("MLKUBE_DRIFT_WINDOW_SIZE", "500")
    args = parse_args(["--eval-interval", "2"])
    assert (args.profile, args.window_size, args.eval_interval) == ("/p.json", 500, 2.0)
    assert (args.port, args.metrics_port) == (8090, 8091)
    monkeypatch.delenv("MLKUBE_DRIFT_PROFILE")
    with pytest.raises(SystemExit):
        parse_args([])


def test_samples_only_from_the_pod_itself_but_the_summary_for_the_operator(
    worker: DriftWorker,
) -> None:
    app = DriftApp(worker)
    body = orjson.dumps({"model": "m", "columns": None, "rows": [[1.0]], "predictions": [0]})
    status, payload = call(app, "POST", "/v1/samples", body, client="10.244.0.7")
    assert status == 403 and "loopback" in payload["error"]
    assert call(app, "GET", "/v1/summary", client="10.244.0.7")[0] == 200
    assert call(app, "POST", "/v1/samples", body, client="::1")[0] == 202


def test_queued_payloads_are_bounded_in_bytes_too(profile: dict[str, Any]) -> None:
    """B9: 1024 queued payloads of up to 16 MiB each was the only bound; bytes count now."""
    body = orjson.dumps(synthetic.to_payloads(synthetic.make_columns(10, seed=1), 10)[0])
    held = held_bytes(orjson.loads(body), len(body))
    worker = DriftWorker(
        DriftEngine(profile), eval_interval=0.05, queue_size=100, max_queued_bytes=3 * held
    )
    app = DriftApp(worker)
    try:
        for _ in range(5):  # three fit in the byte budget; the worker is not running
            assert call(app, "POST", "/v1/samples", body)[0] == 202
        assert worker.received == 50 and worker.dropped == 20
        assert worker.queued_bytes == 3 * held
        worker.start()
        wait_for(lambda: worker.queued_bytes == 0)  # released as the worker ingests
        assert call(app, "POST", "/v1/samples", body)[0] == 202
        wait_for(lambda: worker.engine.ingested == 40)
    finally:
        worker.stop()
