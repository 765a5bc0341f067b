"""Table and detail rendering of Model objects (pure, byte-exact)."""

import json
from datetime import UTC, datetime

import yaml

from mlkube.cli.model_view import (
    dump,
    format_age,
    render_details,
    render_table,
    short_digest,
    without_managed_fields,
)

NOW = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def model(name, model_name, version, *, created="2026-01-10T11:00:00Z", status=None, **spec):
    return {
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                     "labels": {"mlkube.dev/model": model_name, "mlkube.dev/version": version}},
        "spec": {"modelName": model_name, "version": version, "framework": "sklearn",
                 "artifact": {"uri": "s3://b/k", "digest": D1}, **spec},
        **({"status": status} if status is not None else {}),
    }  # fmt: skip


def test_table_sorts_by_model_then_numeric_version():
    items = [
        model("credit-v10", "credit", "10", created="2026-01-07T12:00:00Z"),
        model("credit-v9", "credit", "9", created="2026-01-10T11:59:15Z",
              status={"phase": "Ready", "artifact": {"digest": D2}}),
        model("churn-v1", "churn", "1", created="2026-01-10T09:30:00Z"),
    ]  # fmt: skip
    assert render_table(items, NOW) == "\n".join(
        [
            "NAME         MODEL    VERSION   FRAMEWORK   PHASE   DIGEST                AGE",
            "churn-v1     churn    1         sklearn     -       sha256:111111111111   2h",
            "credit-v9    credit   9         sklearn     Ready   sha256:222222222222   45s",
            "credit-v10   credit   10        sklearn     -       sha256:111111111111   3d",
        ]
    )


def test_empty_table():
    assert render_table([], NOW) == "No models found."


def test_format_age():
    assert format_age("2026-01-10T11:59:59Z", NOW) == "1s"
    assert format_age("2026-01-10T11:58:30Z", NOW) == "1m"
    assert format_age("2026-01-10T10:30:00Z", NOW) == "90m"
    assert format_age("2026-01-10T09:00:00Z", NOW) == "3h"
    assert format_age("2026-01-08T12:00:00Z", NOW) == "2d"
    assert format_age("2023-01-10T12:00:00Z", NOW) == "3y"
    assert format_age("2026-01-10T12:00:05Z", NOW) == "0s"  # clock skew
    assert format_age(None, NOW) == "<unknown>"


def test_short_digest():
    assert short_digest(D1) == "sha256:111111111111"
    assert short_digest(None) == "-"


def test_details_show_lineage_and_verified_facts():
    obj = model(
        "credit-v3", "credit", "3",
        description="gbm",
        entrypoint={"path": "score.py"},
        lineage={
            "datasets": [{"name": "train", "uri": "s3://d/train.parquet"}],
            "code": {"repository": "https://git.example/credit.git", "commit": "abc1234"},
            "parameters": {"max_depth": "6"},
            "metrics": {"auc": 0.91},
        },
        status={
            "phase": "Ready",
            "artifact": {"digest": D1, "size": 3 * 1024 * 1024, "fileCount": 2},
            "deployedBy": [{"kind": "OnlineEndpoint", "name": "credit"}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Verified",
                            "message": "digest matches"}],
        },
    )  # fmt: skip
    obj["metadata"]["labels"]["team"] = "risk"
    text = render_details(obj, NOW)
    for line in [
        "Name:         credit-v3",
        "Model:        credit",
        "Version:      3",
        "Phase:        Ready",
        "Archived:     no",
        "Tags:         team=risk",
        "Created:      2026-01-10T11:00:00Z (60m ago)",
        "Description:  gbm",
        "Entrypoint:   score.py (init=init, run=run)",
        f"  Digest:     {D1} (declared)",
        f"  Verified:   {D1} (matches)",
        "  Size:       3.0 MiB",
        "  Files:      2",
        "Lineage:",
        "  datasets:",
        "    - name=train, uri=s3://d/train.parquet",
        "  code:",
        "    repository: https://git.example/credit.git",
        "    commit: abc1234",
        "    max_depth: 6",
        "    auc: 0.91",
        "Deployed by:  OnlineEndpoint/credit",
        "  Ready=True Verified: digest matches",
    ]:
        assert line in text.splitlines(), line


def test_details_flag_mismatch_and_unverified():
    mismatch = model("m-v1", "m", "1", status={"artifact": {"digest": D2}})
    assert f"  Verified:   {D2} (MISMATCH with declared)" in render_details(mismatch, NOW)
    fresh = model("m-v1", "m", "1")
    fresh["metadata"]["labels"]["mlkube.dev/archived"] = "true"
    text = render_details(fresh, NOW)
    assert "  Verified:   not yet" in text and "Archived:     yes" in text
    assert "Tags:         -" in text


def test_dump_formats():
    data = {"b": 1, "a": [1, 2]}
    assert json.loads(dump(data, "json")) == data
    assert yaml.safe_load(dump(data, "yaml")) == data
    assert dump(data, "yaml").startswith("b: 1")  # keeps key order


def test_managed_fields_are_hidden_from_output():
    obj = model("m-v1", "m", "1")
    obj["metadata"]["managedFields"] = [{"manager": "mlkube-cli"}]
    shown = without_managed_fields(obj)
    assert "managedFields" not in shown["metadata"] and shown["metadata"]["name"] == "m-v1"
    assert "managedFields" in obj["metadata"]  # the input is not modified
