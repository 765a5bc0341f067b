"""Leader election on a Lease: who takes it, when a silent holder may be replaced (on the
observer's own clock), renewal, losing a write race, release on a graceful stop, and how the
handlers are split between the serving (every replica) and the leading Kopf operator."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import mlkube.handlers.main  # noqa: F401  (registers every handler with Kopf's default registry)
from mlkube.controllers.leader import Elector
from mlkube.handlers import webhooks
from mlkube.handlers.leadership import ElectionConfig, split_registry
from mlkube.reconcile.leader_lease import LEASE_API_VERSION, LeaseTiming, micro_time
from support.fake_kube import DEFAULT_KINDS, FakeKube

KINDS = {*DEFAULT_KINDS, (LEASE_API_VERSION, "Lease")}
TIMING = LeaseTiming(duration=15, renew_deadline=10, retry=2)
WALL = datetime.datetime(2026, 11, 30, 7, 0, tzinfo=datetime.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(kube: FakeKube, identity: str, clock: Clock) -> Elector:
    def wall() -> datetime.datetime:
        return WALL + datetime.timedelta(seconds=clock.now - 100)

    return Elector(kube, name="leader", namespace="ops", identity=identity, timing=TIMING,
                   clock=clock, wall=wall)  # fmt: skip


def holder(kube: FakeKube) -> str:
    lease = kube.get(LEASE_API_VERSION, "Lease", "leader", "ops") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_the_first_replica_creates_the_lease_and_the_second_stands_by() -> None:
    kube, clock = FakeKube(kinds=KINDS), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    assert a.attempt() is True
    assert b.attempt() is False
    lease = kube.get(LEASE_API_VERSION, "Lease", "leader", "ops")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["spec"]["renewTime"] == "2026-11-30T07:00:00.000000Z"


def test_a_silent_holder_is_replaced_only_after_the_duration_on_the_observers_clock() -> None:
    kube, clock = FakeKube(kinds=KINDS), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    a.attempt()
    assert b.attempt() is False  # b first sees the record now (t=100)
    clock.now += 14.9
    assert b.attempt() is False
    clock.now += 0.2  # 15.1 s without a change of the record
    assert b.attempt() is True
    assert holder(kube) == "b"
    lease = kube.get(LEASE_API_VERSION, "Lease", "leader", "ops") or {}
    assert lease["spec"]["leaseTransitions"] == 1


def test_renewals_keep_the_standby_waiting() -> None:
    kube, clock = FakeKube(kinds=KINDS), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    a.attempt()
    for _ in range(20):  # 40 s of renewals every 2 s: the record changes each time
        clock.now += 2
        assert a.attempt() is True
        assert b.attempt() is False
    assert holder(kube) == "a"


def test_a_standby_that_loses_the_write_race_is_not_leader() -> None:
    kube, clock = FakeKube(kinds=KINDS), Clock()
    a, b, c = elector(kube, "a", clock), elector(kube, "b", clock), elector(kube, "c", clock)
    a.attempt()
    b.attempt()
    c.attempt()
    clock.now += 16  # a went silent: b and c may both take over

    def c_first(verb: str, key: Any) -> None:
        if verb == "patch" and key[1] == "Lease":
            kube.before.clear()
            assert c.attempt() is True  # c writes between b's read and b's write

    kube.before.append(c_first)
    assert b.attempt() is False  # b's resourceVersion precondition failed (409)
    assert holder(kube) == "c"
    assert b.leading is False


def test_release_hands_over_at_the_next_retry() -> None:
    kube, clock = FakeKube(kinds=KINDS), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    a.attempt()
    assert b.attempt() is False
    assert b.release() is False  # not b's to release
    assert a.release() is True
    assert holder(kube) == ""
    clock.now += TIMING.retry
    assert b.attempt() is True  # no waiting out the duration
    assert holder(kube) == "b"
    assert a.attempt() is False  # a's old term is over


def test_the_holder_gives_up_past_the_renew_deadline() -> None:
    kube, clock = FakeKube(kinds=KINDS), Clock()
    a = elector(kube, "a", clock)
    a.attempt()
    clock.now += 9.9
    assert a.expired() is False
    clock.now += 0.2
    assert a.expired() is True  # 10.1 s > renew deadline 10 s < duration 15 s


@pytest.mark.parametrize(("retry", "renew", "duration"), [(2, 10, 10), (0, 1, 2), (3, 2, 15)])
def test_inconsistent_timing_is_refused(retry: float, renew: float, duration: float) -> None:
    with pytest.raises(ValueError, match="lease timing"):
        LeaseTiming(duration=duration, renew_deadline=renew, retry=retry)


def test_config_from_env() -> None:
    env = {"MLKUBE_NAMESPACE": "ops", "HOSTNAME": "mlkube-operator-7c9-x2",
           "MLKUBE_LEASE_DURATION_SECONDS": "6", "MLKUBE_LEASE_RENEW_SECONDS": "4",
           "MLKUBE_LEASE_RETRY_SECONDS": "0.5"}  # fmt: skip
    config = ElectionConfig.from_env(env)
    assert (config.name, config.namespace) == ("mlkube-operator-leader", "ops")
    assert config.identity.startswith("mlkube-operator-7c9-x2_")
    assert config.identity != ElectionConfig.from_env(env).identity  # one term per process
    assert config.timing == LeaseTiming(duration=6, renew_deadline=4, retry=0.5)


def test_micro_time_is_utc_with_microseconds() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=2))
    assert micro_time(datetime.datetime(2026, 1, 2, 5, 4, 3, 21, tzinfo=tz)) == (
        "2026-01-02T03:04:03.000021Z"
    )


def test_webhooks_serve_everywhere_and_resource_handlers_only_in_the_leader() -> None:
    import kopf

    serving, leading = split_registry(kopf.get_default_registry())

    def fns(handlers: Any) -> set[Any]:
        return {h.fn for h in handlers}

    assert serving._webhooks.get_all_handlers()
    assert not leading._webhooks.get_all_handlers()
    assert not serving._changing.get_all_handlers()
    assert not serving._watching.get_all_handlers()
    assert leading._changing.get_all_handlers()
    assert leading._watching.get_all_handlers()
    # The leader neither starts a second admission server nor answers probes.
    assert webhooks.configure_webhooks in fns(serving._activities.get_all_handlers())
    assert webhooks.configure_webhooks not in fns(leading._activities.get_all_handlers())
    assert not [h for h in leading._activities.get_all_handlers() if h.activity == "probe"]
    # Both log in and apply the operator settings (persistence, timeouts).
    from mlkube.handlers import settings

    for registry in (serving, leading):
        assert {settings.configure, settings.login} <= fns(registry._activities.get_all_handlers())
