"""Which mlkube object controls a Job or Deployment: the handlers route its events by this."""

from __future__ import annotations

from mlkube.builders.names import controller_owner

API = "mlkube.dev/v1alpha1"


def ref(kind: str, name: str, *, controller: bool = True, api: str = API) -> dict[str, object]:
    return {"apiVersion": api, "kind": kind, "name": name, "uid": "u", "controller": controller}


def test_the_controlling_reference_of_the_kind_names_the_owner() -> None:
    meta = {"ownerReferences": [ref("PipelineRun", "other", controller=False),
                                ref("BatchJob", "job"), ref("PipelineRun", "run")]}  # fmt: skip
    assert controller_owner(meta, "PipelineRun") == "run"
    assert controller_owner(meta, "BatchJob") == "job"


def test_no_controller_of_the_kind_or_group_is_none() -> None:
    assert controller_owner({}, "PipelineRun") is None
    assert controller_owner({"ownerReferences": [ref("PipelineRun", "r", controller=False)]},
                            "PipelineRun") is None  # fmt: skip
    assert controller_owner({"ownerReferences": [ref("PipelineRun", "r", api="x/v1")]},
                            "PipelineRun") is None  # fmt: skip
