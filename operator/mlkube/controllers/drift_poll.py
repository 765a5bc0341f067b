"""Reading drift from the cluster: baseline profiles, Ready sidecar pods and their summaries.

The operator fetches each Model's baseline profile once (verified against its digest) and
keeps it in memory by digest; the sidecars never send it, only counts over its bins. Summaries
are fetched from every Ready replica concurrently with a short timeout (`pod_http`, which
keeps to the operator's pod networks): a slow or dead pod costs one failed replica in the
status, never the whole evaluation.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from mlkube.builders.endpoint_drift import DRIFT_CONTAINER
from mlkube.builders.operator_config import OperatorConfig, artifact_scheme_problem, fetch_policy
from mlkube.contract import DRIFT_PROFILE_FORMAT_VERSION, DRIFT_SUMMARY_PATH
from mlkube.controllers.errors import BaselineError, DriftPollError
from mlkube.controllers.pod_http import PodReply, get_from_pods, ready_pod_ips
from mlkube.storage import StorageError, download_and_verify
from mlkube.storage.bounded import read_file_bounded

MAX_CACHED_PROFILES: Final = 64
MAX_SUMMARY_BYTES: Final = 32 * 1024 * 1024
MAX_PROFILE_BYTES: Final = 16 * 1024 * 1024
MAX_CACHED_PROFILE_BYTES: Final = 32 * 1024 * 1024  # JSON size of all cached profiles


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


def sidecar_addresses(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """IPs of Ready, not terminating pods that run the drift sidecar (sorted, unique)."""
    return ready_pod_ips(pods, DRIFT_CONTAINER)


def parse_summary(reply: PodReply, port: int) -> dict[str, Any]:
    """One sidecar's summary from its reply; any transport or format problem is a
    DriftPollError."""
    where = f"{reply.host}:{port}"
    if reply.error is not None:
        raise DriftPollError(reply.error)
    if reply.status != 200:
        raise DriftPollError(f"{where}: HTTP {reply.status}")
    try:
        summary = json.loads(reply.body)
    except ValueError as err:
        raise DriftPollError(f"{where}: not JSON: {err}") from err
    if not isinstance(summary, dict):
        raise DriftPollError(f"{where}: summary is not an object")
    return summary


def fetch_summaries(
    hosts: list[str], port: int, timeout: float, config: OperatorConfig | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(summaries, errors) of every host, fetched concurrently through `pod_http` (hosts
    outside the pod networks of `config` are not contacted: they count as errors)."""
    replies = get_from_pods(
        hosts, port, DRIFT_SUMMARY_PATH, config=config, timeout=timeout,
        max_bytes=MAX_SUMMARY_BYTES, what="the drift summary",
    )  # fmt: skip
    summaries: list[dict[str, Any]] = []
    errors: list[str] = []
    for reply in replies:
        try:
            summaries.append(parse_summary(reply, port))
        except DriftPollError as err:
            errors.append(str(err))
    return summaries, errors
