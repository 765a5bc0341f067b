"""Environments built in the cluster, end to end on real components (docs/environments.md §2-§3):
the real API server and Job controller, a real registry process (hack/registry/build.sh), the
operator in-process under the chart's RBAC, and the dev pod executor running the build pod's
containers (tools copy, install, push) as local processes, the host venv standing in for the
base image's Python. The pip package comes from a local wheelhouse (find-links, no index).

Proves: Pending -> Building -> Ready with a digest the registry serves and the package list
read from the build; identical inputs reuse the image (no second Job, no new tag), also from
the registry tag alone once the Job and the first Environments are gone; a failing build says
why with the log's tail; no registry configured says how to configure one.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.rbac import build_cluster_role_binding
from mlkube.contract import API_VERSION
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.handlers.config import operator_config
from mlkube.handlers.environment_wiring import environment_deps
from mlkube.k8s import Kube
from mlkube.oci import Client, parse
from support.oci_images import build_wheel, push_image
from support.operator import patched_env, run_operator
from support.podexec import POD_ANNOTATIONS_ENV, PodExecutor
from support.registry import Registry, registry_binary, running_registry
from support.waiting import wait_for

PACKAGE = "mlkube-envtest"
REQUIREMENT = f"{PACKAGE}==1.0"
BUILD_SECONDS = 240.0


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with running_registry(binary=registry_binary()) as reg:
        yield reg


@pytest.fixture(scope="module")
def base_image(registry: Registry) -> str:
    """A small base in the registry: push appends the new layer to its layers and config."""
    client = Client(insecure=[registry.host])
    push_image(client, f"{registry.host}/base/python:3.11", [{"etc/os-release": b"debian\n"}])
    return f"{registry.host}/base/python:3.11"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    build_wheel(wheels, PACKAGE, "1.0", {"mlkube_envtest/__init__.py": "ANSWER = 42\n"})
    return wheels


def bind_build_role(kube: Kube, namespace: str) -> None:
    """The chart binds the build role in the build namespace (here the test's own)."""
    binding = build_cluster_role_binding(
        "mlkube-operator-build", "mlkube-operator-build", user=OPERATOR_USER
    )
    meta = {"name": "mlkube-operator-build", "namespace": namespace}
    kube.create({**binding, "kind": "RoleBinding", "metadata": meta})


def operator_env(registry: Registry | None, namespace: str, wheelhouse: Path) -> dict[str, str]:
    env = {
        "MLKUBE_BUILD_NAMESPACE": namespace,
        "MLKUBE_BATCH_POD_ANNOTATIONS": POD_ANNOTATIONS_ENV,
        "MLKUBE_BUILD_PIP_FIND_LINKS": str(wheelhouse),
        "MLKUBE_BUILD_PIP_NO_INDEX": "true",
        "MLKUBE_BUILD_REGISTRY": f"{registry.host}/mlkube" if registry else "",
        "MLKUBE_BUILD_REGISTRY_INSECURE": "true",
    }
    return env


@pytest.fixture
def configured(
    namespace: str, kube: Kube, registry: Registry, wheelhouse: Path, pod_executor: PodExecutor
) -> Iterator[PodExecutor]:
    bind_build_role(kube, namespace)
    operator_config.cache_clear()
    environment_deps.cache_clear()
    with patched_env(operator_env(registry, namespace, wheelhouse)):
        yield pod_executor
    operator_config.cache_clear()
    environment_deps.cache_clear()


def environment(
    namespace: str, name: str, version: str, base: str, pip: list[str]
) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Environment",
            "metadata": {"name": f"{name}-{version}", "namespace": namespace},
            "spec": {"environmentName": name, "version": version,
                     "build": {"base": base, "pip": pip}}}  # fmt: skip


def status_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "Environment", name, namespace) or {}
    return dict(obj.get("status") or {})


def wait_phase(kube: Kube, namespace: str, name: str, phases: tuple[str, ...]) -> dict[str, Any]:
    return wait_for(
        lambda: (s if (s := status_of(kube, namespace, name)).get("phase") in phases else None),
        timeout=BUILD_SECONDS, what=f"Environment {name} in {phases}",
    )  # fmt: skip


def reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    events = kube.list("v1", "Event", namespace)
    return [e["reason"] for e in events if e["involvedObject"].get("name") == name]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def tags(registry: Registry) -> list[str]:
    url = f"{registry.url}/v2/mlkube/environments/tags/list"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return sorted(json.load(resp).get("tags") or [])


def build_jobs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return [j for j in kube.list("batch/v1", "Job", namespace)
            if j["metadata"]["name"].startswith("envbuild-")]  # fmt: skip


def test_build_then_reuse_by_environment_and_by_registry_tag(
    kube: Kube, namespace: str, registry: Registry, base_image: str, configured: PodExecutor
) -> None:
    client = Client(insecure=[registry.host])
    with run_operator(namespace):
        kube.create(environment(namespace, "lgbm", "1", base_image, [REQUIREMENT]))
        building = wait_phase(kube, namespace, "lgbm-1", ("Building", "Ready", "Failed"))
        status = wait_phase(kube, namespace, "lgbm-1", ("Ready", "Failed"))
        assert status["phase"] == "Ready", (status, configured.output()[-3000:])
        assert building["phase"] in ("Building", "Ready")
        posted = lambda: {"BuildStarted", "Built"} <= set(reasons(kube, namespace, "lgbm-1"))  # noqa: E731
        wait_for(posted, what="BuildStarted and Built Events")
        digest = status["imageDigest"]
        assert status["image"] == f"{registry.host}/mlkube/environments@{digest}"
        assert client.head_manifest(parse(status["image"])) is not None  # the registry has it
        assert REQUIREMENT in status["packages"]
        assert status["buildKey"].startswith("sha256:") and status["build"]["reused"] is False
        assert status["base"]["image"].startswith(f"{registry.host}/base/python@sha256:")
        assert condition(status, "Built")["status"] == "True"
        (job,) = build_jobs(kube, namespace)
        assert status["build"]["job"] == f"{namespace}/{job['metadata']['name']}"
        pushed = tags(registry)

        # The same inputs (written differently) under another name: the first one's image.
        kube.create(environment(namespace, "lgbm-copy", "1", base_image, ["MLKube_EnvTest == 1.0"]))
        again = wait_phase(kube, namespace, "lgbm-copy-1", ("Ready", "Failed"))
        assert again["imageDigest"] == digest and again["build"]["reused"] is True
        assert again["buildKey"] == status["buildKey"]
        wait_for(lambda: "BuildReused" in reasons(kube, namespace, "lgbm-copy-1"), what="Event")
        assert len(build_jobs(kube, namespace)) == 1 and tags(registry) == pushed

        # With the Job and both Environments gone, the registry tag alone is found.
        for name in ("lgbm-1", "lgbm-copy-1"):
            kube.delete(API_VERSION, "Environment", name, namespace)
        kube.delete("batch/v1", "Job", job["metadata"]["name"], namespace)
        wait_for(lambda: not build_jobs(kube, namespace), timeout=30, what="the build Job deleted")
        kube.create(environment(namespace, "lgbm", "2", base_image, [REQUIREMENT]))
        third = wait_phase(kube, namespace, "lgbm-2", ("Ready", "Failed"))
        assert third["imageDigest"] == digest and third["build"]["reused"] is True
        assert REQUIREMENT in third["packages"]  # from the image's label
        assert build_jobs(kube, namespace) == [] and tags(registry) == pushed


def test_a_failed_build_says_why(
    kube: Kube, namespace: str, base_image: str, configured: PodExecutor
) -> None:
    with run_operator(namespace):
        kube.create(environment(namespace, "broken", "1", base_image, ["mlkube-no-such-dist==9"]))
        status = wait_phase(kube, namespace, "broken-1", ("Ready", "Failed"))
        wait_for(lambda: "BuildFailed" in reasons(kube, namespace, "broken-1"), what="the Event")
        # The failed Job (kept for its logs) is not the verdict of a later Environment with
        # the same inputs: it builds again, in a Job of its own (a failure may be transient).
        kube.create(environment(namespace, "broken", "2", base_image, ["mlkube-no-such-dist==9"]))
        again = wait_phase(kube, namespace, "broken-2", ("Ready", "Failed"))
    assert status["phase"] == "Failed"
    built = condition(status, "Built")
    assert built["status"] == "False" and built["reason"] == "BuildFailed", built
    assert "container install failed" in built["message"]
    assert "mlkube-no-such-dist" in built["message"]  # pip's own words, from the log tail
    assert again["phase"] == "Failed" and again["buildKey"] == status["buildKey"]
    assert again["build"]["job"] == status["build"]["job"] + "-r1"
    assert len(build_jobs(kube, namespace)) == 2


