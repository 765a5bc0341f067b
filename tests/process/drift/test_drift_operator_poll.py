"""The operator's poller against real sidecar processes: a profile directory and a feature
subset on the sidecar side, concurrent summary fetches, a dead replica, and the exact merge."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mlkube.controllers.drift_poll import fetch_summaries
from mlkube.devcluster.procs import free_port
from mlkube.reconcile.drift_merge import merge_summaries
from mlkube.reconcile.drift_profile import select_features
from mlkube_serving.drift import synthetic
from mlkube_serving.drift.profile import load_profile

Runner = Callable[..., AbstractContextManager[Any]]
FEATURES = ["x0", "x1", "x2", "x3"]


def post(url: str, columns: dict[str, Any]) -> None:
    for payload in synthetic.to_payloads(columns, 250):
        body = json.dumps(payload, default=float).encode()
        request = urllib.request.Request(url + "/v1/samples", body, method="POST")
        request.add_header("content-type", "application/json")
        urllib.request.urlopen(request, timeout=5).close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_poll_two_replicas_and_a_dead_one(
    profile_path: Path, sidecar_runner: Runner, tmp_path: Path
) -> None:
    folder = tmp_path / "baseline"  # what the storage initializer leaves in the pod
    folder.mkdir()
    shutil.copy(profile_path, folder / "credit.profile.json")
    flags = ("--features", ",".join(FEATURES), "--eval-interval", "0.2")
    profile = select_features(load_profile(profile_path), FEATURES)
    window = int(profile["windowSize"])
    with sidecar_runner(folder, *flags) as a, sidecar_runner(folder, *flags) as b:
        assert port_of(a.url) != port_of(b.url)
        post(a.url, synthetic.make_columns(window // 2, seed=21, shift={"x0": 1.0, "x1": 2.0}))
        post(b.url, synthetic.make_columns(window // 2, seed=22, shift={"x0": 1.0, "x1": 2.0}))
        dead = free_port()

        def merged() -> dict[str, Any]:
            # Each sidecar listens on its own port here, so poll host:port pairs one by one.
            got, errors = [], []
            for port in (port_of(a.url), port_of(b.url), dead):
                summaries, failures = fetch_summaries(["127.0.0.1"], port, timeout=1.0)
                got += summaries
                errors += failures
            assert len(errors) == 1 and str(dead) in errors[0]
            return merge_summaries(got, profile)

        deadline = time.monotonic() + 15
        result = merged()
        while result["windowSamples"] < window and time.monotonic() < deadline:
            time.sleep(0.1)
            result = merged()
    assert result["skippedSummaries"] == 0 and result["replicas"] == 2
    assert result["windowSamples"] == window and result["ready"] is True
    assert [f["name"] for f in result["features"]] == FEATURES
    assert result["datasetDrift"]["detected"] is True
    assert {f["name"] for f in result["features"] if f["drifted"]} >= {"x0", "x1"}


def test_concurrent_fetch_of_many_hosts_is_bounded_by_the_timeout() -> None:
    # Unroutable-free: 127.0.0.0/8 addresses with nothing listening refuse at once.
    hosts = [f"127.0.0.{i}" for i in range(2, 12)]
    started = time.monotonic()
    summaries, errors = fetch_summaries(hosts, free_port(), timeout=0.5)
    assert summaries == [] and len(errors) == len(hosts)
    assert time.monotonic() - started < 2.0
