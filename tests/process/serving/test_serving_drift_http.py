"""Drift hook against a real sidecar stub over loopback, and with the sidecar down.

The stub decodes what it receives with the sidecar's own batch reader: the format is the one
the two components agree on, whatever the stub's HTTP server is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from mlkube.contract import DRIFT_SAMPLES_BATCH_TYPE
from mlkube.devcluster.procs import free_port
from mlkube_serving.drift.bodies import decode_samples
from support.serving import ServerProcess, make_data, v2_body


class SidecarStub(ThreadingHTTPServer):
    received: list[tuple[str, Any]]
    content_types: set[str]


class Handler(BaseHTTPRequestHandler):
    server: SidecarStub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers["content-type"] == DRIFT_SAMPLES_BATCH_TYPE:
            batch = decode_samples(body)  # either version: the plain request sends bodies
            assert batch.predictions is not None
            rows, predictions = batch.rows.tolist(), batch.predictions.tolist()
            decoded = {"model": batch.model, "columns": batch.columns, "rows": rows,
                       "predictions": predictions}  # fmt: skip
        else:
            decoded = orjson.loads(body)
        self.server.received.append((self.path, decoded))
        self.server.content_types.add(self.headers["content-type"])
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sidecar() -> Iterator[SidecarStub]:
    stub = SidecarStub(("127.0.0.1", free_port()), Handler)
    stub.received = []
    stub.content_types = set()
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.shutdown()
    stub.server_close()


def test_samples_reach_the_sidecar_in_the_agreed_format(
    forest_model: Path, sidecar: SidecarStub
) -> None:
    url = f"http://127.0.0.1:{sidecar.server_address[1]}"
    env = {"MLKUBE_DRIFT_URL": url, "MLKUBE_DRIFT_SAMPLE_RATE": "1"}
    server = ServerProcess(forest_model, name="forest", env=env)
    try:
        server.wait_ready()
        X, _ = make_data()
        for i in range(5):
            answer = requests.post(
                f"{server.url}/v2/models/forest/infer", json=v2_body(X[i : i + 2]), timeout=5
            )
            assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while sum(len(b["rows"]) for _, b in sidecar.received) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    paths = {path for path, _ in sidecar.received}
    assert paths == {"/v1/samples"}
    assert sidecar.content_types == {DRIFT_SAMPLES_BATCH_TYPE}  # numeric rows: binary batches
    rows = [row for _, body in sidecar.received for row in body["rows"]]
    predictions = [p for _, body in sidecar.received for p in body["predictions"]]
    assert len(rows) == 10 and len(predictions) == 10
    assert all(len(row) == 20 for row in rows)
    assert {body["model"] for _, body in sidecar.received} == {"forest"}
    assert all(body["columns"] is None for _, body in sidecar.received)
    assert rows[0] == pytest.approx(X[0].tolist())


def test_a_dead_sidecar_costs_samples_not_latency(forest_model: Path) -> None:
    env = {"MLKUBE_DRIFT_URL": f"http://127.0.0.1:{free_port()}", "MLKUBE_DRIFT_SAMPLE_RATE": "1"}
    server = ServerProcess(forest_model, name="forest", env=env)
    try:
        server.wait_ready()
        X, _ = make_data()
        session = requests.Session()
        started = time.perf_counter()
        for _ in range(200):
            answer = session.post(
                f"{server.url}/v2/models/forest/infer", json=v2_body(X[:1]), timeout=5
            )
            assert answer.status_code == 200
        elapsed = time.perf_counter() - started
        assert elapsed < 10  # ~1 ms each; blocking on the sidecar would take far longer

        def dropped() -> float:
            text = requests.get(server.metrics_url, timeout=5).text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("mlkube_drift_samples_send_dropped_total{")
            )

        deadline = time.monotonic() + 10
        while dropped() < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dropped() == 200
    finally:
        server.stop()


def test_a_partial_rate_samples_that_share_of_requests(
    forest_model: Path, sidecar: SidecarStub
) -> None:
    """Below 100% the server samples by time slot (drift_gate.py), not by a coin per request:
    each request is still sampled with the rate's probability."""
    url = f"http://127.0.0.1:{sidecar.server_address[1]}"
    env = {"MLKUBE_DRIFT_URL": url, "MLKUBE_DRIFT_SAMPLE_RATE": "0.25"}
    server = ServerProcess(forest_model, name="forest", env=env)
    sent = 2000
    try:
        server.wait_ready()
        X, _ = make_data()
        session = requests.Session()
        body = v2_body(X[:1])
        for _ in range(sent):
            answer = session.post(f"{server.url}/v2/models/forest/infer", json=body, timeout=5)
            assert answer.status_code == 200
        time.sleep(1.5)  # the sender's period (1 s): what was sampled is delivered
    finally:
        server.stop()
    sampled = sum(len(b["rows"]) for _, b in sidecar.received)
    # ~2 s of requests over 5 ms slots: ~100 sampled slots of a few requests each; the
    # bounds are ~4 standard deviations of that clustered count
    assert 0.15 * sent < sampled < 0.35 * sent, sampled
