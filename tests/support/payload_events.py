"""Helpers of the process-tier payload logging tests: the server identity they configure, an
event's decoded data, and a server's counter samples."""

from __future__ import annotations

import json
from typing import Any

import requests

from mlkube import contract as c
from support.serving import ServerProcess

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
