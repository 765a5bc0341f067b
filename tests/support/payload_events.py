"""Helpers of the process-tier payload logging tests: the server identity they configure, an
event's decoded data, a server's counter samples and its counted drops."""

from __future__ import annotations

import json
from typing import Any

import requests

from mlkube import contract as c
from support.serving import ServerProcess
from support.waiting import wait_for

IDENTITY = {
    c.ENV_PAYLOAD_LOG_ENDPOINT: "credit",
    c.ENV_PAYLOAD_LOG_DEPLOYMENT: "blue",
    c.ENV_PAYLOAD_LOG_NAMESPACE: "prod",
}


def data_of(event: dict[str, Any]) -> Any:
    data = event["data"]
    return json.loads(data) if isinstance(data, str | bytes) else data


def counter(server: ServerProcess, name: str) -> dict[str, float]:
    """Samples of one counter by their label text."""
    found: dict[str, float] = {}
    for line in requests.get(server.metrics_url, timeout=5).text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def counted_drops(server: ServerProcess, count: int, timeout: float) -> dict[str, float]:
    """The payload log's drop counter once it has counted at least `count` samples."""
    found: dict[str, float] = wait_for(
        lambda: (
            (d := counter(server, "mlkube_payload_log_dropped_total"))
            and sum(d.values()) >= count
            and d
        ),
        timeout,
        what=f"{count} counted drops",
    )
    return found
