"""What registerModel says when its `artifact` or `baseline` reference does not lead to a
recorded artifact: both references are resolved by one lookup, each message names its role."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.builders.pipeline_lineage import LineageError
from mlkube.builders.pipeline_outcome import StepOutput, StepResult
from mlkube.controllers import pipeline_register as register

D = "sha256:" + "a" * 64
UPSTREAM = {
    "train": StepResult("train", "Succeeded", outputs={
        "model": StepOutput("model", "artifact", uri="file:///m/", digest=D),
        "bare": StepOutput("bare", "artifact", uri="file:///b/"),
        "auc": StepOutput("auc", "metrics", uri="file:///auc.json"),
    }),
    "late": StepResult("late", "Running"),
}  # fmt: skip


def step(role: str, ref: dict[str, Any]) -> dict[str, Any]:
    return {"name": "register", "registerModel": {role: ref}}


def test_both_references_resolve_to_the_artifact() -> None:
    ref = {"step": "train", "output": "model"}
    assert register._artifact(step("artifact", ref), UPSTREAM) == {"uri": "file:///m/", "digest": D}
    assert register._baseline(step("baseline", ref), UPSTREAM) == {"uri": "file:///m/", "digest": D}
    bare = {"step": "train", "output": "bare"}
    assert register._artifact(step("artifact", bare), UPSTREAM) == {"uri": "file:///b/"}
    assert register._baseline({"registerModel": {}}, UPSTREAM) is None


@pytest.mark.parametrize(
    ("role", "ref", "message"),
    [
        ("artifact", {"step": "late", "output": "model"}, "artifact step 'late' has not succeeded"),
        ("baseline", {"step": "gone", "output": "x"}, "baseline step 'gone' has not succeeded"),
        ("artifact", {"step": "train", "output": "auc"}, "step train has no artifact output 'auc'"),
        ("baseline", {"step": "train", "output": "no"},
         "step train has no artifact output 'no' (baseline)"),
        ("baseline", {"step": "train", "output": "bare"},
         "baseline train.bare was recorded without a digest"),
    ],
)  # fmt: skip
def test_each_bad_reference_names_its_role(role: str, ref: dict[str, Any], message: str) -> None:
    lookup = register._artifact if role == "artifact" else register._baseline
    with pytest.raises(LineageError) as raised:
        lookup(step(role, ref), UPSTREAM)
    assert str(raised.value) == message
