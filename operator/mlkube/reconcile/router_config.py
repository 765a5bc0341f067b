"""Is the traffic split applied? Only when every router replica serves the config we wrote.

Writing the ConfigMap is not applying it: the kubelet swaps the mounted file up to a minute
later and each router process reloads on its own. The router answers the sha256 of the file
it loaded on `GET /-/config`; the builders hash the ConfigMap text the same way
(`builders.endpoint_router.router_config_hash`). This decides from both, without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

TRAFFIC_CONDITION: Final = "TrafficApplied"
RELOADING: Final = "RouterReloading"  # the one verdict nothing but a retry re-checks
REJECTED: Final = "RouterRejectedConfig"
NO_ROUTER_READY: Final = "NoRouterReady"  # before any: the split is not applied yet


def traffic_applied(expected_hash: str, observed_hashes: Iterable[str | None]) -> bool:
    """True when at least one router replica was observed and all of them serve `expected_hash`.

    An observation is None when a replica could not be asked or has no config loaded; that
    replica may still route by an older split, so the new one is not applied yet.
    """
    observed = list(observed_hashes)
    return bool(observed) and all(h == expected_hash for h in observed)


@dataclass(frozen=True)
class TrafficVerdict:
    """Whether the written split is served: True (confirmed), False (not yet) or None (cannot
    be checked from where the operator runs), with the condition's reason and message."""

    applied: bool | None
    reason: str
    message: str


@dataclass(frozen=True)
class RouterState:
    """One router replica's answer: the hash it serves (None: unknown or nothing loaded) and
    the error of a newer config it refused, if any."""

    hash: str | None
    error: str | None = None


def traffic_verdict(
    expected_hash: str,
    ready_routers: int,
    observed_hashes: Iterable[str | None],
    refusals: Iterable[str] = (),
) -> TrafficVerdict:
    """The TrafficApplied verdict from the Ready router replicas and the ones asked.

    `observed_hashes` holds one answer per replica the operator may contact (its pod
    networks); Ready replicas it may not contact (e.g. kwok's addresses, which exist nowhere)
    make the split written but unverified, never "applied".
    """
    observed = list(observed_hashes)
    refused = list(refusals)
    if ready_routers == 0:
        return TrafficVerdict(False, NO_ROUTER_READY, "no router replica is Ready yet")
    if not observed:
        return TrafficVerdict(
            None,
            "NotVerified",
            f"{ready_routers} Ready router replicas are outside the operator's pod networks: "
            "the split is written, not confirmed",
        )
    if traffic_applied(expected_hash, observed):
        if len(observed) < ready_routers:
            return TrafficVerdict(
                None,
                "NotVerified",
                f"{len(observed)} of {ready_routers} Ready router replicas confirmed the split; "
                "the others are outside the operator's pod networks",
            )
        return TrafficVerdict(True, "Loaded", f"{len(observed)} router replicas serve it")
    waiting = sum(1 for h in observed if h != expected_hash)
    if refused:
        # A retry cannot help: the router keeps its last good config until the spec changes
        # (e.g. an operator newer than the router image writes keys it does not know).
        return TrafficVerdict(
            False,
            REJECTED,
            f"{len(refused)} router replicas refused the new config and keep serving the "
            f"previous split: {refused[0]}",
        )
    return TrafficVerdict(
        False,
        RELOADING,
        f"{waiting} of {len(observed)} router replicas still serve an older config "
        "(the kubelet updates the mounted ConfigMap within about a minute)",
    )


def verdict_from_states(
    expected_hash: str, ready_routers: int, states: Iterable[RouterState]
) -> TrafficVerdict:
    """`traffic_verdict` from the replicas' answers (refusals count only where the replica
    does not serve the expected config already)."""
    answers = list(states)
    refusals = [s.error for s in answers if s.error and s.hash != expected_hash]
    return traffic_verdict(expected_hash, ready_routers, [s.hash for s in answers], refusals)
