"""CloudEvents notifications end to end (docs/notifications.md) on the real control plane: the
operator as its own process (its outbox a SQLite file), EventSinks pointing at a real
CloudEvents receiver (the `cloudevents` SDK, tests/process/outbox/outbox_receiver.py) on
loopback — in the dev setup the operator cannot reach Services, so sinks use `uri`. Models
verified by the real operator imply the events; nothing here fakes the API or the HTTP side.
Restarts and SIGKILL: test_notifications_restart.py."""

from __future__ import annotations

import base64
import collections
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.notify_procs import (
    REGISTERED,
    VERIFIED,
    Procs,
    Receiver,
    model,
    ready_model,
    ready_of,
    sink,
    sink_status,
)
from support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def procs(tmp_path: Path, namespace: str) -> Iterator[Procs]:
    started = Procs(namespace, tmp_path)
    yield started
    started.stop()


def test_a_registered_model_is_delivered_once_with_its_attributes(
    kube: Kube, namespace: str, tmp_path: Path, procs: Procs
) -> None:
    everything = procs.receiver(tmp_path, "all").start()
    verified_only = procs.receiver(tmp_path, "verified").start()
    batch_only = procs.receiver(tmp_path, "batch").start()
    sink(kube, namespace, "all", everything.url)
    sink(kube, namespace, "verified", verified_only.url, types=[VERIFIED], mode="structured")
    sink(kube, namespace, "batch", batch_only.url, types=["dev.mlkube.batchjob.*"])
    procs.operator.start()
    model(kube, namespace, "credit-risk-3", tmp_path)
    obj = wait_for(lambda: ready_model(kube, namespace, "credit-risk-3"), 60, what="Ready")
    ready_at = time.time()
    got = wait_for(lambda: {e["type"]: e for e in everything.received()}.get(REGISTERED), 30,
                   what="model.registered delivered")  # fmt: skip
    print(f"\nmodel.registered received {got['at'] - ready_at:+.2f}s after Ready was read")
    attrs, meta = got["attributes"], obj["metadata"]
    digest = obj["status"]["artifact"]["digest"]
    assert attrs["specversion"] == "1.0" and attrs["datacontenttype"] == "application/json"
    assert attrs["source"] == f"/apis/mlkube.dev/namespaces/{namespace}/models/credit-risk-3"
    assert attrs["subject"] == f"Model/{namespace}/credit-risk-3"
    assert attrs["dataschema"].endswith("model.registered.v1.json")
    assert (attrs["mlkubenamespace"], attrs["mlkubename"], attrs["mlkubeuid"]) == (
        namespace, "credit-risk-3", meta["uid"],
    )  # fmt: skip
    assert attrs["mlkubegeneration"] == str(meta["generation"])
    assert (attrs["mlkubemodelversion"], attrs["mlkubemodeldigest"]) == ("3", digest)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert attrs["time"] == ready["lastTransitionTime"]
    assert got["data"]["name"] == "credit-risk" and got["data"]["digest"] == digest
    assert got["data"]["uri"].startswith("file://")
    # More watch events of the same state (a label, the operator's own status writes) and a
    # status sync later: still one registered, one verified, each sent once.
    kube.patch(API_VERSION, "Model", "credit-risk-3", {"metadata": {"labels": {"x": "y"}}},
               namespace)  # fmt: skip
    wait_for(lambda: sink_status(kube, namespace, "all").get("delivered") == 2, 30,
             what="sink status delivered=2")  # fmt: skip
    types = collections.Counter(e["type"] for e in everything.received())
    assert types == {REGISTERED: 1, VERIFIED: 1}
    assert all(n == 1 for n in everything.attempts().values())
    status = sink_status(kube, namespace, "all")
    assert ready_of(status) == ("True", "Delivering") and status["sinkUri"] == everything.url
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


