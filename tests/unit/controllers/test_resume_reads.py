"""A restart's resume passes share their children's LISTs in batches: each pass sees exactly
what its own LISTs would have returned, one LIST per kind serves a batch, old shares are not
used, and anything a share cannot answer goes to the API."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.builders.names import (
    endpoint_selector,
    label_value,
    pod_selector,
    selector_string,
)
from mlkube.contract import LABEL_MANAGED_BY, MANAGED_BY
from mlkube.controllers.kube import ApiError
from mlkube.controllers.resume_reads import (
    KINDS,
    ResumeBatches,
    SharedLists,
    equalities,
)
from support.counting_kube import CountingKube
from support.fake_kube import FakeKube

NS = "team"


def child(api_version: str, kind: str, name: str, endpoint: str, **labels: str) -> dict[str, Any]:
    meta_labels = {**endpoint_selector(endpoint), **labels}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "labels": meta_labels},
    }


def cluster(endpoints: list[str]) -> FakeKube:
    fake = FakeKube()
    for e in endpoints:
        fake.put(child("v1", "ConfigMap", f"{e}-router", e))
        fake.put(child("v1", "Service", f"{e}-blue", e))
        fake.put(child("apps/v1", "Deployment", f"{e}-blue", e))
        fake.put(child("apps/v1", "Deployment", f"{e}-router", e))
        for component in ("router", "server"):
            pod = child("v1", "Pod", f"{e}-{component}-0", e, **pod_selector(e, component))
            fake.put(pod)
    # Someone else's object with our endpoint label but not our managed-by label.
    stray = child("v1", "Service", "not-ours", endpoints[0])
    stray["metadata"]["labels"][LABEL_MANAGED_BY] = "someone-else"
    fake.put(stray)
    elsewhere = child("v1", "ConfigMap", "other-namespace", endpoints[0])
    elsewhere["metadata"]["namespace"] = "elsewhere"
    fake.put(elsewhere)
    return fake


def pass_selectors(endpoint: str) -> list[tuple[str, str, str]]:
    """The LISTs a pass makes: its children by kind, its router pods, its server pods."""
    by_endpoint = selector_string(endpoint_selector(endpoint))
    wanted = [(av, kind, by_endpoint) for av, kind in KINDS]
    for component in ("router", "server"):
        wanted.append(("v1", "Pod", selector_string(pod_selector(endpoint, component))))
    return wanted


def test_each_pass_sees_what_its_own_lists_would_return_and_a_batch_lists_each_kind_once() -> None:
    names = [f"e{i}" for i in range(5)]
    fake = cluster(names)
    counted = CountingKube(fake)
    batches = ResumeBatches(batch=10)
    for name in names:
        batches.expect(NS, label_value(name))
    for name in names:
        share = batches.take(counted, NS, label_value(name))
        assert share is not None
        shared = SharedLists(counted, NS, label_value(name), share)
        for api_version, kind, selector in pass_selectors(name):
            if (api_version, kind) not in fake.kinds:
                continue  # not served here (Gateway API, Prometheus Operator)
            before = counted.total()
            got = shared.list(api_version, kind, NS, label_selector=selector)
            assert counted.total() == before  # answered from the share
            assert got == fake.list(api_version, kind, NS, label_selector=selector)
    # One LIST per kind for all five endpoints (unserved kinds are tried), nothing else.
    assert counted.total() == len(KINDS) == counted.total("list")
    assert batches.counts == {"shared": 5, "batches": 1, "own": 0}


def test_batches_hold_at_most_batch_endpoints_in_the_order_they_were_seen() -> None:
    names = [f"e{i}" for i in range(7)]
    counted = CountingKube(cluster(names))
    batches = ResumeBatches(batch=3)
    for name in names:
        batches.expect(NS, name)
    for name in names:
        assert batches.take(counted, NS, name) is not None
    assert batches.counts["batches"] == 3  # e0-e2, e3-e5, e6
    assert counted.total("list") == 3 * len(KINDS)


def test_an_old_share_is_not_used_and_a_forgotten_endpoint_is_left_out() -> None:
    names = ["a", "b", "c"]
    fake = cluster(names)
    counted = CountingKube(fake)
    now = [0.0]
    batches = ResumeBatches(batch=10, max_age=5.0, clock=lambda: now[0])
    for name in names:
        batches.expect(NS, name)
    batches.forget(NS, "c")  # its first pass was a creation's: listed for itself
    assert batches.take(counted, NS, "a") is not None
    assert counted.total("list") == len(KINDS)
    # b's share is older than max_age by the time its pass comes: listed again, fresh.
    fake.delete("v1", "Service", "b-blue", NS)
    now[0] = 6.0
    share = batches.take(counted, NS, "b")
    assert share is not None and counted.total("list") == 2 * len(KINDS)
    services = SharedLists(counted, NS, "b", share).list(
        "v1", "Service", NS, selector_string(endpoint_selector("b"))
    )
    assert services == []


def test_a_share_answers_only_its_endpoints_plain_selectors() -> None:
    fake = cluster(["a", "b"])
    counted = CountingKube(fake)
    batches = ResumeBatches()
    share = batches.take(counted, NS, "a")
    assert share is not None
    shared = SharedLists(counted, NS, "a", share)
    before = counted.total()
    others = [
        ("v1", "Service", NS, selector_string(endpoint_selector("b"))),  # another endpoint
        ("v1", "Service", "elsewhere", selector_string(endpoint_selector("a"))),
        ("v1", "Service", NS, "mlkube.dev/endpoint in (a)"),  # not equalities only
        ("v1", "Service", NS, None),
        ("v1", "Secret", NS, selector_string(endpoint_selector("a"))),  # a kind not shared
    ]
    for api_version, kind, namespace, selector in others:
        got = shared.list(api_version, kind, namespace, selector)
        assert got == fake.list(api_version, kind, namespace, selector)
    assert counted.total() == before + len(others)


class Refusing(FakeKube):
    """A cluster whose LISTs of one kind fail with `status`."""

    def __init__(self, kind: str, status: int) -> None:
        super().__init__()
        self.refused, self.status = kind, status

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        if kind == self.refused:
            raise ApiError(self.status, "Refused", f"{kind}: refused")
        return super().list(api_version, kind, namespace, label_selector)


def filled(fake: FakeKube, endpoints: list[str]) -> FakeKube:
    for obj in cluster(endpoints).objects.values():
        fake.put(obj)
    return fake


def test_a_failed_batch_list_makes_passes_list_for_themselves_for_a_while() -> None:
    """No batch LIST per pass while the API server fails them (each would only add load)."""
    fake = filled(Refusing("Deployment", 500), ["a", "b", "c"])
    counted = CountingKube(fake)
    now = [0.0]
    batches = ResumeBatches(max_age=5.0, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        batches.expect(NS, name)
    assert batches.take(counted, NS, "a") is None
    tried = counted.total("list")
    assert batches.take(counted, NS, "b") is None
    assert counted.total("list") == tried  # b lists for itself, no batch LIST tried
    assert batches.counts == {"shared": 0, "batches": 0, "own": 2}
    now[0] = 6.0
    fake.refused = "none"
    assert batches.take(counted, NS, "c") is not None  # batches again once it passed


def test_a_kind_the_cluster_does_not_serve_is_left_to_the_pass() -> None:
    fake = filled(Refusing("HorizontalPodAutoscaler", 404), ["a"])
    share = ResumeBatches().take(fake, NS, "a")
    assert share is not None
    assert ("autoscaling/v2", "HorizontalPodAutoscaler") not in share
    assert ("apps/v1", "Deployment") in share
    selector = selector_string(endpoint_selector("a"))
    with pytest.raises(ApiError) as err:  # the pass's own LIST, as without a share
        SharedLists(fake, NS, "a", share).list(
            "autoscaling/v2", "HorizontalPodAutoscaler", NS, selector
        )
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("a=1,b=2", {"a": "1", "b": "2"}),
        (f"{LABEL_MANAGED_BY}={MANAGED_BY}", {LABEL_MANAGED_BY: MANAGED_BY}),
        ("a!=1", None),
        ("a==1", None),
        ("a in (1,2)", None),
        ("a", None),
        ("", None),
        (None, None),
    ],
)
def test_only_equality_selectors_are_answered(
    selector: str | None, expected: dict[str, str] | None
) -> None:
    assert equalities(selector) == expected


def test_an_event_of_a_child_at_another_version_drops_the_share() -> None:
    """A restart's listing events carry the versions a share holds (kept); a newer version,
    a deletion or a child the share lacks means its pass must list for itself."""
    fake = cluster(["a", "b", "c", "d"])
    batches = ResumeBatches(ahead=0)  # no batch listed ahead: only what the events cause
    for name in ("a", "b", "c", "d"):
        batches.expect(NS, name)
    assert batches.take(fake, NS, "a") is not None
    version = fake.stored("apps/v1", "Deployment", "b-blue", NS)["metadata"]["resourceVersion"]
    batches.changed(NS, "b", "Deployment", "b-blue", version)  # the listing's own event
    batches.changed(NS, "c", "Deployment", "c-blue", "999")  # changed since the batch LIST
    batches.changed(NS, "d", "Pod", "d-new-pod", "5")  # a pod the share does not hold
    counted = CountingKube(fake)
    assert batches.take(counted, NS, "b") is not None
    assert counted.total("list") == 0
    for name in ("c", "d"):
        assert batches.take(counted, NS, name) is not None
    assert counted.total("list") == len(KINDS)  # c and d: one fresh batch for both


def test_an_endpoint_forgotten_while_its_batch_is_listed_gets_no_share() -> None:
    """Its first pass ran (or it was deleted) during the LISTs: no share is kept for it."""
    batches = ResumeBatches()

    class Forgetting(FakeKube):
        def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            batches.forget(NS, "b")
            return super().list(*args, **kwargs)

    fake = filled(Forgetting(), ["a", "b"])
    batches.expect(NS, "a")
    batches.expect(NS, "b")
    assert batches.take(fake, NS, "a") is not None
    assert batches._shares == {}


def test_a_pass_that_wrote_a_kind_lists_it_again() -> None:
    """The status after a Deployment write must see the write, not the share."""
    fake = cluster(["a"])
    share = ResumeBatches().take(fake, NS, "a")
    assert share is not None
    counted = CountingKube(fake)
    shared = SharedLists(counted, NS, "a", share)
    selector = selector_string(endpoint_selector("a"))
    shared.list("apps/v1", "Deployment", NS, selector)
    assert counted.total("list") == 0
    shared.patch("apps/v1", "Deployment", "a-blue", {"metadata": {"labels": {"x": "1"}}}, NS)
    listed = shared.list("apps/v1", "Deployment", NS, selector)
    assert counted.calls["list", "Deployment"] == 1
    blue = next(d for d in listed if d["metadata"]["name"] == "a-blue")
    assert blue["metadata"]["labels"]["x"] == "1"
    shared.list("v1", "Service", NS, selector)
    assert counted.calls["list", "Service"] == 0  # other kinds still from the share


def test_concurrent_passes_share_batches_in_the_order_seen() -> None:
    """16 handler threads resuming 120 endpoints: every pass gets a share, each batch is
    listed once, and no endpoint is left waiting."""
    import threading

    names = [f"e{i:03d}" for i in range(120)]
    counted = CountingKube(cluster(names))
    batches = ResumeBatches(batch=50)
    for name in names:
        batches.expect(NS, name)
    queue = list(reversed(names))
    lock = threading.Lock()
    missing: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop()
            if batches.take(counted, NS, name) is None:
                missing.append(name)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert missing == []
    assert batches.counts == {"shared": 120, "batches": 3, "own": 0}
    assert counted.total("list") == 3 * len(KINDS)
    assert batches._waiting == {} and batches._shares == {}


def test_the_next_batch_is_listed_ahead_by_a_pass_that_took_a_share() -> None:
    """Once fewer than `ahead` shares are left, the pass taking one lists the next batch, so
    the passes after it find theirs waiting (no handler thread waits for a batch LIST)."""
    names = [f"e{i}" for i in range(9)]
    counted = CountingKube(cluster(names))
    batches = ResumeBatches(batch=3, ahead=2)
    for name in names:
        batches.expect(NS, name)
    assert batches.take(counted, NS, "e0") is not None  # lists e0-e2
    assert counted.total("list") == len(KINDS)
    assert batches.take(counted, NS, "e1") is not None  # 1 share left < 2: lists e3-e5
    assert counted.total("list") == 2 * len(KINDS)
    assert sorted(label for _, label in batches._shares) == ["e2", "e3", "e4", "e5"]
    for name in names[2:]:
        assert batches.take(counted, NS, name) is not None
    assert batches.counts == {"shared": 9, "batches": 3, "own": 0}
    assert batches._waiting == {} and batches._shares == {}


def test_the_drained_hook_runs_once_every_waiting_endpoint_has_its_share() -> None:
    """The operator hands a restart's freed memory back then (handlers/endpoint.py)."""
    names = ["a", "b", "c"]
    fake = cluster(names)
    batches = ResumeBatches()
    calls: list[int] = []
    batches.on_drained = lambda: calls.append(1)
    for name in names:
        batches.expect(NS, name)
    for name in names:
        assert calls == []
        assert batches.take(fake, NS, name) is not None
    assert calls == [1]
