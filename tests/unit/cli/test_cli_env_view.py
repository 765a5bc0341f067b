"""`mlkube env list/show` rendering, to the line: sources, failures with their reason, the
serving contract verdict, reused builds and packaged models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlkube.cli import env_view

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def obj(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": "lgbm-1", "namespace": "team", "creationTimestamp": "2026-11-30T10:00:00Z"}
    return {
        "metadata": meta,
        "spec": {"environmentName": "lgbm", "version": "1", **spec},
        "status": status,
    }


def test_a_failed_reused_build_says_why_and_where_the_logs_are() -> None:
    failed = obj(
        {
            "build": {
                "base": "mlkube-sklearn:0.1.0",
                "pip": ["lightgbm==4.5.0"],
                "files": [{"path": "/opt/a.py", "content": "x", "mode": 0o755}],
            }
        },
        {
            "phase": "Failed",
            "build": {
                "job": "mlkube-system/envbuild-1",
                "reused": True,
                "logs": "kubectl logs -n mlkube-system job/envbuild-1",
            },
            "serving": {"compatible": False, "message": "no module named mlkube_serving"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "BuildFailed",
                    "message": "no matching distribution for lightgbm==4.5.0",
                }
            ],
        },
    )
    lines = env_view.render_details(failed, NOW).splitlines()
    assert lines[2] == (
        "Phase:        Failed (BuildFailed: no matching distribution for lightgbm==4.5.0)"
    )
    assert "File:         /opt/a.py (755, 1 bytes)" in lines
    assert "Serving:      NOT compatible: no module named mlkube_serving" in lines
    assert "Build:        mlkube-system/envbuild-1 (reused an identical build)" in lines
    assert "Logs:         kubectl logs -n mlkube-system job/envbuild-1" in lines
    assert "Packages:     0 (known once built)" in lines


def test_image_environments_and_packages_in_show_and_list() -> None:
    ready = obj(
        {"image": "registry.example/scorer:2.1", "model": "churn-v3"},
        {
            "phase": "Ready",
            "image": "r/s@sha256:" + "a" * 64,
            "imageDigest": "sha256:" + "a" * 64,
            "resolvedFrom": "registry.example/scorer:2.1",
            "sizeBytes": 2048,
            "python": "3.11.2",
            "packages": ["numpy==2.1.3"],
            "serving": {"compatible": True, "version": "0.1.0"},
            "packagedModel": {"name": "churn-v3", "artifactDigest": "sha256:1"},
        },
    )
    text = env_view.render_details(ready, NOW)
    assert "Source:       image registry.example/scorer:2.1" in text
    assert "Resolved from: registry.example/scorer:2.1" in text
    assert "Serving:      compatible (mlkube_serving 0.1.0)" in text
    assert "Packaged model: churn-v3 sha256:1" in text
    assert "Packages:     1\n  numpy==2.1.3" in text
    ready["status"]["usedBy"] = [
        {"kind": "Pipeline", "name": "retrain", "step": "train"},
        {"kind": "BatchEndpoint", "name": "nightly", "deployment": "a"},
    ]
    assert "Used by:      Pipeline/retrain (step train), BatchEndpoint/nightly (a)" in (
        env_view.render_details(ready, NOW)
    )
    table = env_view.render_table([ready], NOW).splitlines()
    assert table[0].split() == ["NAME", "VERSION", "PHASE", "SOURCE", "DIGEST", "SIZE", "AGE"]
    assert table[1].split()[:4] == ["lgbm", "1", "Ready", "image"]
    assert "sha256:aaaaaaaaaaaa" in table[1] and "2.0 KiB" in table[1] and table[1].endswith("2h")
    assert env_view.render_table([], NOW) == "No environments found."


def test_sources_are_short() -> None:
    build = {"base": "mlkube-mlflow:0.1.0", "conda": "dependencies: []", "apt": ["a", "b"]}
    assert env_view.source({"build": build}) == "mlkube-mlflow:0.1.0 + conda, 2 apt"
    long = env_view.source({"image": "registry.example/" + "x" * 80 + ":1"})
    assert len(long) == env_view.MAX_SOURCE and long.endswith("…")
