"""CloudEvents notifications end to end (docs/notifications.md) on the real control plane: the
operator as its own process (its outbox a SQLite file), EventSinks pointing at a real
CloudEvents receiver (the `cloudevents` SDK, tests/process/outbox/outbox_receiver.py) on loopback —
in the dev setup the operator cannot reach Services, so sinks use `uri`. Models verified by
the real operator imply the events; nothing here fakes the API or the HTTP side."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.notify_procs import OperatorProcess, Receiver
from support.waiting import wait_for

pytestmark = pytest.mark.integration
REGISTERED = "dev.mlkube.model.registered.v1"
VERIFIED = "dev.mlkube.model.verified.v1"
FAST = {"retry": 100, "backoffPolicy": "linear", "backoffDelay": "PT0.2S", "timeout": "PT2S"}


@pytest.fixture
def procs(tmp_path: Path, namespace: str) -> Iterator[dict[str, Any]]:
    started: dict[str, Any] = {
        "operator": OperatorProcess(namespace, tmp_path, tmp_path / "outbox" / "outbox.db"),
        "receivers": [],
    }
    yield started
    started["operator"].stop()
    for receiver in started["receivers"]:
        receiver.stop()


def _receiver(procs: dict[str, Any], tmp_path: Path, name: str) -> Receiver:
    receiver = Receiver(tmp_path, name)
    procs["receivers"].append(receiver)
    return receiver


def _sink(kube: Kube, namespace: str, name: str, uri: str, **spec: Any) -> None:
    kube.create({"apiVersion": API_VERSION, "kind": "EventSink",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"uri": uri, "delivery": FAST, **spec}})  # fmt: skip


def _model(kube: Kube, namespace: str, name: str, tmp: Path) -> None:
    artifact = tmp / f"{name}.onnx"
    artifact.write_bytes(name.encode())
    spec = {"modelName": "credit-risk", "version": name.rsplit("-", 1)[-1], "framework": "onnx",
            "artifact": {"uri": artifact.as_uri()}}  # fmt: skip
    kube.create({"apiVersion": API_VERSION, "kind": "Model",
                 "metadata": {"name": name, "namespace": namespace}, "spec": spec})  # fmt: skip


def _ready_model(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "Model", name, namespace) or {}
    return obj if (obj.get("status") or {}).get("phase") == "Ready" else None


def _status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "EventSink", name, namespace) or {}
    return dict(obj.get("status") or {})


def _ready(status: dict[str, Any]) -> tuple[str, str] | None:
    for cond in status.get("conditions") or []:
        if cond["type"] == "Ready":
            return cond["status"], cond["reason"]
    return None


def test_a_registered_model_is_delivered_once_with_its_attributes(
    kube: Kube, namespace: str, tmp_path: Path, procs: dict[str, Any]
) -> None:
    everything = _receiver(procs, tmp_path, "all").start()
    verified_only = _receiver(procs, tmp_path, "verified").start()
    batch_only = _receiver(procs, tmp_path, "batch").start()
    _sink(kube, namespace, "all", everything.url)
    _sink(kube, namespace, "verified", verified_only.url, types=[VERIFIED], mode="structured")
    _sink(kube, namespace, "batch", batch_only.url, types=["dev.mlkube.batchjob.*"])
    procs["operator"].start()
    _model(kube, namespace, "credit-risk-3", tmp_path)
    model = wait_for(lambda: _ready_model(kube, namespace, "credit-risk-3"), 60, what="Ready")
    got = wait_for(lambda: {e["type"]: e for e in everything.received()}.get(REGISTERED), 30,
                   what="model.registered delivered")  # fmt: skip
    attrs, meta = got["attributes"], model["metadata"]
    digest = model["status"]["artifact"]["digest"]
    assert attrs["specversion"] == "1.0" and attrs["datacontenttype"] == "application/json"
    assert attrs["source"] == f"/apis/mlkube.dev/namespaces/{namespace}/models/credit-risk-3"
    assert attrs["subject"] == f"Model/{namespace}/credit-risk-3"
    assert attrs["dataschema"].endswith("model.registered.v1.json")
    assert (attrs["mlkubenamespace"], attrs["mlkubename"], attrs["mlkubeuid"]) == (
        namespace, "credit-risk-3", meta["uid"],
    )  # fmt: skip
    assert attrs["mlkubegeneration"] == str(meta["generation"])
    assert (attrs["mlkubemodelversion"], attrs["mlkubemodeldigest"]) == ("3", digest)
    ready = next(c for c in model["status"]["conditions"] if c["type"] == "Ready")
    assert attrs["time"] == ready["lastTransitionTime"]
    assert got["data"]["name"] == "credit-risk" and got["data"]["digest"] == digest
    assert got["data"]["uri"].startswith("file://")
    # More watch events of the same state (a label, the operator's own status writes) and a
    # status sync later: still one registered, one verified, each sent once.
    kube.patch(API_VERSION, "Model", "credit-risk-3", {"metadata": {"labels": {"x": "y"}}},
               namespace)  # fmt: skip
    wait_for(lambda: _status(kube, namespace, "all").get("delivered") == 2, 30,
             what="sink status delivered=2")  # fmt: skip
    types = collections.Counter(e["type"] for e in everything.received())
    assert types == {REGISTERED: 1, VERIFIED: 1}
    assert all(n == 1 for n in everything.attempts().values())
    status = _status(kube, namespace, "all")
    assert _ready(status) == ("True", "Delivering") and status["sinkUri"] == everything.url
    assert status["lastDeliveredAt"] and status["pending"] == 0
    # No idle writes: nothing changes, the sink is not written (status syncs every 2 s).
    version = (kube.get(API_VERSION, "EventSink", "all", namespace) or {})["metadata"]
    time.sleep(7)
    assert (kube.get(API_VERSION, "EventSink", "all", namespace) or {})["metadata"][
        "resourceVersion"] == version["resourceVersion"]  # fmt: skip
    # The type filter: only verified (structured mode), nothing for the batch-only sink.
    wait_for(verified_only.received, 30, what="model.verified to the filtered sink")
    assert [e["type"] for e in verified_only.received()] == [VERIFIED]
    assert verified_only.received()[0]["data"]["digest"] == digest
    assert batch_only.received() == [] and batch_only.attempts() == {}


def test_operator_killed_with_events_pending_delivers_all_after_restart(
    kube: Kube, namespace: str, tmp_path: Path, procs: dict[str, Any]
) -> None:
    receiver = _receiver(procs, tmp_path, "receiver")  # not started: the sink is down
    _sink(kube, namespace, "ops", receiver.url)
    operator = procs["operator"].start()
    names = [f"credit-risk-{n}" for n in (1, 2, 3)]
    for name in names:
        _model(kube, namespace, name, tmp_path)
    for name in names:
        wait_for(lambda name=name: _ready_model(kube, namespace, name), 60, what=f"{name} Ready")
    failing = wait_for(lambda: (s := _status(kube, namespace, "ops")).get("pending") == 6 and s,
                       30, what="6 events pending")  # fmt: skip
    assert _ready(failing) == ("False", "DeliveryFailing")
    assert "status" not in failing["lastFailure"]  # connection refused: no HTTP answer
    operator.kill()  # SIGKILL: nothing flushed, nothing released
    _model(kube, namespace, "credit-risk-4", tmp_path)  # changed while the operator is dead
    receiver.start()
    started = time.monotonic()
    operator.start()
    wait_for(lambda: len({e["id"] for e in receiver.received()}) == 8, 90,
             what="all 8 events delivered after the restart")  # fmt: skip
    print(f"\nall pending events delivered {time.monotonic() - started:.1f}s after restart")
    events = receiver.received()
    by_id: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    for event in events:
        by_id[event["id"]].add((event["type"], event["attributes"]["subject"]))
    # One id per occurrence, one occurrence per id: 4 Models x (registered, verified).
    assert all(len(occurrences) == 1 for occurrences in by_id.values())
    expected = [(t, f"Model/{namespace}/credit-risk-{n}") for n in (1, 2, 3, 4)
                for t in (REGISTERED, VERIFIED)]  # fmt: skip
    assert sorted(o for occ in by_id.values() for o in occ) == sorted(expected)
    time.sleep(3)  # at least once, not more: nothing is sent again once acknowledged
    assert len(receiver.received()) == len(events) == 8
    wait_for(lambda: _ready(_status(kube, namespace, "ops")) == ("True", "Delivering"), 30,
             what="the sink Ready again")  # fmt: skip


def test_a_410_stops_the_sink_until_its_spec_changes(
    kube: Kube, namespace: str, tmp_path: Path, procs: dict[str, Any]
) -> None:
    receiver = _receiver(procs, tmp_path, "gone").start()
    receiver.control(mode="gone")
    _sink(kube, namespace, "ops", receiver.url, types=[REGISTERED])
    procs["operator"].start()
    _model(kube, namespace, "credit-risk-1", tmp_path)
    gone = wait_for(lambda: (s := _status(kube, namespace, "ops")) and _ready(s) == (
        "False", "SinkGone") and s, 60, what="SinkGone")  # fmt: skip
    stalled = next(c for c in gone["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and gone["lastFailure"]["status"] == 410
    receiver.control(mode="ok")  # it would answer now, but the operator no longer asks
    _model(kube, namespace, "credit-risk-2", tmp_path)
    wait_for(lambda: _status(kube, namespace, "ops").get("pending") == 2, 60,
             what="the second Model's event pending")  # fmt: skip
    time.sleep(2)
    assert sum(receiver.attempts().values()) == 1 and receiver.received() == []
    # A changed spec lifts the stop: the backlog is sent.
    kube.patch(API_VERSION, "EventSink", "ops", {"spec": {"types": [REGISTERED, VERIFIED]}},
               namespace)  # fmt: skip
    wait_for(lambda: len(receiver.received()) == 2, 30, what="backlog delivered")
    assert {e["type"] for e in receiver.received()} == {REGISTERED}
    wait_for(lambda: _ready(_status(kube, namespace, "ops")) == ("True", "Delivering"), 30,
             what="Ready again")  # fmt: skip


def test_the_default_sink_gets_every_event_in_azure_ml_form(
    kube: Kube, namespace: str, tmp_path: Path, procs: dict[str, Any]
) -> None:
    """MLKUBE_EVENT_SINK_URI, no EventSink at all: Event Grid's schema with Azure ML's type and
    data field names (ModelRegistered); model.verified has no Azure counterpart, so not sent."""
    receiver = _receiver(procs, tmp_path, "azure").start()
    procs["operator"].env.update(MLKUBE_EVENT_SINK_URI=receiver.url,
                                 MLKUBE_EVENT_SINK_FORMAT="azureml")  # fmt: skip
    procs["operator"].start()
    _model(kube, namespace, "credit-risk-7", tmp_path)
    got = wait_for(lambda: receiver.received(), 60, what="an Event Grid delivery")
    time.sleep(2)  # model.verified would have come by now: it has no Azure counterpart
    assert [e["type"] for e in receiver.received()] == [
        "Microsoft.MachineLearningServices.ModelRegistered"
    ]
    model = kube.get(API_VERSION, "Model", "credit-risk-7", namespace) or {}
    data, attrs = got[0]["data"], got[0]["attributes"]
    assert (data["modelName"], data["modelVersion"]) == ("credit-risk", "7")
    assert attrs["topic"] == f"/apis/mlkube.dev/namespaces/{namespace}"
    assert attrs["subject"] == "models/credit-risk:7"
    assert model["status"]["phase"] == "Ready"
