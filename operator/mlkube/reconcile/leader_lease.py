"""Leader election on a coordination.k8s.io Lease: the decisions, without I/O.

The operator runs as several replicas; every one serves the admission webhooks, one (the holder
of the Lease) runs the handlers and loops. This is client-go's algorithm: a replica takes the
Lease when nobody holds it, when the holder released it, or when the holder's record has not
changed for `leaseDurationSeconds` *as observed on this replica's own monotonic clock* (so no
two machines' wall clocks are ever compared); the holder renews it every retry period and gives
up (the process exits) when it could not renew for the renew deadline, which is shorter than
the lease duration, so it stops before anybody else may start.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any, Final

LEASE_API_VERSION: Final = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0  # a holder silent this long (observed) may be replaced
    renew_deadline: float = 10.0  # the holder gives up when not renewed for this long
    retry: float = 2.0  # how often every replica looks at (and the holder renews) the Lease

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError(
                f"lease timing needs 0 < retry ({self.retry}) < renew deadline "
                f"({self.renew_deadline}) < duration ({self.duration})"
            )


@dataclass(frozen=True)
class Observation:
    """The Lease record as last seen changing, and when (this replica's monotonic clock)."""

    record: tuple[str, str, int, str]  # holder, renewTime, transitions, resourceVersion
    at: float


@dataclass(frozen=True)
class Step:
    """What to do now: `write` is None (stand by, or nothing to do) or the Lease body to
    create (no resourceVersion) or to patch (its resourceVersion is the precondition)."""

    write: dict[str, Any] | None
    leading: bool  # this replica holds the Lease once `write` succeeded
    observation: Observation | None


def micro_time(now: datetime.datetime) -> str:
    """The MicroTime format the API server expects for acquireTime/renewTime."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict[str, Any]) -> tuple[str, str, int, str]:
    """What must change for a holder to count as alive (any write changes the version)."""
    spec = lease.get("spec") or {}
    return (
        str(spec.get("holderIdentity") or ""),
        str(spec.get("renewTime") or ""),
        int(spec.get("leaseTransitions") or 0),
        str((lease.get("metadata") or {}).get("resourceVersion") or ""),
    )


def holder(lease: dict[str, Any] | None) -> str:
    return record_of(lease)[0] if lease else ""


def step(
    lease: dict[str, Any] | None,
    *,
    name: str,
    namespace: str,
    identity: str,
    timing: LeaseTiming,
    seen: Observation | None,
    mono_now: float,
    wall_now: datetime.datetime,
) -> Step:
    """One election round for `identity` given the live Lease (None: it does not exist)."""
    stamp = micro_time(wall_now)
    spec = {"holderIdentity": identity, "leaseDurationSeconds": math.ceil(timing.duration),
            "renewTime": stamp}  # fmt: skip
    if lease is None:
        body = {"apiVersion": LEASE_API_VERSION, "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {**spec, "acquireTime": stamp, "leaseTransitions": 0}}  # fmt: skip
        return Step(write=body, leading=True, observation=None)
    record = record_of(lease)
    current_holder, _, transitions, _ = record
    if seen is None or seen.record != record:
        seen = Observation(record=record, at=mono_now)
    version = {"resourceVersion": lease["metadata"]["resourceVersion"]}
    if current_holder == identity:  # renew
        return Step(write={"metadata": version, "spec": spec}, leading=True, observation=seen)
    held_for = float((lease.get("spec") or {}).get("leaseDurationSeconds") or timing.duration)
    if current_holder and mono_now - seen.at < held_for:
        return Step(write=None, leading=False, observation=seen)
    # Free (released) or expired: take it over; the resourceVersion makes one replica win.
    taken = {**spec, "acquireTime": stamp, "leaseTransitions": transitions + 1}
    return Step(write={"metadata": version, "spec": taken}, leading=True, observation=seen)


def release_patch(lease: dict[str, Any], identity: str, wall_now: datetime.datetime) -> Any:
    """The patch that hands the Lease over on a graceful stop (None: not ours to release).
    A standby takes a Lease without a holder at its next retry, without waiting it out."""
    if holder(lease) != identity:
        return None
    return {
        "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
        "spec": {"holderIdentity": None, "leaseDurationSeconds": 1,
                 "renewTime": micro_time(wall_now)},
    }  # fmt: skip
