"""`mlkube model lineage` as a tree: Model → run (status + snapshot) → steps and inputs → the
Model a step read → that Model's run, which is gone (so its own lineage is shown); a replaced
run is recognised by uid; `model show` names the registering run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlkube.cli.model_lineage_view import lineage_tree, render
from mlkube.cli.model_view import render_details

NS = "ml"
D = {c: f"sha256:{c * 64}" for c in "abcdef"}


def model(name: str, run: str | None, uid: str = "u1", **lineage: Any) -> dict[str, Any]:
    spec_lineage: dict[str, Any] = {**lineage}
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    if run:
        spec_lineage["run"] = {"id": f"{NS}/{run}", "system": "mlkube"}
        meta["labels"] = {"mlkube.dev/pipeline-run": run}
        meta["annotations"] = {
            "mlkube.dev/pipeline-run-uid": uid,
            "mlkube.dev/pipeline-step": "register",
        }
    model_name, _, version = name.rpartition("-v")
    return {
        "metadata": meta,
        "spec": {"modelName": model_name, "version": version, "framework": "sklearn",
                 "artifact": {"uri": f"s3://m/{name}/"}, "lineage": spec_lineage},
        "status": {"phase": "Ready", "artifact": {"digest": D["e"]}},
    }  # fmt: skip


STEPS = [
    {"name": "prep", "image": "reg/prep:1",
     "inputs": [{"name": "raw", "uri": "s3://data/raw/"}],
     "outputs": [{"name": "table"}]},
    {"name": "train", "image": "reg/train:1",
     "inputs": [{"name": "table", "fromStep": {"step": "prep", "output": "table"}},
                {"name": "base", "model": "base-v1"}, {"name": "lr", "fromParameter": "lr"}],
     "outputs": [{"name": "model"}]},
    {"name": "register", "type": "registerModel",
     "registerModel": {"artifact": {"step": "train", "output": "model"},
                       "modelName": "credit-risk"}},
    {"name": "unrelated", "image": "reg/x:1"},
]  # fmt: skip


@dataclass
class FakeLookup:
    models: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    runs: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    snapshots: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def model(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.models.get(name)

    def run(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.runs.get(name)

    def snapshot(self, namespace: str, run: str) -> Mapping[str, Any] | None:
        return self.snapshots.get(run)


def world() -> FakeLookup:
    lookup = FakeLookup()
    lookup.models["credit-risk-v5"] = model(
        "credit-risk-v5", "r1",
        datasets=[{"name": "prep/raw", "uri": "s3://data/raw/", "digest": D["a"]},
                  {"name": "train/base", "uri": "s3://m/base-v1/", "digest": D["b"]}],
        parameters={"lr": "0.1"}, metrics={"auc": 0.91},
        environment={"image": f"reg/train:1@{D['f']}"},
        code={"repository": "https://git/x.git", "commit": "abc1234"},
    )  # fmt: skip
    lookup.models["base-v1"] = model(
        "base-v1",
        "r0",
        datasets=[{"name": "train/data", "uri": "s3://data/old/", "digest": D["c"]}],
    )
    lookup.runs["r1"] = {
        "metadata": {"name": "r1", "uid": "u1"},
        "spec": {"pipeline": "credit-retrain", "trigger": {"type": "drift", "name": "on-drift"}},
        "status": {"phase": "Succeeded", "startTime": "2026-01-01T10:00:00Z", "steps": [
            {"name": "prep", "phase": "Succeeded", "cache": {"hit": True, "sourceRun": "r0"},
             "outputs": [{"name": "table", "uri": "s3://a/prep/table/", "digest": D["d"]}]},
            {"name": "train", "phase": "Succeeded", "imageDigest": f"reg/train@{D['f']}"},
        ]},
    }  # fmt: skip
    lookup.snapshots["r1"] = {"data": {"pipeline.json": json.dumps({"steps": STEPS})}}
    return lookup


def test_walks_model_run_steps_inputs_and_upstream_models() -> None:
    text = render(lineage_tree(world(), NS, "credit-risk-v5"))
    assert text == "\n".join([
        "Model ml/credit-risk-v5 (credit-risk version 5, Ready, sha256:eeeeeeeeeeee)",
        "└── PipelineRun ml/r1 (pipeline credit-retrain, Succeeded, trigger drift on-drift,"
        " started 2026-01-01T10:00:00Z), step register",
        "    ├── code https://git/x.git @ abc1234",
        f"    ├── image reg/train:1@{D['f']}",
        "    ├── parameters lr=0.1",
        "    ├── metrics auc=0.91",
        "    ├── step prep (Succeeded, cache hit from run r0, image reg/prep:1)",
        "    │   └── input raw: s3://data/raw/ (sha256:aaaaaaaaaaaa)",
        f"    └── step train (Succeeded, image reg/train:1, imageID reg/train@{D['f']})",
        "        ├── input table ← step prep output table"
        " (s3://a/prep/table/, sha256:dddddddddddd)",
        "        ├── input base ← Model base-v1 (sha256:bbbbbbbbbbbb)",
        "        │   └── Model ml/base-v1 (base version 1, Ready, sha256:eeeeeeeeeeee)",
        "        │       └── PipelineRun ml/r0: gone (not found); from the Model's lineage:",
        "        │           └── dataset train/data: s3://data/old/ (sha256:cccccccccccc)",
        "        └── input lr = parameter lr",
    ])  # fmt: skip


def test_a_replaced_run_and_a_missing_snapshot_fall_back_to_the_model() -> None:
    lookup = world()
    lookup.runs["r1"] = {**lookup.runs["r1"], "metadata": {"name": "r1", "uid": "other"}}
    text = render(lineage_tree(lookup, NS, "credit-risk-v5"))
    assert "PipelineRun ml/r1: replaced (a newer run has that name" in text
    assert "dataset prep/raw: s3://data/raw/ (sha256:aaaaaaaaaaaa)" in text

    lookup = world()
    del lookup.snapshots["r1"]
    text = render(lineage_tree(lookup, NS, "credit-risk-v5"))
    assert "spec snapshot unavailable; from the Model's lineage:" in text
    assert "dataset train/base: s3://m/base-v1/" in text


def test_models_without_a_pipeline_run_and_cycles() -> None:
    lookup = FakeLookup()
    lookup.models["hand-v1"] = model("hand-v1", None)
    assert render(lineage_tree(lookup, NS, "hand-v1")).endswith("└── no run recorded")
    assert "not found (deleted?)" in render(lineage_tree(lookup, NS, "gone-v1"))

    loop = world()
    loop.models["base-v1"] = loop.models["credit-risk-v5"] | {
        "metadata": {**loop.models["credit-risk-v5"]["metadata"], "name": "base-v1"}
    }
    text = render(lineage_tree(loop, NS, "credit-risk-v5"))
    assert text.count("(shown above)") >= 1  # the walk ends instead of looping


def test_model_show_names_the_registering_run() -> None:
    text = render_details(world().models["credit-risk-v5"], datetime(2026, 1, 2, tzinfo=UTC))
    assert (
        "Registered by: PipelineRun ml/r1 (step register); "
        "`mlkube model lineage credit-risk-v5` walks it"
    ) in text
    assert "Tags:         -" in text  # the run label is not shown as a user tag
    assert "    - name=prep/raw, uri=s3://data/raw/, digest=" + D["a"] in text
