"""What the Environment controller reads from the build pod, the image and the namespace
(reconcile/environment_facts.py), and the status it writes (builders/environment_status.py)."""

from __future__ import annotations

import json

from mlkube.builders.environment_status import environment_status
from mlkube.reconcile.environment_facts import (
    is_latest,
    log_tail,
    parse_report,
    used_by,
)

DIGEST = "sha256:" + "a" * 64


def test_the_report_is_the_push_containers_json_and_nothing_else() -> None:
    report = parse_report(
        json.dumps(
            {
                "digest": DIGEST,
                "image": "r/e@" + DIGEST,
                "sizeBytes": 7,
                "python": "3.11.2",
                "serving": {"compatible": False},
            }
        )
    )
    assert report is not None and report.size_bytes == 7 and report.serving == {"compatible": False}
    assert parse_report("Traceback (most recent call last):\n  boom") is None
    assert parse_report(json.dumps({"digest": "md5:x"})) is None
    assert parse_report(None) is None


def test_the_log_tail_keeps_the_end() -> None:
    tail = log_tail("\n".join(str(i) for i in range(50)), lines=3)
    assert tail == "47\n48\n49"


def test_users_are_the_live_references_to_name_version_or_latest() -> None:
    endpoint = {
        "metadata": {"name": "shop"},
        "spec": {
            "deployments": [
                {"name": "blue", "environment": "lgbm:1"},
                {"name": "green", "environment": "lgbm:2"},
            ]
        },
    }
    batch = {
        "metadata": {"name": "nightly"},
        "spec": {"deployments": [{"name": "main", "environment": "lgbm@latest"}]},
    }
    pipeline = {
        "metadata": {"name": "train"},
        "spec": {
            "steps": [{"name": "fit", "environment": "lgbm:1"}, {"name": "eval", "image": "x"}]
        },
    }
    users = used_by("lgbm", "1", latest=False, endpoints=[endpoint], batch_endpoints=[batch],
                    pipelines=[pipeline])  # fmt: skip
    assert users == [{"kind": "OnlineEndpoint", "name": "shop", "deployment": "blue"},
                     {"kind": "Pipeline", "name": "train", "step": "fit"}]  # fmt: skip
    latest = used_by("lgbm", "2", latest=True, endpoints=[endpoint], batch_endpoints=[batch])
    assert {u["name"] for u in latest} == {"shop", "nightly"}


def test_latest_compares_numeric_parts_as_numbers() -> None:
    assert is_latest("10", ["2", "9"]) and not is_latest("9", ["10"])
    assert is_latest("1.10.0", ["1.9.3", "1.2"])


def test_a_new_generation_forgets_the_previous_outcome() -> None:
    first = environment_status(None, generation=1, phase="Ready", reason="Built", message="ok",
                               now="2026-11-30T10:00:00Z", facts={"imageDigest": DIGEST},
                               built=True)  # fmt: skip
    again = environment_status(first, generation=2, phase="Building", reason="Building",
                               message="b", now="2026-11-30T11:00:00Z", building=True)  # fmt: skip
    assert "imageDigest" not in again
    types = {c["type"]: c["status"] for c in again["conditions"]}
    assert types["Ready"] == "False" and types["Built"] == "Unknown"
    assert types["Reconciling"] == "True" and types["Stalled"] == "False"
