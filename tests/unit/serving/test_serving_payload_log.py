"""Payload logging: redaction, KServe's CloudEvents shape, bounds, and a sink that fails."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlkube import contract as c
from mlkube.events.encode import signature as operator_signature
from mlkube_serving import metrics
from mlkube_serving.payload_log import (
    REDACTED,
    LogConfig,
    Pair,
    PayloadLogger,
    encode,
    events_of,
    redact,
    redact_names,
    signature,
)
from mlkube_serving.settings import Settings, SettingsError, settings_from_env
from support.payload_sink import Sink

URL = "http://127.0.0.1:9/events"
JSON = b"application/json"


def pair(request: Any = None, response: Any = None, status: int = 200) -> Pair:
    req = orjson.dumps(request if request is not None else {"inputs": []})
    resp = orjson.dumps(response if response is not None else {"outputs": []})
    return Pair("forest", req, JSON, status, resp, JSON, 1_700_000_000.25)


def dropped(model: str, reason: str) -> float:
    return float(metrics.PAYLOAD_LOG_DROPPED.labels(model, reason)._value.get())


def sent(model: str) -> float:
    return float(metrics.PAYLOAD_LOG_SENT.labels(model)._value.get())


# -- redaction ---------------------------------------------------------------------------
def test_a_v2_tensor_named_in_redact_loses_its_data_and_keeps_its_shape() -> None:
    body = {
        "inputs": [
            {"name": "ssn", "shape": [1, 1], "datatype": "INT64", "data": [123]},
            {"name": "age", "shape": [1, 1], "datatype": "INT64", "data": [40]},
        ]
    }
    out = orjson.loads(redact(orjson.dumps(body), frozenset({"ssn"})) or b"")
    assert out["inputs"][0] == {
        "name": "ssn",
        "shape": [1, 1],
        "datatype": "INT64",
        "data": REDACTED,
    }
    assert out["inputs"][1]["data"] == [40]


def test_keys_anywhere_and_seldon_columns_are_redacted() -> None:
    v1 = {"instances": [{"income": 5, "age": 3}, {"income": 7, "age": 4}]}
    out = orjson.loads(redact(orjson.dumps(v1), frozenset({"income"})) or b"")
    assert out == {"instances": [{"income": REDACTED, "age": 3}, {"income": REDACTED, "age": 4}]}
    seldon = {"data": {"names": ["a", "income", "b"], "ndarray": [[1, 2, 3], [4, 5, 6]]}}
    out = orjson.loads(redact(orjson.dumps(seldon), frozenset({"income"})) or b"")
    assert out["data"]["ndarray"] == [[1, REDACTED, 3], [4, REDACTED, 6]]
    assert out["data"]["names"] == ["a", "income", "b"]


def test_a_body_that_is_not_json_cannot_be_redacted() -> None:
    assert redact(b"\x00\x01binary tensor", frozenset({"x"})) is None
    config = LogConfig(URL, redact=frozenset({"x"}))
    raw = Pair("m", b"\x00\x01", b"application/octet-stream", 200, b"{}", JSON, 0.0)
    assert events_of(raw, config) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values, st.sets(st.text(min_size=1, max_size=4), max_size=3))
def test_no_value_under_a_redacted_key_survives(doc: Any, names: set[str]) -> None:
    out = orjson.loads(redact(orjson.dumps(doc), frozenset(names)) or b"null")

    def check(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                assert key not in names or inner == REDACTED
                check(inner)
        elif isinstance(value, list):
            for inner in value:
                check(inner)

    check(out)
    if not names:
        assert out == doc


# -- the CloudEvents -----------------------------------------------------------------------
def test_a_pair_is_two_events_with_one_id_and_kserve_attributes() -> None:
    config = LogConfig(URL, endpoint="credit", deployment="blue", namespace="prod")
    request, response = events_of(pair(status=400), config) or []
    assert request.type == c.PAYLOAD_LOG_REQUEST_TYPE == "org.kubeflow.serving.inference.request"
    assert response.type == c.PAYLOAD_LOG_RESPONSE_TYPE
    assert request.id == response.id and request.time == response.time
    assert request.time == "2023-11-14T22:13:20.250000Z"
    assert request.extensions == {
        "inferenceservicename": "credit",
        "namespace": "prod",
        "component": "predictor",
        "endpoint": "blue",
        "protocol": "http",
    }
    assert response.extensions["statuscode"] == "400"
    head, body = encode(request, config)
    lines = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
    assert lines["ce-specversion"] == "1.0" and lines["ce-id"] == request.id
    assert lines["ce-type"] == c.PAYLOAD_LOG_REQUEST_TYPE
    assert lines["ce-source"] == "/mlkube/prod/credit/blue"
    assert (
        lines["ce-inferenceservicename"] == "credit" and lines["content-type"] == "application/json"
    )
    assert body == orjson.dumps({"inputs": []})


@pytest.mark.parametrize(
    ("mode", "types"),
    [("request", [c.PAYLOAD_LOG_REQUEST_TYPE]), ("response", [c.PAYLOAD_LOG_RESPONSE_TYPE])],
)
def test_mode_picks_the_side(mode: str, types: list[str]) -> None:
    assert [e.type for e in events_of(pair(), LogConfig(URL, mode=mode)) or []] == types


def test_structured_mode_nests_json_and_base64s_the_rest() -> None:
    config = LogConfig(URL, encoding="structured")
    request, _ = events_of(pair({"inputs": [1]}), config) or []
    head, body = encode(request, config)
    assert b"content-type: application/cloudevents+json" in head
    envelope = orjson.loads(body)
    assert envelope["data"] == {"inputs": [1]} and envelope["specversion"] == "1.0"
    raw = Pair("m", b"\x00\x01", b"application/octet-stream", 200, b"{}", JSON, 0.0)
    request, _ = events_of(raw, config) or []
    envelope = orjson.loads(encode(request, config)[1])
    assert base64.b64decode(envelope["data_base64"]) == b"\x00\x01"
    assert envelope["datacontenttype"] == "application/octet-stream"


def test_signing_matches_the_operators_notifications() -> None:
    config = LogConfig(URL, signing_key=b"k3y")
    request, _ = events_of(pair(), config) or []
    head, body = encode(request, config, now=1234)
    assert f"x-mlkube-signature: {operator_signature(b'k3y', 1234, body)}".encode() in head
    assert signature(b"k3y", 1234, body) == operator_signature(b"k3y", 1234, body)
    assert b"x-mlkube-signature-timestamp: 1234" in head


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "https://x/"}, "must be http://"),
        ({"mode": "both"}, "mode"),
        ({"rate": 1.5}, "between 0 and 1"),
        ({"encoding": "json"}, "binary or structured"),
    ],
)
def test_bad_configuration_says_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogConfig(**{"url": URL, **kwargs})


def test_settings_read_the_logging_variables() -> None:
    settings = settings_from_env(
        {
            c.ENV_PAYLOAD_LOG_URL: URL,
            c.ENV_PAYLOAD_LOG_MODE: "request",
            c.ENV_PAYLOAD_LOG_RATE: "0.5",
            c.ENV_PAYLOAD_LOG_REDACT: "a, b",
        }
    )
    assert (settings.payload_log_url, settings.payload_log_mode) == (URL, "request")
    assert settings.payload_log_sample_rate == 0.5
    assert redact_names(settings.payload_log_redact) == {"a", "b"}
    with pytest.raises(SettingsError, match="all, request or response"):
        settings_from_env({c.ENV_PAYLOAD_LOG_MODE: "both"})
    with pytest.raises(SettingsError, match="between 0 and 1"):
        settings_from_env({c.ENV_PAYLOAD_LOG_RATE: "2"})


# -- delivery over a real loopback socket ------------------------------------------------------
def test_offered_pairs_are_posted_and_counted() -> None:
    async def run() -> list[tuple[dict[str, str], bytes]]:
        sink = Sink()
        logger = PayloadLogger(LogConfig(await sink.start(), endpoint="e", deployment="d"))
        logger.start()
        before = sent("sent-model")
        for i in range(5):
            logger.offer("sent-model", orjson.dumps({"i": i}), JSON, 200, b"{}", JSON)
        await logger.stop()
        await sink.stop()
        assert sent("sent-model") - before == 10
        return sink.received

    received = asyncio.run(run())
    assert len(received) == 10
    ids = [h["ce-id"] for h, _ in received]
    assert all(ids.count(i) == 2 for i in ids)
    assert sorted(orjson.loads(b)["i"] for h, b in received if "request" in h["ce-type"]) == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    async def run() -> None:
        sink = Sink(delay=0.5)
        config = LogConfig(await sink.start(), max_pending=3, senders=1)
        logger = PayloadLogger(config)
        logger.start()
        before = dropped("full-model", "queue_full")
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(20):
            logger.offer("full-model", b"{}", JSON, 200, b"{}", JSON)
        assert loop.time() - began < 0.1  # offers return at once; nothing awaited
        await asyncio.sleep(0)
        assert dropped("full-model", "queue_full") - before >= 16
        await logger.stop(grace=0)
        await sink.stop()

    asyncio.run(run())


def test_a_refusing_sink_is_backed_off_and_every_pair_is_counted() -> None:
    async def run() -> None:
        sink = Sink(status=500)
        logger = PayloadLogger(LogConfig(await sink.start(), backoff=60.0, senders=1))
        logger.start()
        model = "refused-model"
        failed, down = dropped(model, "post_failed"), dropped(model, "sink_down")
        logger.offer(model, b"{}", JSON, 200, b"{}", JSON)
        await logger.stop()  # waits for the one POST: it fails, the sink is down for 60 s
        logger.start()
        for _ in range(10):
            logger.offer(model, b"{}", JSON, 200, b"{}", JSON)
        await logger.stop()
        await sink.stop()
        assert dropped(model, "post_failed") - failed == 1
        assert dropped(model, "sink_down") - down == 10
        assert len(sink.received) == 1  # one attempt, then nothing during the backoff

    asyncio.run(run())


def test_an_unreachable_sink_costs_a_counted_drop() -> None:
    async def run() -> None:
        logger = PayloadLogger(LogConfig("http://127.0.0.1:9/events", senders=1, timeout=1))
        logger.start()
        before = dropped("dead-model", "post_failed")
        logger.offer("dead-model", b"{}", JSON, 200, b"{}", JSON)
        await logger.stop()
        assert dropped("dead-model", "post_failed") - before == 1

    asyncio.run(run())


def test_the_worker_takes_a_binary_key_as_its_bytes_and_a_bad_url_turns_logging_off() -> None:
    from mlkube_serving.worker import make_payload_logger

    raw = bytes(range(256))[128:160]  # not UTF-8: what `openssl rand 32` makes
    key = os.fsdecode(raw)  # how os.environ holds it
    settings = Settings(payload_log_url=URL)
    logger = make_payload_logger(settings, {c.ENV_PAYLOAD_LOG_SIGNING_KEY: key})
    assert logger is not None and logger.config.signing_key == raw
    assert make_payload_logger(Settings(payload_log_url="http://h:99999/x"), {}) is None
    assert make_payload_logger(Settings(payload_log_url=URL, payload_log_sample_rate=0), {}) is None


def test_stop_waits_for_a_pair_a_sender_already_took() -> None:
    async def run() -> int:
        sink = Sink(delay=0.2)
        logger = PayloadLogger(LogConfig(await sink.start(), senders=1))
        logger.start()
        logger.offer("taken-model", b"{}", JSON, 200, b"{}", JSON)
        await asyncio.sleep(0.05)  # the sender took it: the queue is empty, its POST is not done
        await logger.stop()
        await sink.stop()
        return len(sink.received)

    assert asyncio.run(run()) == 2
