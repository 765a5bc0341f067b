"""The Environment CRD and the `environment` references against the real API server: the sample
applies, the spec is immutable but for description, and every CEL rule rejects with its message
(no operator: what kubectl, GitOps and the CLI all meet). docs/environments.md §1, §4.

The pydantic side of the same rules is in tests/unit/api/test_environment_kind.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlkube.api import environment as e
from mlkube.api import pipeline_step as ps
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.crd_checks import rejected, sample

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
SAMPLE = "environment.yaml"


def _build(**fields: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        obj["spec"]["build"].update(fields)

    return apply


def _patch(kube: Kube, namespace: str, spec: Obj) -> Obj:
    return kube.patch(API_VERSION, "Environment", "lgbm-1", {"spec": spec}, namespace)


def test_sample_applies_with_defaults_and_kstatus_status(kube: Kube, namespace: str) -> None:
    kube.create(sample(SAMPLE, namespace))
    got = kube.get(API_VERSION, "Environment", "lgbm-1", namespace)
    assert got is not None
    assert got["spec"]["build"]["pip"] == ["lightgbm==4.5.0"]
    # kstatus: a fresh object reads as not yet observed.
    assert got["status"] == {"observedGeneration": 0}
    listed = kube.list(API_VERSION, "Environment", namespace)
    assert [o["metadata"]["name"] for o in listed] == ["lgbm-1"]


def test_an_image_environment_with_packaging_fields_is_refused_and_a_file_is_accepted(
    kube: Kube, namespace: str
) -> None:
    obj = sample(SAMPLE, namespace)
    obj["metadata"]["name"] = "scorer-2"
    obj["spec"] = {"environmentName": "scorer", "version": "2.1", "image": "registry.example/s:2"}
    assert kube.create(obj)["spec"]["image"] == "registry.example/s:2"
    packaged = sample(SAMPLE, namespace)
    packaged["metadata"]["name"] = "iris-pkg-3"
    packaged["spec"].update(environmentName="iris-pkg", version="3", model="iris-3")
    packaged["spec"]["build"]["files"] = [{"path": "/opt/app/f.py", "content": "X = 1\n"}]
    created = kube.create(packaged)
    assert created["spec"]["build"]["files"][0]["mode"] == 0o644


RULES: list[tuple[Callable[[Obj], None], str]] = [
    (lambda o: o["spec"].update(image="registry.example/s:2"), e.MSG_ONE_SOURCE),
    (lambda o: o["spec"].pop("build"), e.MSG_ONE_SOURCE),
    (lambda o: o["spec"].update(environmentName="mlkube-sklearn"), e.MSG_RESERVED),
    (lambda o: (o["spec"].pop("build"), o["spec"].update(image="r/i:1", model="m")),
     e.MSG_MODEL_NEEDS_BUILD),
    (_build(pip=["-r requirements.txt"]), e.MSG_PIP_LINE),
    (_build(pip=["--index-url https://evil.example/simple"]), e.MSG_PIP_LINE),
    (_build(pip=["lightgbm\n--extra-index-url x"]), e.MSG_PIP_LINE),
    (_build(apt=["libgomp1; rm -rf /"]), e.MSG_APT_PACKAGE),
    (_build(files=[{"path": "relative.py", "content": ""}]), e.MSG_FILE_PATH),
    (_build(files=[{"path": "/opt/../etc/passwd", "content": ""}]), e.MSG_FILE_PATH),
    (_build(files=[{"path": "/opt/app/", "content": ""}]), e.MSG_FILE_PATH),
    (_build(env=[{"name": "MLKUBE_MODEL_DIR", "value": "/x"}]), e.MSG_RESERVED_ENV),
    (lambda o: o["spec"].update(version="1/2"), "spec.version"),
    (_build(files=[{"path": "/a", "content": "", "mode": 0o1777}]), "spec.build.files[0].mode"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "message"), RULES, ids=[f"{i}:{m[:40]}" for i, (_, m) in enumerate(RULES)]
)
def test_environment_rules(
    kube: Kube, namespace: str, mutate: Callable[[Obj], None], message: str
) -> None:
    obj = sample(SAMPLE, namespace)
    mutate(obj)
    assert message in rejected(kube.create, obj)


def test_spec_is_immutable_but_for_description(kube: Kube, namespace: str) -> None:
    kube.create(sample(SAMPLE, namespace))
    assert e.MSG_NAME_IMMUTABLE in rejected(_patch, kube, namespace, {"environmentName": "x"})
    assert e.MSG_VERSION_IMMUTABLE in rejected(_patch, kube, namespace, {"version": "2"})
    assert e.MSG_SOURCE_IMMUTABLE in rejected(
        _patch, kube, namespace, {"build": {"pip": ["lightgbm==4.6.0"]}}
    )
    switched = rejected(_patch, kube, namespace, {"build": None, "image": "r/i:1"})
    assert e.MSG_SOURCE_IMMUTABLE in switched
    assert e.MSG_MODEL_IMMUTABLE in rejected(_patch, kube, namespace, {"model": "iris-3"})
    updated = _patch(kube, namespace, {"description": "descriptions may change"})
    assert updated["spec"]["description"] == "descriptions may change"
    assert updated["metadata"]["generation"] == 2


def test_an_image_cannot_be_changed_or_removed(kube: Kube, namespace: str) -> None:
    obj = sample(SAMPLE, namespace)
    obj["spec"] = {"environmentName": "lgbm", "version": "1", "image": "registry.example/s:2"}
    kube.create(obj)
    assert e.MSG_SOURCE_IMMUTABLE in rejected(_patch, kube, namespace, {"image": "r/i:3"})
    assert e.MSG_ONE_SOURCE in rejected(_patch, kube, namespace, {"image": None})


BAD_REFERENCES = ("lgbm", "lgbm:", "Lgbm:1", "lgbm@1", "lgbm:1:2", "lgbm@newest", "lgbm:1.")


@pytest.mark.parametrize("ref", BAD_REFERENCES)
def test_deployments_and_steps_refuse_malformed_references(
    kube: Kube, namespace: str, ref: str
) -> None:
    endpoint = sample("onlineendpoint.yaml", namespace)
    endpoint["spec"]["deployments"][0]["environment"] = ref
    assert e.MSG_REFERENCE in rejected(kube.create, endpoint)
    batch = sample("batchendpoint.yaml", namespace)
    batch["spec"]["deployments"][0]["environment"] = ref
    assert e.MSG_REFERENCE in rejected(kube.create, batch)
    pipeline = sample("pipeline.yaml", namespace)
    train = pipeline["spec"]["steps"][0]
    train.pop("image")
    train["environment"] = ref
    assert e.MSG_REFERENCE in rejected(kube.create, pipeline)


def test_references_apply_in_every_user_and_step_image_is_exclusive(
    kube: Kube, namespace: str
) -> None:
    endpoint = sample("onlineendpoint.yaml", namespace)
    endpoint["spec"]["deployments"][0]["environment"] = "lgbm:1"
    endpoint["spec"]["deployments"][1]["environment"] = "mlkube-sklearn:0.1.0"
    got = kube.create(endpoint)["spec"]["deployments"]
    assert [d.get("environment") for d in got] == ["lgbm:1", "mlkube-sklearn:0.1.0"]
    batch = sample("batchendpoint.yaml", namespace)
    batch["spec"]["deployments"][0]["environment"] = "lgbm@latest"
    assert kube.create(batch)["spec"]["deployments"][0]["environment"] == "lgbm@latest"
    pipeline = sample("pipeline.yaml", namespace)
    train = pipeline["spec"]["steps"][0]
    train["environment"] = "lgbm:1"
    assert ps.MSG_IMAGE_XOR_ENVIRONMENT in rejected(kube.create, pipeline)
    train.pop("image")
    assert kube.create(pipeline)["spec"]["steps"][0]["environment"] == "lgbm:1"
    built_in = sample("pipeline.yaml", namespace)
    built_in["metadata"]["name"] = "other"
    next(s for s in built_in["spec"]["steps"] if "evaluate" in s)["environment"] = "a:1"
    assert ps.MSG_CONTAINER_ONLY in rejected(kube.create, built_in)
