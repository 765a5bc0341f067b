"""Deployment and pod events of one endpoint share a waiting pass: while a pass waits for the
endpoint's lock (it has read nothing yet), further refreshes are skipped; once it holds the
lock, the next event gets a refresh of its own, so the last event is never lost."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import kopf
import pytest

from mlkube.controllers.pending import Waiting
from mlkube.handlers import endpoint


def test_waiting_counts_passes_until_they_hold_the_lock() -> None:
    waiting = Waiting()
    assert waiting.claim("k")
    assert not waiting.claim("k")  # covered by the first
    waiting.add("k")  # a reconcile waits anyway
    waiting.done("k")
    assert waiting.covered("k")
    waiting.done("k")
    assert not waiting.covered("k") and len(waiting) == 0
    assert waiting.claim("k")


def test_refreshes_queued_behind_a_pass_run_once_and_a_later_one_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[str] = []
    first_reading = threading.Event()
    release_first = threading.Event()

    def refresh_status(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        runs.append(name)
        if len(runs) == 1:
            first_reading.set()
            release_first.wait(5)
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint.sync, "refresh_status", refresh_status)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)

    running = threading.Thread(target=endpoint.refresh, args=("ns", "credit"))
    running.start()
    assert first_reading.wait(5)  # holds the lock, has started reading
    queued = threading.Thread(target=endpoint.refresh, args=("ns", "credit"))
    queued.start()  # an event after the first read: must run
    for _ in range(500):
        if endpoint.WAITING.covered(("ns", "credit")):
            break
        threading.Event().wait(0.01)
    assert endpoint.WAITING.covered(("ns", "credit"))
    for _ in range(10):  # events while that one waits: covered by it
        endpoint.refresh("ns", "credit")
    release_first.set()
    running.join(5)
    queued.join(5)
    assert runs == ["credit", "credit"]
    assert len(endpoint.WAITING) == 0 and len(endpoint.LOCKS) == 0
    endpoint.refresh("ns", "credit")  # nothing waits now: runs
    assert runs == ["credit"] * 3


def test_a_failing_pass_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(endpoint.sync, "refresh_status", broken)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    with pytest.raises(RuntimeError):
        endpoint.refresh("ns", "credit")
    assert len(endpoint.WAITING) == 0 and len(endpoint.LOCKS) == 0


def test_a_burst_of_deployment_events_costs_one_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []

    def refresh_status(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        runs.append(name)
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint.sync, "refresh_status", refresh_status)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    ref = {"apiVersion": "mlkube.dev/v1alpha1", "kind": "OnlineEndpoint", "name": "credit",
           "controller": True}  # fmt: skip
    owned = {"name": "credit-blue", "ownerReferences": [ref]}

    async def burst() -> None:
        events = [
            endpoint.child_deployment_changed(
                type="MODIFIED", meta=owned, namespace="ns", logger=logging.getLogger("t")
            )
            for _ in range(6)
        ]
        await asyncio.gather(*events)
        assert endpoint.REFRESHES.pending() == 1  # one waiting pass, no body held
        await endpoint.drain_passes()
        # after the refresh has read, the next event refreshes again
        await endpoint.child_deployment_changed(
            type="MODIFIED", meta=owned, namespace="ns", logger=logging.getLogger("t")
        )
        await endpoint.drain_passes()

    asyncio.run(burst())
    assert runs == ["credit", "credit"]
    assert len(endpoint.WAITING) == 0


def test_a_model_turning_ready_reconciles_the_endpoints_blocked_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in memory (what each blocked pass recorded), not by a LIST of every endpoint."""
    outcomes = {"credit": frozenset({"m1"}), "churn": frozenset({"m2"})}
    passes: list[str] = []

    def reconcile(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        passes.append(name)
        return endpoint.sync.Outcome(waiting_for=outcomes[name])

    monkeypatch.setattr(endpoint.sync, "reconcile", reconcile)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    endpoint.run_reconcile("ns", "credit")
    endpoint.run_reconcile("ns", "churn")
    assert endpoint.blocked_on("ns", "m1") == ["credit"]
    ready: Any = {"conditions": [{"type": "Ready", "status": "True"}]}
    outcomes["credit"] = frozenset()  # now it applies

    async def model_ready() -> None:
        await endpoint.model_changed(name="m1", namespace="ns", status=ready)
        await endpoint.drain_passes()

    asyncio.run(model_ready())
    assert passes == ["credit", "churn", "credit"]
    assert endpoint.blocked_on("ns", "m1") == [] and endpoint.blocked_on("ns", "m2") == ["churn"]
    endpoint.record_blocked("ns", "churn", frozenset())
    endpoint.ready_seen("ns", "m1", False)


def test_a_model_ready_while_a_pass_read_it_not_ready_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Model's Ready event is handled after the pass read the Model and before it recorded
    itself blocked: blocked_on() did not name it yet, so the pass itself must run again."""
    passes: list[str] = []

    def reconcile(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        passes.append(name)
        if len(passes) == 1:
            assert endpoint.ready_seen("race", "m1", True) == []  # not recorded blocked yet
            return endpoint.sync.Outcome(waiting_for=frozenset({"m1"}), models_wake=True)
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint.sync, "reconcile", reconcile)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)

    try:
        endpoint.run_reconcile("race", "credit")
        assert passes == ["credit", "credit"]
        assert endpoint.blocked_on("race", "m1") == []
        # A Model seen Ready before the pass began does not make it run again.
        assert not endpoint.record_blocked("race", "other", frozenset({"m1"}), time.monotonic())
    finally:
        endpoint.record_blocked("race", "other", frozenset())
        endpoint.ready_seen("race", "m1", False)


def test_a_pass_blocked_only_on_models_ends_its_handler_others_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Kopf retry (and no progress written into the endpoint) for what a Model's Ready
    event wakes; a pass blocked by anything else still retries."""
    outcome = endpoint.sync.Outcome(retry_message="Model m1 is not Ready yet (Verifying)",
                                    waiting_for=frozenset({"m1"}), models_wake=True)  # fmt: skip
    monkeypatch.setattr(endpoint, "run_reconcile", lambda *_, **__: outcome)
    endpoint.reconcile_endpoint(namespace="ns", name="credit", retry=0)
    outcome = endpoint.sync.Outcome(retry_message="routers are reloading")
    with pytest.raises(kopf.TemporaryError, match="reloading"):
        endpoint.reconcile_endpoint(namespace="ns", name="credit", retry=0)


def test_a_deleted_or_unready_model_forgets_when_it_was_seen_ready() -> None:
    assert endpoint.ready_seen("gone", "m", True) == []
    assert ("gone", "m") in endpoint.READY_SEEN

    async def deleted() -> None:
        ready: Any = {"conditions": [{"type": "Ready", "status": "True"}]}
        await endpoint.model_changed(name="m", namespace="gone", status=ready, type="DELETED")

    asyncio.run(deleted())
    assert ("gone", "m") not in endpoint.READY_SEEN


def recorded_passes(monkeypatch: pytest.MonkeyPatch, reconcile_fails: bool) -> list[str]:
    """Refreshes and reconciles record themselves; a reconcile raises an API error if asked."""
    runs: list[str] = []

    def refresh_status(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        runs.append("refresh")
        return endpoint.sync.Outcome()

    def reconcile_change(*_: Any) -> Any:
        runs.append("reconcile")
        if reconcile_fails:
            raise endpoint.ApiError(500, "InternalError", "etcd timeout")
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint.sync, "refresh_status", refresh_status)
    monkeypatch.setattr(endpoint.traffic, "reconcile_change", reconcile_change)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    return runs


def test_a_refresh_asked_for_before_a_pass_began_reading_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart the Deployments' listing events queue refreshes behind every resume
    reconcile; a reconcile that began reading after the event already saw what it changed."""
    runs = recorded_passes(monkeypatch, reconcile_fails=False)
    key = ("ns", "restarted")
    asked = time.monotonic()
    endpoint.run_reconcile(*key)  # began reading after the event
    endpoint.refresh_key(key, asked)
    assert runs == ["reconcile"]
    endpoint.refresh_key(key, time.monotonic())  # an event after that pass began: runs
    assert runs == ["reconcile", "refresh"]
    endpoint.WAITING.forget(key)


def test_a_pass_that_failed_covers_no_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = recorded_passes(monkeypatch, reconcile_fails=True)
    key = ("ns", "failed")
    asked = time.monotonic()
    with pytest.raises(endpoint.kopf.TemporaryError):
        endpoint.run_reconcile(*key)  # began reading after the event, read nothing
    endpoint.refresh_key(key, asked)
    assert runs == ["reconcile", "refresh"]
    assert len(endpoint.WAITING) == 0 and len(endpoint.LOCKS) == 0
    endpoint.WAITING.forget(key)


def test_an_event_after_a_pass_began_is_not_lost_to_an_earlier_event_of_its_burst(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Event 1 asks for a refresh; a reconcile begins reading and completes; event 2 (a
    Deployment turning available, say) joins the refresh still waiting. The reconcile read
    before event 2, so the refresh must run (covering from event 1 lost readiness in CI)."""
    runs = recorded_passes(monkeypatch, reconcile_fails=False)
    ref = {"apiVersion": "mlkube.dev/v1alpha1", "kind": "OnlineEndpoint", "name": "burst",
           "controller": True}  # fmt: skip
    owned = {"name": "burst-blue", "ownerReferences": [ref]}
    log = logging.getLogger("t")

    async def scenario() -> None:
        await endpoint.child_deployment_changed(type="MODIFIED", meta=owned, namespace="ns",
                                                logger=log)  # fmt: skip
        await asyncio.to_thread(endpoint.run_reconcile, "ns", "burst")
        assert endpoint.REFRESHES.pending() == 1  # still waiting out REFRESH_DELAY
        await endpoint.child_deployment_changed(type="MODIFIED", meta=owned, namespace="ns",
                                                logger=log)  # fmt: skip
        await endpoint.drain_passes()

    asyncio.run(scenario())
    assert runs == ["reconcile", "refresh"]
    endpoint.WAITING.forget(("ns", "burst"))


def test_a_lost_model_wake_up_is_covered_by_the_backstop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Ready event arrives (lost): the backstop timer reconciles the endpoint anyway, and
    stops once a pass is no longer blocked."""
    passes: list[str] = []

    def reconcile(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        passes.append(name)
        if len(passes) < 3:
            return endpoint.sync.Outcome(
                retry_message="Model m1 is not Ready yet",
                waiting_for=frozenset({"m1"}),
                models_wake=True,
            )
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint.sync, "reconcile", reconcile)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    monkeypatch.setattr(endpoint, "MODEL_BACKSTOP_DELAY", 0.05)

    async def go() -> None:
        await endpoint.bind_passes()
        await asyncio.to_thread(endpoint.reconcile_endpoint, namespace="bs", name="credit", retry=0)
        for _ in range(100):
            await asyncio.sleep(0.05)
            await endpoint.drain_passes()
            if len(passes) >= 3:
                break
        await asyncio.sleep(0.4)  # nothing blocked any more: no further pass
        await endpoint.drain_passes()
        await endpoint.stop_passes()

    asyncio.run(go())
    assert passes == ["credit", "credit", "credit"]
    assert endpoint.blocked_on("bs", "m1") == [] and ("bs", "credit") not in endpoint.BACKSTOPS


def coalesced_passes(monkeypatch: pytest.MonkeyPatch, first: Any, key: tuple[str, str]) -> int:
    """A coalesced reconcile of `key` whose first pass returns `first` (an Outcome) or raises
    it (an exception), the next ones an unblocked Outcome; the passes run, counted."""
    runs: list[int] = []

    def reconcile_change(*_: Any) -> Any:
        runs.append(1)
        if len(runs) > 1:
            return endpoint.sync.Outcome()
        if isinstance(first, Exception):
            raise first
        return first

    monkeypatch.setattr(endpoint.traffic, "reconcile_change", reconcile_change)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    monkeypatch.setattr(endpoint, "BACKSTOP_DELAY", 0.05)

    async def go() -> None:
        await endpoint.bind_passes()
        endpoint.RECONCILES.request(key)
        for _ in range(100):
            await asyncio.sleep(0.05)
            await endpoint.drain_passes()
            if len(runs) >= 2:
                break
        await asyncio.sleep(0.2)  # unblocked: no further pass
        await endpoint.stop_passes()

    asyncio.run(go())
    assert key not in endpoint.BACKSTOPS
    return len(runs)


def test_a_failed_coalesced_reconcile_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    failure = endpoint.ApiError(500, "InternalError", "etcd timeout")
    assert coalesced_passes(monkeypatch, failure, ("bf", "credit")) == 2


def test_a_coalesced_pass_blocked_by_something_else_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Routers reloading (no Model waited for): Kopf retries only its own handler's passes,
    so a pass asked for by an event is retried by the backstop."""
    reloading = endpoint.sync.Outcome(retry_message="routers are reloading")
    assert coalesced_passes(monkeypatch, reloading, ("rl", "credit")) == 2


def test_only_a_model_turning_ready_wakes_and_is_time_stamped() -> None:
    try:
        endpoint.record_blocked("tr", "credit", frozenset({"m"}))
        assert endpoint.ready_seen("tr", "m", True) == ["credit"]
        first = endpoint.READY_SEEN["tr", "m"]
        assert endpoint.ready_seen("tr", "m", True) == []  # still Ready: a later event
        assert endpoint.READY_SEEN["tr", "m"] == first
        assert endpoint.ready_seen("tr", "m", False) == []
        assert endpoint.ready_seen("tr", "m", True) == ["credit"]  # turned Ready again
    finally:
        endpoint.record_blocked("tr", "credit", frozenset())
        endpoint.ready_seen("tr", "m", False)


def deferred_statuses(
    monkeypatch: pytest.MonkeyPatch, verdicts: list[str | None], newer_during: bool = False
) -> list[int]:
    """A fast path (Kopf's handler) that leaves generation 2's status to `TRAFFIC_STATUS`;
    each status pass answers the next of `verdicts` (a retry message or None). With
    `newer_during`, generation 3's fast path asks for its status while the first runs. The
    generations the status passes were asked for, in order."""
    asked: list[int] = []

    def reconcile_change(*_: Any) -> Any:
        return endpoint.sync.Outcome(status_for=("uid", 2))

    def write_traffic_status(*args: Any) -> Any:
        ns, name, g, uid = args[2], args[3], args[5], args[6]
        assert uid == "uid"
        asked.append(g)
        if newer_during and len(asked) == 1:
            endpoint.settle_status((ns, name), ("uid", 3))  # what generation 3's fast path asks
        message = verdicts[len(asked) - 1] if len(asked) <= len(verdicts) else None
        return endpoint.sync.Outcome(retry_message=message, retry_delay=0.02)

    monkeypatch.setattr(endpoint.traffic, "reconcile_change", reconcile_change)
    monkeypatch.setattr(endpoint.traffic, "write_traffic_status", write_traffic_status)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)

    async def go() -> None:
        await endpoint.bind_passes()
        await asyncio.to_thread(endpoint.run_reconcile, "ts", "credit", {"traffic": {}})
        for _ in range(200):
            await asyncio.sleep(0.02)
            await endpoint.drain_passes()
            if not endpoint.status_pending(("ts", "credit")):
                break
        await endpoint.stop_passes()

    asyncio.run(go())
    assert not endpoint.status_pending(("ts", "credit"))
    return asked


