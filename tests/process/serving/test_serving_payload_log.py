"""Payload logging from a real server process to a real CloudEvents receiver (the `cloudevents`
SDK parses every event), and with that receiver down."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests

from mlkube import contract as c
from support.notify_procs import Receiver
from support.payload_events import IDENTITY, counted_drops, data_of
from support.serving import ServerProcess, make_data, v2_body
from support.waiting import wait_for


def test_pairs_reach_a_cloudevents_receiver_in_kserve_format(
    forest_model: Path, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path, "logs", key="k3y").start()
    env = {
        c.ENV_PAYLOAD_LOG_URL: receiver.url,
        c.ENV_PAYLOAD_LOG_REDACT: "ssn",
        c.ENV_PAYLOAD_LOG_SIGNING_KEY: "k3y",
        **IDENTITY,
    }
    server = ServerProcess(forest_model, name="forest", env=env)
    try:
        server.wait_ready()
        X, _ = make_data()
        bodies, answers = [], []
        for i in range(4):
            body = v2_body(X[i : i + 1], parameters={"ssn": "123-45-6789"})
            answer = requests.post(f"{server.url}/v2/models/forest/infer", json=body, timeout=5)
            assert answer.status_code == 200
            bodies.append(body)
            answers.append(answer.json())
        bad = requests.post(f"{server.url}/v2/models/forest/infer", json={"inputs": 3}, timeout=5)
        assert bad.status_code == 400
        got = wait_for(
            lambda: len(receiver.received()) >= 10 and receiver.received(),
            20,
            what="10 payload events",
        )
    finally:
        code = server.stop()
        receiver.stop()
    assert code == 0, server.output()
    assert len(got) == 10
    pairs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in got:
        pairs[event["id"]][event["type"]] = event
    assert len(pairs) == 5
    requests_seen, statuses = [], []
    for pair in pairs.values():
        assert set(pair) == {c.PAYLOAD_LOG_REQUEST_TYPE, c.PAYLOAD_LOG_RESPONSE_TYPE}
        req, resp = pair[c.PAYLOAD_LOG_REQUEST_TYPE], pair[c.PAYLOAD_LOG_RESPONSE_TYPE]
        for event in (req, resp):
            attrs = event["attributes"]
            assert attrs["inferenceservicename"] == "credit" and attrs["namespace"] == "prod"
            assert attrs["component"] == "predictor" and attrs["endpoint"] == "blue"
            assert attrs["source"] == "/mlkube/prod/credit/blue"
            assert event["signed"] is True and event["mode"] == "binary"
        requests_seen.append(data_of(req))
        statuses.append(resp["attributes"]["statuscode"])
        if resp["attributes"]["statuscode"] == "200":
            assert data_of(resp) in answers
        else:
            assert "error" in data_of(resp)
    assert sorted(statuses) == ["200"] * 4 + ["400"]
    # The configured field is gone from what was logged; the rest is what the client sent.
    logged = [r for r in requests_seen if r.get("parameters")]
    assert len(logged) == 4 and all(r["parameters"]["ssn"] == "[REDACTED]" for r in logged)
    sent_inputs = [b["inputs"] for b in bodies]
    assert sorted(json.dumps(r["inputs"]) for r in logged) == sorted(
        json.dumps(i) for i in sent_inputs
    )


def test_a_receiver_that_is_down_costs_counted_pairs_not_predictions(
    forest_model: Path, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path, "down")  # never started: its port refuses connections
    env = {c.ENV_PAYLOAD_LOG_URL: receiver.url, **IDENTITY}
    server = ServerProcess(forest_model, name="forest", env=env)
    try:
        server.wait_ready()
        X, _ = make_data()
        session = requests.Session()
        for i in range(200):
            answer = session.post(
                f"{server.url}/v2/models/forest/infer", json=v2_body(X[i : i + 1]), timeout=5
            )
            assert answer.status_code == 200, answer.text
        drops = counted_drops(server, 200, 10)
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert sum(drops.values()) == 200  # every sampled pair is accounted for, once
    reasons = {labels.split('reason="')[1].split('"')[0] for labels in drops}
    assert reasons <= {"post_failed", "sink_down"} and "post_failed" in reasons
    assert "Traceback" not in server.output()