def test_a_410_stops_the_sink_until_its_spec_changes(
    kube: Kube, namespace: str, tmp_path: Path, procs: Procs
) -> None:
    receiver = procs.receiver(tmp_path, "gone").start()
    receiver.control(mode="gone")
    sink(kube, namespace, "ops", receiver.url, types=[REGISTERED])
    procs.operator.start()
    model(kube, namespace, "credit-risk-1", tmp_path)
    gone = wait_for(lambda: (s := sink_status(kube, namespace, "ops")) and ready_of(s) == (
        "False", "SinkGone") and s, 60, what="SinkGone")  # fmt: skip
    stalled = next(c for c in gone["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and gone["lastFailure"]["status"] == 410
    receiver.control(mode="ok")  # it would answer now, but the operator no longer asks
    model(kube, namespace, "credit-risk-2", tmp_path)
    wait_for(lambda: sink_status(kube, namespace, "ops").get("pending") == 2, 60,
             what="the second Model's event pending")  # fmt: skip
    time.sleep(2)
    assert sum(receiver.attempts().values()) == 1 and receiver.received() == []
    # A changed spec lifts the stop: the backlog is sent.
    kube.patch(API_VERSION, "EventSink", "ops", {"spec": {"types": [REGISTERED, VERIFIED]}},
               namespace)  # fmt: skip
    wait_for(lambda: len(receiver.received()) == 2, 30, what="backlog delivered")
    assert {e["type"] for e in receiver.received()} == {REGISTERED}
    wait_for(lambda: ready_of(sink_status(kube, namespace, "ops")) == ("True", "Delivering"), 30,
             what="Ready again")  # fmt: skip


def test_the_default_sink_gets_every_event_in_azure_ml_form(
    kube: Kube, namespace: str, tmp_path: Path, procs: Procs
) -> None:
    """MLKUBE_EVENT_SINK_URI, no EventSink at all: Event Grid's schema with Azure ML's type and
    data field names (ModelRegistered); model.verified has no Azure counterpart, so not sent."""
    receiver = procs.receiver(tmp_path, "azure").start()
    procs.operator.env.update(MLKUBE_EVENT_SINK_URI=receiver.url,
                                 MLKUBE_EVENT_SINK_FORMAT="azureml")  # fmt: skip
    procs.operator.start()
    model(kube, namespace, "credit-risk-7", tmp_path)
    got = wait_for(lambda: receiver.received(), 60, what="an Event Grid delivery")
    time.sleep(2)  # model.verified would have come by now: it has no Azure counterpart
    assert [e["type"] for e in receiver.received()] == [
        "Microsoft.MachineLearningServices.ModelRegistered"
    ]
    obj = kube.get(API_VERSION, "Model", "credit-risk-7", namespace) or {}
    data, attrs = got[0]["data"], got[0]["attributes"]
    assert (data["modelName"], data["modelVersion"]) == ("credit-risk", "7")
    assert attrs["topic"] == f"/apis/mlkube.dev/namespaces/{namespace}"
    assert attrs["subject"] == "models/credit-risk:7"
    assert obj["status"]["phase"] == "Ready"


def test_signed_with_a_secrets_key_and_a_service_ref_resolved_when_it_appears(
    kube: Kube, namespace: str, tmp_path: Path, procs: Procs
) -> None:
    """The signing key comes from a Secret (the receiver verifies the HMAC); a `ref` to a
    Service that does not exist yet is Stalled, then resolves to its cluster DNS URL."""
    key = "k3y-for-hmac"
    signed = Receiver(tmp_path, "signed", key=key).start()
    procs.receivers.append(signed)
    kube.create({"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "sink-key", "namespace": namespace},
                 "data": {"key": base64.b64encode(key.encode()).decode()}})  # fmt: skip
    sink(kube, namespace, "signed", signed.url, types=[REGISTERED],
          signing={"secretRef": {"name": "sink-key", "key": "key"}})  # fmt: skip
    kube.create({"apiVersion": API_VERSION, "kind": "EventSink",
                 "metadata": {"name": "svc", "namespace": namespace},
                 "spec": {"ref": {"kind": "Service", "name": "rx", "path": "/in"},
                          "types": ["dev.mlkube.batchjob.*"]}})  # fmt: skip
    procs.operator.start()
    missing = wait_for(lambda: (s := sink_status(kube, namespace, "svc")) and ready_of(s) == (
        "False", "ServiceNotFound") and s, 60, what="ServiceNotFound")  # fmt: skip
    assert f"Service {namespace}/rx does not exist" in missing["message"]
    model(kube, namespace, "credit-risk-9", tmp_path)
    [got] = wait_for(signed.received, 60, what="a signed delivery")
    assert got["type"] == REGISTERED and got["signed"] is True
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "rx", "namespace": namespace},
                 "spec": {"ports": [{"name": "web", "port": 8080}]}})  # fmt: skip
    resolved = wait_for(lambda: (s := sink_status(kube, namespace, "svc")) and ready_of(s) == (
        "True", "Delivering") and s, 30, what="the ref resolved")  # fmt: skip
    assert resolved["sinkUri"] == f"http://rx.{namespace}.svc.cluster.local:8080/in"