def test_a_fast_path_status_is_written_after_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deferred_statuses(monkeypatch, [None]) == [2]


def test_a_fast_path_status_while_routers_reload_is_looked_at_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kopf retried the handler for this before the status left it; now the status step
    arms its own retry until the routers serve the new config."""
    assert deferred_statuses(monkeypatch, ["routers reloading", "routers reloading"]) == [2, 2, 2]


def test_a_change_during_a_status_pass_gets_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deferred_statuses(monkeypatch, [None], newer_during=True) == [2, 3]


def test_a_status_step_that_writes_nothing_loses_no_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stale status step (the endpoint moved on: nothing observed, nothing written) is not a
    pass that covers the Deployment events before it: their refresh still runs."""
    refreshed: list[str] = []
    monkeypatch.setattr(
        endpoint.traffic, "write_traffic_status", lambda *_: endpoint.sync.Outcome()
    )
    monkeypatch.setattr(
        endpoint.sync,
        "refresh_status",
        lambda *a: refreshed.append(a[3]) or endpoint.sync.Outcome(),
    )
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    key = ("stale", "credit")
    asked = time.monotonic()  # a Deployment event before the step
    endpoint.STATUS_PENDING[key] = ("uid", 2, 0)
    endpoint.traffic_status_key(key, asked)
    assert not endpoint.status_pending(key)
    endpoint.refresh_key(key, asked)
    assert refreshed == ["credit"]


