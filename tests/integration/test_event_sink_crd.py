"""The EventSink CRD against the real API server (no operator: what any client meets): the
sample applies with Knative's delivery defaults and the kstatus status default, and every CEL
rule and pattern refuses what the operator could not use. The pydantic side is in
tests/unit/api/test_event_sink_kind.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlkube.api.event_sink import MSG_ONE_DESTINATION
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.crd_checks import rejected, sample

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
MSG_DURATION = "an ISO-8601 duration longer than zero"


def test_sample_applies_with_defaults(kube: Kube, namespace: str) -> None:
    obj = sample("eventsink.yaml", namespace)
    del obj["spec"]["delivery"]["retry"], obj["spec"]["mode"]
    kube.create(obj)
    got = kube.get(API_VERSION, "EventSink", "ops", namespace)
    assert got is not None
    assert got["spec"]["delivery"]["retry"] == 10
    assert (got["spec"]["mode"], got["spec"]["ref"]["kind"]) == ("binary", "Service")
    # kstatus: a fresh object reads as not yet observed.
    assert got["status"] == {"observedGeneration": 0}
    # The status subresource takes what the operator writes.
    status = {"observedGeneration": 1, "delivered": 3, "pending": 1,
              "lastFailure": {"time": "2026-11-30T06:10:00Z", "status": 503, "message": "x"},
              "throttledUntil": "2026-11-30T06:11:00Z",
              "sinkUri": "http://r.ns.svc:8080/e"}  # fmt: skip
    kube.patch(API_VERSION, "EventSink", "ops", {"status": status}, namespace, subresource="status")
    got = kube.get(API_VERSION, "EventSink", "ops", namespace)
    assert got is not None and got["status"]["lastFailure"]["status"] == 503


def _delivery(**fields: Any) -> Callable[[Obj], None]:
    return lambda o: o["spec"]["delivery"].update(fields)


RULES: list[tuple[Callable[[Obj], None], str]] = [
    (lambda o: o["spec"].update(uri="http://127.0.0.1:9/e"), MSG_ONE_DESTINATION),
    (lambda o: o["spec"].pop("ref"), MSG_ONE_DESTINATION),
    (_delivery(deadLetterSink={}), MSG_ONE_DESTINATION),
    (_delivery(deadLetterSink={"uri": "http://a/", "ref": {"name": "b"}}), MSG_ONE_DESTINATION),
    (_delivery(backoffDelay="PT0S"), MSG_DURATION),
    (_delivery(backoffDelay="PT"), MSG_DURATION),
    (_delivery(timeout="P1DT"), MSG_DURATION),
    (_delivery(timeout="10s"), "spec.delivery.timeout"),
    (_delivery(timeout="P1W"), "spec.delivery.timeout"),
    (_delivery(backoffPolicy="fibonacci"), "spec.delivery.backoffPolicy"),
    (_delivery(retry=101), "spec.delivery.retry"),
    (lambda o: o["spec"].update(types=["dev.*.v1"]), "spec.types[0]"),
    (lambda o: o["spec"].update(types=["a", "a"]), "Duplicate value"),
    (lambda o: o["spec"].update(namespaces=["Team_A"]), "spec.namespaces[0]"),
    (lambda o: o["spec"].update(format="json"), "spec.format"),
    (lambda o: o["spec"].update(mode="batched"), "spec.mode"),
    (lambda o: o["spec"]["ref"].update(kind="Broker"), "spec.ref.kind"),
    (lambda o: o["spec"]["ref"].update(path="events"), "spec.ref.path"),
    (lambda o: o["spec"].update(ref=None, uri="s3://bucket/e"), "spec.uri"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), RULES, ids=[f"{i}:{m[:30]}" for i, (_, m) in
                                                           enumerate(RULES)])  # fmt: skip
def test_rules(kube: Kube, namespace: str, mutate: Callable[[Obj], None], message: str) -> None:
    obj = sample("eventsink.yaml", namespace)
    mutate(obj)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    assert message in rejected(kube.create, obj)