def test_no_registry_says_how_to_configure_one(
    kube: Kube, namespace: str, base_image: str, wheelhouse: Path, pod_executor: PodExecutor
) -> None:
    operator_config.cache_clear()
    environment_deps.cache_clear()
    try:
        with patched_env(operator_env(None, namespace, wheelhouse)), run_operator(namespace):
            kube.create(environment(namespace, "lgbm", "1", base_image, [REQUIREMENT]))
            status = wait_for(
                lambda: (s if "NoRegistry" in str(s := status_of(kube, namespace, "lgbm-1"))
                         else None), what="NoRegistry",
            )  # fmt: skip
    finally:
        operator_config.cache_clear()
        environment_deps.cache_clear()
    built = condition(status, "Built")
    assert status["phase"] == "Pending" and built["reason"] == "NoRegistry"
    assert condition(status, "Stalled")["status"] == "True"
    assert "MLKUBE_BUILD_REGISTRY" in built["message"]
    assert build_jobs(kube, namespace) == []


def test_an_image_tag_is_pinned_and_a_missing_one_retried(
    kube: Kube, namespace: str, registry: Registry, base_image: str, configured: PodExecutor
) -> None:
    client = Client(insecure=[registry.host])
    digest = client.resolve(parse(base_image)).digest
    missing = f"{registry.host}/team/scorer:nope"
    with run_operator(namespace):
        for name, image in (("scorer-1", base_image), ("gone-1", missing)):
            kube.create({"apiVersion": API_VERSION, "kind": "Environment",
                         "metadata": {"name": name, "namespace": namespace},
                         "spec": {"environmentName": name[:-2], "version": "1",
                                  "image": image}})  # fmt: skip
        status = wait_phase(kube, namespace, "scorer-1", ("Ready", "Failed"))
        gone = wait_phase(kube, namespace, "gone-1", ("Resolving",))
        # The probe Job (run here in the host venv, the "image") fills what is inside.
        probed = wait_for(
            lambda: (s if (s := status_of(kube, namespace, "scorer-1")).get("serving") else None),
            timeout=BUILD_SECONDS, what="the probe's report",
        )  # fmt: skip
    assert status["image"] == f"{registry.host}/base/python@{digest}"
    assert status["resolvedFrom"] == base_image and status["imageDigest"] == digest
    assert probed["python"] == ".".join(map(str, sys.version_info[:3]))
    assert any(p.startswith("pydantic==") for p in probed["packages"])
    assert probed["serving"]["compatible"] is True  # mlkube_serving is in the host venv
    assert probed["imageDigest"] == digest and probed["phase"] == "Ready"
    resolved = condition(gone, "Resolved")
    assert resolved["status"] == "False" and resolved["reason"] == "ImageNotFound"
    assert missing in resolved["message"] and "retrying in" in resolved["message"]


def test_a_duplicate_waits_and_builds_once_the_older_claim_is_gone(
    kube: Kube, namespace: str, registry: Registry, base_image: str, configured: PodExecutor
) -> None:
    older = environment(namespace, "dup", "1", base_image, [REQUIREMENT])
    younger = {**older, "metadata": {"name": "dup-again", "namespace": namespace}}
    with run_operator(namespace):
        kube.create(older)
        wait_phase(kube, namespace, "dup-1", ("Ready",))
        kube.create(younger)
        status = wait_for(
            lambda: (s if "Duplicate" in str(s := status_of(kube, namespace, "dup-again"))
                     else None), what="Duplicate",
        )  # fmt: skip
        assert status["phase"] == "Pending" and "dup-1" in condition(status, "Ready")["message"]
        kube.delete(API_VERSION, "Environment", "dup-1", namespace)
        after = wait_phase(kube, namespace, "dup-again", ("Ready", "Failed"))
    assert after["phase"] == "Ready" and after["build"]["reused"] is True  # the registry tag