def test_a_full_pass_leaves_no_status_step_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full pass wrote the status of the generation it read (at least the fast path's):
    the pending step has nothing left to write."""
    monkeypatch.setattr(endpoint.traffic, "reconcile_change", lambda *_: endpoint.sync.Outcome())
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    key = ("full", "credit")
    endpoint.STATUS_PENDING[key] = ("uid", 2, 1)
    endpoint.run_reconcile(*key)
    assert not endpoint.status_pending(key)


def test_a_deployment_event_of_the_version_the_last_status_read_costs_no_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart's listing sends an event per child Deployment, most after the resume pass
    read that very version: no refresh for those; a newer version or a deletion still acts."""
    from mlkube.controllers.observed_deployments import forget_observed, record_observed

    runs: list[str] = []

    def refresh_status(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        runs.append(name)
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint.sync, "refresh_status", refresh_status)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    forget_observed()
    record_observed("ns", [{"metadata": {"name": "credit-blue", "resourceVersion": "7"}}])
    ref = {"apiVersion": "mlkube.dev/v1alpha1", "kind": "OnlineEndpoint", "name": "credit",
           "controller": True}  # fmt: skip

    async def events() -> None:
        for version in ("7", "8"):
            meta = {"name": "credit-blue", "resourceVersion": version, "ownerReferences": [ref]}
            await endpoint.child_deployment_changed(
                type="MODIFIED", meta=meta, namespace="ns", logger=logging.getLogger("t")
            )
            await endpoint.drain_passes()
            runs.append(f"after {version}")

    asyncio.run(events())
    assert runs == ["after 7", "credit", "after 8"]
    forget_observed()


def test_a_model_ready_for_its_new_generation_wakes_the_endpoints_that_read_it_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spec change leaves the Model's Ready condition for the previous generation: a pass
    reading it then is blocked (model_facts wants the current generation). That event is not
    Ready, so the status of the new generation wakes the endpoint, not the 60 s backstop."""
    passes: list[str] = []
    blocked = [True]

    def reconcile(kube: Any, config: Any, namespace: str, name: str, now: str) -> Any:
        passes.append(name)
        waiting = frozenset({"m"}) if blocked[0] else frozenset()
        return endpoint.sync.Outcome(waiting_for=waiting, models_wake=bool(waiting))

    monkeypatch.setattr(endpoint.sync, "reconcile", reconcile)
    monkeypatch.setattr(endpoint, "kube", lambda: None)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    ready: Any = {"conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 1}
    current: Any = {**ready, "observedGeneration": 2}

    async def events() -> None:
        await endpoint.model_changed(name="m", namespace="gen", status=ready,
                                     meta={"generation": 1})  # fmt: skip
        await endpoint.model_changed(name="m", namespace="gen", status=ready,
                                     meta={"generation": 2})  # the spec change  # fmt: skip
        endpoint.run_reconcile("gen", "credit")  # reads generation 2 not yet Ready: blocked
        assert endpoint.blocked_on("gen", "m") == ["credit"]
        blocked[0] = False
        await endpoint.model_changed(name="m", namespace="gen", status=current,
                                     meta={"generation": 2})  # fmt: skip
        await endpoint.drain_passes()

    asyncio.run(events())
    assert passes == ["credit", "credit"]
    assert endpoint.blocked_on("gen", "m") == []
    endpoint.ready_seen("gen", "m", False)
    endpoint.forget_backstop(("gen", "credit"))


async def until_passes(passes: list[Any], count: int) -> None:
    """Drain the passes (and the backstops they arm) until `count` ran, at most 5 s; stop."""
    for _ in range(100):
        await asyncio.sleep(0.05)
        await endpoint.drain_passes()
        if len(passes) >= count:
            break
    await endpoint.stop_passes()


def test_a_resume_waits_as_a_key_and_a_blocked_one_looks_again_as_kopf_would_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kopf's resume cause returns at once (its worker and the listing event's body are
    released); the pass runs in the resume queue as a resume pass (it may read a batch's share,
    pass_kube), and a blocked one is looked at again after the outcome's own delay by the
    backstop, not by Kopf."""
    resumed: list[bool] = []
    passes: list[float] = []

    def pass_kube(namespace: str, name: str, resume: bool) -> Any:
        resumed.append(resume)
        return None

    def reconcile_change(kube: Any, config: Any, namespace: str, name: str, now: str,
                         old_spec: Any) -> Any:  # fmt: skip
        passes.append(time.monotonic())
        if len(passes) == 1:
            return endpoint.sync.Outcome(retry_message="reloading", retry_delay=0.3)
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint, "pass_kube", pass_kube)
    monkeypatch.setattr(endpoint.traffic, "reconcile_change", reconcile_change)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    monkeypatch.setattr(endpoint, "BACKSTOP_DELAY", 30.0)  # not the delay a resume waits

    async def go() -> None:
        await endpoint.bind_passes()
        await endpoint.endpoint_changed(
            namespace="rs", name="credit", retry=0, reason=kopf.Reason.RESUME
        )
        assert passes == [] and endpoint.RESUME_PASSES.pending() == 1  # returned at once
        await until_passes(passes, 2)

    asyncio.run(go())
    assert len(passes) == 2 and 0.25 <= passes[1] - passes[0] < 5
    assert resumed == [True, False]  # the backstop's pass is an ordinary reconcile
    assert ("rs", "credit") not in endpoint.BACKSTOPS


