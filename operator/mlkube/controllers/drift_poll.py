"""Reading drift from the cluster: baseline profiles, Ready sidecar pods and their summaries.

The operator fetches each Model's baseline profile once (verified against its digest) and
keeps it in memory by digest; the sidecars never send it, only counts over its bins. Summaries
are fetched from every Ready replica concurrently with a short timeout: a slow or dead pod
costs one failed replica in the status, never the whole evaluation.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from mlkube.builders.endpoint_drift import DRIFT_CONTAINER
from mlkube.builders.operator_config import OperatorConfig, artifact_scheme_problem, fetch_policy
from mlkube.contract import DRIFT_PROFILE_FORMAT_VERSION, DRIFT_SUMMARY_PATH
from mlkube.controllers.errors import BaselineError, DriftPollError
from mlkube.storage import StorageError, download_and_verify
from mlkube.storage.bounded import read_file_bounded, read_stream_bounded

MAX_CACHED_PROFILES: Final = 64
MAX_SUMMARY_BYTES: Final = 32 * 1024 * 1024
MAX_PROFILE_BYTES: Final = 16 * 1024 * 1024
MAX_CACHED_PROFILE_BYTES: Final = 32 * 1024 * 1024  # JSON size of all cached profiles
MAX_POLL_THREADS: Final = 16


def read_profile_dir(directory: str) -> dict[str, Any]:
    """The one JSON profile a downloaded baseline artifact holds."""
    found = [
        os.path.join(root, name)
        for root, _, names in os.walk(directory)
        for name in names
        if name.endswith(".json")
    ]
    if len(found) != 1:
        raise BaselineError(f"the baseline must hold exactly one .json profile, found {len(found)}")
    try:
        profile = json.loads(read_file_bounded(found[0], MAX_PROFILE_BYTES, "baseline profile"))
    except (OSError, ValueError) as err:
        raise BaselineError(f"cannot read {os.path.basename(found[0])}: {err}") from err
    if not isinstance(profile, dict) or profile.get("formatVersion") != (
        DRIFT_PROFILE_FORMAT_VERSION
    ):
        version = profile.get("formatVersion") if isinstance(profile, dict) else None
        raise BaselineError(f"unsupported drift profile formatVersion {version!r}")
    if not isinstance(profile.get("features"), list) or "windowSize" not in profile:
        raise BaselineError("malformed drift profile: no features or windowSize")
    return profile


def download_profile(uri: str, digest: str | None, config: OperatorConfig) -> dict[str, Any]:
    """Fetch the baseline into a scratch directory, verify it and parse it."""
    problem = artifact_scheme_problem(uri, config)
    if problem is not None:
        raise BaselineError(problem)
    with tempfile.TemporaryDirectory(prefix="mlkube-baseline-") as scratch:
        try:
            policy = fetch_policy(config, require_digest=True)
            download_and_verify(uri, scratch, digest, policy)
        except StorageError as err:
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            raise BaselineError(f"{err}{cause}") from err
        return read_profile_dir(scratch)


class BaselineCache:
    """Profiles by digest (by URI when the Model gives none), least recently used evicted
    past `size` profiles or `max_bytes` of their JSON (the newest one always stays)."""

    def __init__(
        self,
        loader: Callable[[str, str | None], dict[str, Any]],
        size: int = MAX_CACHED_PROFILES,
        max_bytes: int = MAX_CACHED_PROFILE_BYTES,
    ) -> None:
        self._loader = loader
        self._size = size
        self._max_bytes = max_bytes
        self._weights: dict[str, int] = {}
        self._profiles: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, uri: str, digest: str | None) -> dict[str, Any]:
        key = digest or f"uri:{uri}"
        with self._lock:
            if key in self._profiles:
                self._profiles.move_to_end(key)
                return self._profiles[key]
        profile = self._loader(uri, digest)  # outside the lock: a slow bucket blocks no one else
        weight = len(json.dumps(profile))
        with self._lock:
            self.loads += 1
            self._profiles[key], self._weights[key] = profile, weight
            while len(self._profiles) > self._size or (
                len(self._profiles) > 1 and sum(self._weights.values()) > self._max_bytes
            ):
                del self._weights[self._profiles.popitem(last=False)[0]]
        return profile


def _is_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def sidecar_addresses(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """IPs of Ready, not terminating pods that run the drift sidecar (sorted, unique)."""
    addresses = set()
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        ip = (pod.get("status") or {}).get("podIP")
        has_sidecar = any(c.get("name") == DRIFT_CONTAINER for c in spec.get("containers") or [])
        if ip and has_sidecar and not meta.get("deletionTimestamp") and _is_ready(pod):
            addresses.add(str(ip))
    return sorted(addresses)


def fetch_summary(host: str, port: int, timeout: float) -> dict[str, Any]:
    """GET one sidecar's summary; any transport or format problem is a DriftPollError."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", DRIFT_SUMMARY_PATH, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = read_stream_bounded(response, MAX_SUMMARY_BYTES, "the drift summary")
    except (OSError, http.client.HTTPException) as err:
        raise DriftPollError(f"{host}:{port}: {err}") from err
    finally:
        connection.close()
    if response.status != 200 or len(body) > MAX_SUMMARY_BYTES:
        raise DriftPollError(f"{host}:{port}: HTTP {response.status}")
    try:
        summary = json.loads(body)
    except ValueError as err:
        raise DriftPollError(f"{host}:{port}: not JSON: {err}") from err
    if not isinstance(summary, dict):
        raise DriftPollError(f"{host}:{port}: summary is not an object")
    return summary


def fetch_summaries(
    hosts: list[str], port: int, timeout: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """(summaries, errors) of every host, fetched concurrently."""
    if not hosts:
        return [], []

    def attempt(host: str) -> dict[str, Any] | str:
        try:
            return fetch_summary(host, port, timeout)
        except DriftPollError as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=min(MAX_POLL_THREADS, len(hosts))) as pool:
        results = list(pool.map(attempt, hosts))
    summaries = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if isinstance(r, str)]
    return summaries, errors
