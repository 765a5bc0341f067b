"""registerModel against the in-memory API: the Model and its lineage, auto versions under
races, re-entry adopting the run's own Model, waiting for verification, every failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlkube.api.model import ModelSpec
from mlkube.builders.pipeline_outcome import Done, Failed, Waiting
from mlkube.contract import API_VERSION
from mlkube.controllers.pipeline_builtin import run_builtin
from mlkube.k8s.errors import ApiError
from support.fake_kube import FakeKube
from support.pipeline_builtin import (
    DIGEST_DATA,
    DIGEST_IMAGE,
    DIGEST_MODEL,
    NS,
    RUN_UID,
    fake,
    register_step,
    run_obj,
    set_phase,
    upstream,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
BASE_DIGEST = "sha256:" + "b" * 64


def existing_model(name: str, version: str, model: str = "credit-risk") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "modelName": model,
            "version": version,
            "framework": "sklearn",
            "artifact": {"uri": f"s3://models/{name}/"},
        },
        "status": {"phase": "Ready", "artifact": {"digest": BASE_DIGEST}},
    }


def cluster(*versions: str) -> FakeKube:
    kube = fake()
    kube.put(existing_model("base-v3", "3", model="base"))  # the Model input of train
    for version in versions:
        kube.put(existing_model(f"credit-risk-v{version}", version))
    return kube


def models(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {k[3]: v for k, v in kube.objects.items() if k[1] == "Model"}


def test_creates_the_next_version_with_lineage_then_waits_for_verification() -> None:
    kube = cluster("3", "4", "beta")
    run = run_obj(lr="0.1", repository="https://git.example/credit.git", commit="abc1234")
    outcome = run_builtin(kube, run, register_step(), upstream(auc=0.93), NOW)

    assert isinstance(outcome, Waiting)
    assert "credit-risk-v5" in outcome.message
    model = models(kube)["credit-risk-v5"]
    assert "ownerReferences" not in model["metadata"]  # outlives the run
    assert model["metadata"]["labels"] == {
        "team": "risk",
        "mlkube.dev/model": "credit-risk",
        "mlkube.dev/version": "5",
        "mlkube.dev/pipeline-run": "r1",
    }
    assert model["metadata"]["annotations"]["mlkube.dev/pipeline-run-uid"] == RUN_UID
    spec = model["spec"]
    ModelSpec.model_validate(spec)  # what the CRD schema admits
    assert spec["artifact"] == {"uri": "s3://a/train/model/", "digest": DIGEST_MODEL}
    assert spec["framework"] == "sklearn" and spec["description"] == "retrained"
    assert spec["lineage"] == {
        "run": {"id": "ml/r1", "system": "mlkube"},
        "datasets": [
            {"name": "prep/raw", "uri": "s3://data/raw/", "digest": DIGEST_DATA},
            {"name": "train/base", "uri": "s3://models/base-v3/", "digest": BASE_DIGEST},
        ],
        "parameters": {
            "lr": "0.1",
            "repository": "https://git.example/credit.git",
            "commit": "abc1234",
        },
        "metrics": {"auc": 0.93},
        "environment": {"image": f"registry.example/train:1@{DIGEST_IMAGE}"},
        "code": {"repository": "https://git.example/credit.git", "commit": "abc1234"},
    }

    set_phase(kube, "credit-risk-v5", "Ready")
    done = run_builtin(kube, run, register_step(), upstream(), NOW)
    assert isinstance(done, Done)
    assert done.produced_models == ("credit-risk-v5",)
    assert {o.name: o.value for o in done.outputs} == {"model": "credit-risk-v5", "version": "5"}
    assert DIGEST_MODEL in done.message
    assert kube.written("create") == [(API_VERSION, "Model", NS, "credit-risk-v5")]


def test_first_version_is_1_and_no_code_without_both_parameters() -> None:
    kube = cluster()
    run_builtin(kube, run_obj(commit="abc1234"), register_step(), upstream(), NOW)
    lineage = models(kube)["credit-risk-v1"]["spec"]["lineage"]
    assert "code" not in lineage


def test_re_entry_adopts_its_own_model_even_after_others_registered() -> None:
    kube = cluster("1")
    run = run_obj()
    run_builtin(kube, run, register_step(), upstream(), NOW)
    kube.put(existing_model("credit-risk-v3", "3"))  # someone registers v3 meanwhile
    again = run_builtin(kube, run, register_step(), upstream(), NOW)
    assert isinstance(again, Waiting) and "credit-risk-v2" in again.message
    assert len(kube.written("create")) == 1


def test_a_version_taken_between_list_and_create_moves_to_the_next() -> None:
    kube = cluster("1")
    taken = []

    def race(verb: str, key: tuple[str, str, str, str]) -> None:
        if verb == "create" and key[3] == "credit-risk-v2" and not taken:
            taken.append(key)
            kube.put(existing_model("credit-risk-v2", "2"))  # a CLI user got there first

    kube.before.append(race)
    outcome = run_builtin(kube, run_obj(), register_step(), upstream(), NOW)
    assert isinstance(outcome, Waiting) and "credit-risk-v3" in outcome.message
    assert "mlkube.dev/pipeline-run-uid" not in (
        models(kube)["credit-risk-v2"]["metadata"].get("annotations") or {}
    )


def test_a_create_that_answered_409_but_was_ours_is_adopted() -> None:
    # The first POST succeeded but its answer was lost; the retry sees 409 on its own object.
    kube = cluster()
    real_create = kube.create
    calls = []

    def lossy_create(obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        calls.append(obj["metadata"]["name"])
        real_create(obj, field_manager)
        raise ApiError(409, "AlreadyExists", "exists")

    kube.create = lossy_create  # type: ignore[method-assign]
    outcome = run_builtin(kube, run_obj(), register_step(), upstream(), NOW)
    assert isinstance(outcome, Waiting) and "credit-risk-v1" in outcome.message
    assert calls == ["credit-risk-v1"]


def test_fixed_version_template_and_its_conflicts() -> None:
    kube = cluster()
    outcome = run_builtin(
        kube, run_obj(v="7"), register_step("{{parameters.v}}-{{ run.name }}"), upstream(), NOW
    )
    assert isinstance(outcome, Waiting)
    assert models(kube)["credit-risk-v7-r1"]["spec"]["version"] == "7-r1"

    other = cluster("7")
    refused = run_builtin(other, run_obj(v="7"), register_step("{{parameters.v}}"), upstream(), NOW)
    assert isinstance(refused, Failed) and refused.reason == "VersionExists"
    assert "version 7 already exists" in refused.message

    unknown = run_builtin(
        cluster(), run_obj(), register_step("{{parameters.nope}}"), upstream(), NOW
    )
    assert isinstance(unknown, Failed) and "{{parameters.nope}}" in unknown.message


def test_failed_verification_fails_the_step() -> None:
    kube = cluster()
    run_builtin(kube, run_obj(), register_step(), upstream(), NOW)
    set_phase(kube, "credit-risk-v1", "Failed", "DigestMismatch: expected a, got b")
    outcome = run_builtin(kube, run_obj(), register_step(), upstream(), NOW)
    assert isinstance(outcome, Failed) and outcome.reason == "ModelFailed"
    assert "DigestMismatch" in outcome.message


def test_lineage_that_cannot_be_stated_fails_before_creating_anything() -> None:
    kube = cluster()
    bad_commit = run_builtin(
        kube, run_obj(repository="https://g/x.git", commit="main"), register_step(), upstream(), NOW
    )
    assert isinstance(bad_commit, Failed) and "'main' is not a commit hash" in bad_commit.message
    steps = upstream()
    del steps["train"]
    missing = run_builtin(kube, run_obj(), register_step(), steps, NOW)
    assert isinstance(missing, Failed) and "'train' has not succeeded" in missing.message
    assert kube.written("create") == []


def test_custom_framework_entrypoint_is_passed_through() -> None:
    kube = cluster()
    step = register_step(framework="custom", entrypoint={"path": "score.py"})
    run_builtin(kube, run_obj(), step, upstream(), NOW)
    assert models(kube)["credit-risk-v1"]["spec"]["entrypoint"] == {"path": "score.py"}


def test_a_spec_the_crd_would_refuse_fails_without_a_create() -> None:
    kube = cluster()
    step = register_step(framework="custom")  # custom needs an entrypoint
    outcome = run_builtin(kube, run_obj(), step, upstream(), NOW)
    assert isinstance(outcome, Failed) and outcome.reason == "ModelInvalid"
    assert "entrypoint is required" in outcome.message
    assert kube.written("create") == []


def test_a_run_name_longer_than_a_label_is_shortened_and_still_adopted() -> None:
    kube = cluster()
    run = run_obj("credit-retrain-drift-" + "x" * 60)
    run_builtin(kube, run, register_step(), upstream(), NOW)
    label = models(kube)["credit-risk-v1"]["metadata"]["labels"]["mlkube.dev/pipeline-run"]
    assert len(label) <= 63 and label.startswith("credit-retrain-drift-")
    run_builtin(kube, run, register_step(), upstream(), NOW)
    assert len(kube.written("create")) == 1
    assert models(kube)["credit-risk-v1"]["spec"]["lineage"]["run"]["id"] == (
        f"{NS}/{run['metadata']['name']}"
    )
