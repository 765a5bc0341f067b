"""A missing object's message says where to look: the batch verbs' and the pipeline verbs'
lookups share one `get_object` (cli/batch_api.py), each with its own hint."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mlkube.cli import batch_api, pipeline_api
from mlkube.cli.errors import CliError
from mlkube.k8s import Kube
from support.fake_kube import FakeKube


def kube() -> Kube:
    return cast(Kube, FakeKube())


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        (batch_api.get_job, "BatchJob ml/x not found (see `mlkube batch jobs list`)"),
        (batch_api.get_endpoint, "BatchEndpoint ml/x not found"),
        (pipeline_api.get_pipeline, "Pipeline ml/x not found (see `mlkube pipeline list`)"),
        (pipeline_api.get_run, "PipelineRun ml/x not found (see `mlkube pipeline runs list`)"),
    ],
)
def test_a_missing_object_names_the_list_verb_of_its_kind(lookup: Any, message: str) -> None:
    with pytest.raises(CliError) as raised:
        lookup(kube(), "ml", "x")
    assert str(raised.value) == message


def test_an_existing_object_is_returned() -> None:
    fake = FakeKube()
    fake.create({"apiVersion": "mlkube.dev/v1alpha1", "kind": "Pipeline",
                 "metadata": {"name": "p", "namespace": "ml"}, "spec": {}})  # fmt: skip
    assert pipeline_api.get_pipeline(cast(Kube, fake), "ml", "p")["metadata"]["name"] == "p"