def test_a_failed_resume_pass_is_retried_by_the_backstop(monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[str] = []

    def reconcile_change(*args: Any) -> Any:
        passes.append("pass")
        if len(passes) == 1:
            raise endpoint.ApiError(503, "the API server is restarting")
        return endpoint.sync.Outcome()

    monkeypatch.setattr(endpoint, "pass_kube", lambda *args: None)
    monkeypatch.setattr(endpoint.traffic, "reconcile_change", reconcile_change)
    monkeypatch.setattr(endpoint, "operator_config", lambda: None)
    monkeypatch.setattr(endpoint, "BACKSTOP_DELAY", 0.05)

    async def go() -> None:
        await endpoint.bind_passes()
        await endpoint.endpoint_changed(namespace="rf", name="credit", retry=0, reason="resume")
        await until_passes(passes, 2)

    asyncio.run(go())
    assert passes == ["pass", "pass"]


def test_one_kopf_handler_serves_resume_create_and_update() -> None:
    """An endpoint created while the operator was away is resumed and created by one cause:
    one function under one id is called once for it (two would be called one after the other,
    with Kopf's progress written to the endpoint in between). Update handlers carry their
    field in their id ("/spec"), as before."""
    from mlkube.handlers import main as _registered  # noqa: F401  (registers every handler)

    registry = kopf.get_default_registry()
    handlers = [
        h for h in registry._changing.get_all_handlers()
        if h.selector is not None and h.selector.any_name == "onlineendpoints"
    ]  # fmt: skip
    assert {h.fn for h in handlers} == {endpoint.endpoint_changed}
    ids = {h.reason: h.id for h in handlers}
    assert ids == {
        None: endpoint.HANDLER_ID,  # resume
        kopf.Reason.CREATE: endpoint.HANDLER_ID,
        kopf.Reason.UPDATE: f"{endpoint.HANDLER_ID}/spec",
    }
