"""The operator's API requests as the API server's audit log records them (Kopf's own included):
counted by verb and resource per phase, the writes listed, and "settled" = no request (watches
aside: a watch is logged when it ends, whenever that is) for a quiet period."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from mlkube.devcluster.audit import AuditLog, Request, by_verb_and_resource, writes
from mlkube.devcluster.cluster import OPERATOR_USER


def epoch(at: str) -> float:
    """An audit stageTimestamp (RFC 3339, 'Z') as Unix seconds."""
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def active(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.verb != "watch"]


def last_request_at(requests: list[Request]) -> float | None:
    times = [epoch(r.at) for r in active(requests) if r.at]
    return max(times) if times else None


def summary(requests: list[Request]) -> dict[str, int]:
    """{"verb resource": count}, most frequent first."""
    counts: Counter[tuple[str, str]] = by_verb_and_resource(requests)
    return {f"{verb} {resource}": n for (verb, resource), n in counts.most_common()}


def describe_writes(requests: list[Request]) -> list[str]:
    """What was written, one line each ("patch onlineendpoints/status bench/e0001 200")."""
    return [f"{r.verb} {r.resource} {r.namespace}/{r.name} {r.code}" for r in writes(requests)]


def wait_settled(
    log: AuditLog, since: float, quiet: float, timeout: float
) -> tuple[float | None, list[Request]]:
    """After log.mark() at wall time `since`: wait until the operator made no request for
    `quiet` seconds; (seconds from `since` to its last request or None if it never went quiet
    within `timeout`, the requests in between)."""
    deadline = time.time() + timeout
    while True:
        requests = log.since_mark(OPERATOR_USER)
        last = last_request_at(requests)
        now = time.time()
        if last is not None and now - last >= quiet:
            return last - since, requests
        if now > deadline:
            return None, requests
        time.sleep(0.5)
