"""Runs, step results and an SSA-faithful fake for the built-in pipeline step tests.

`SsaFakeKube` applies OnlineEndpoints the way the API server does for the fields a deploy step
sends: `spec.deployments` merges by name (a list-map), `spec.traffic`/`spec.mirror` merge key
by key (granular maps); the plain `FakeKube` would replace the whole spec. It also records the
field manager of every apply.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mlkube.builders.pipeline_outcome import ResolvedInput, StepOutput, StepResult
from mlkube.contract import API_VERSION
from support.fake_kube import DEFAULT_KINDS, FakeKube

NS = "ml"
RUN_UID = "run-uid-1"
DIGEST_DATA = "sha256:" + "d" * 64
DIGEST_MODEL = "sha256:" + "e" * 64
DIGEST_IMAGE = "sha256:" + "f" * 64
KINDS = DEFAULT_KINDS | {(API_VERSION, "PipelineRun")}


@dataclass
class SsaFakeKube(FakeKube):
    managers: list[str] = field(default_factory=list)

    def apply(
        self, obj: dict[str, Any], field_manager: str = "mlkube-operator", subresource: str = ""
    ) -> dict[str, Any]:
        self.managers.append(field_manager)
        if obj.get("kind") != "OnlineEndpoint":
            return super().apply(obj, field_manager, subresource)
        key = self._key(obj)
        current = self.objects.get(key)
        if current is None:
            return super().apply(obj, field_manager, subresource)
        merged = copy.deepcopy(obj)
        spec = copy.deepcopy(current.get("spec") or {})
        applied = obj.get("spec") or {}
        by_name = {d["name"]: d for d in spec.get("deployments") or []}
        for item in applied.get("deployments") or []:
            by_name[item["name"]] = {**by_name.get(item["name"], {}), **copy.deepcopy(item)}
        spec["deployments"] = list(by_name.values())
        for part in ("traffic", "mirror"):
            if part in applied:
                spec[part] = {**(spec.get(part) or {}), **applied[part]}
        merged["spec"] = spec
        return super().apply(merged, field_manager, subresource)


def run_obj(name: str = "r1", **parameters: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": NS, "uid": RUN_UID},
        "spec": {"pipeline": "credit-retrain", "parameters": parameters},
        "status": {"parameters": parameters, "steps": []},
    }


def prep_step() -> StepResult:
    return StepResult(
        name="prep",
        phase="Succeeded",
        spec={
            "name": "prep",
            "image": "registry.example/prep:1",
            "inputs": [{"name": "raw", "uri": "s3://data/raw/", "digest": DIGEST_DATA}],
            "outputs": [{"name": "table", "type": "artifact"}],
        },
        outputs={"table": StepOutput("table", "artifact", "s3://a/prep/table/", DIGEST_DATA)},
    )


def train_step(**metrics: float) -> StepResult:
    return StepResult(
        name="train",
        phase="Succeeded",
        spec={
            "name": "train",
            "image": "registry.example/train:1",
            "dependsOn": ["prep"],
            "inputs": [
                {"name": "table", "fromStep": {"step": "prep", "output": "table"}},
                {"name": "base", "model": "base-v3"},
            ],
            "outputs": [{"name": "model", "type": "artifact"}, {"name": "m", "type": "metrics"}],
        },
        outputs={"model": StepOutput("model", "artifact", "s3://a/train/model/", DIGEST_MODEL)},
        metrics=metrics or {"auc": 0.91},
        image_digest=f"registry.example/train@{DIGEST_IMAGE}",
        inputs=(
            ResolvedInput("table", "step", "s3://a/prep/table/", DIGEST_DATA, step="prep"),
            ResolvedInput("base", "model", model="base-v3"),
        ),
    )


def register_step(version: str = "auto", **extra: Any) -> dict[str, Any]:
    return {
        "name": "register",
        "type": "registerModel",
        "registerModel": {
            "artifact": {"step": "train", "output": "model"},
            "modelName": "credit-risk",
            "version": version,
            "framework": "sklearn",
            "metricsFrom": [{"step": "train", "output": "m"}],
            "tags": {"team": "risk"},
            "description": "retrained",
            **extra,
        },
    }


def upstream(**metrics: float) -> dict[str, StepResult]:
    return {"prep": prep_step(), "train": train_step(**metrics)}


def fake(ssa: bool = False) -> FakeKube:
    return SsaFakeKube(kinds=set(KINDS)) if ssa else FakeKube(kinds=set(KINDS))


def set_phase(kube: FakeKube, name: str, phase: str, message: str = "") -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": phase, "message": message, "artifact": {"digest": DIGEST_MODEL}}

    kube.mutate((API_VERSION, "Model", NS, name), change)
