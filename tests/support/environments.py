"""In-memory stand-ins for the Environment controller's ports (controllers/environment_ports):
a registry of tags and labels and pod logs from a dict; the operator config of the tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from mlkube.builders.build_config import BuildConfig
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.environment_ports import Deps, RegistryError
from mlkube.reconcile.environment_key import build_key, inputs_from_spec

REGISTRY = "127.0.0.1:5000/mlkube"
BUILD_NAMESPACE = "mlkube-system"
BASE = "127.0.0.1:5000/mlkube/serving-sklearn:0.1.0"
BASE_DIGEST = "sha256:" + "b" * 64


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class FakeRegistry:
    tags: dict[str, str] = field(default_factory=lambda: {BASE: BASE_DIGEST})
    builds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    asked: list[str] = field(default_factory=list)

    def digest(self, reference: str) -> str | None:
        self.asked.append(reference)
        if self.down:
            raise RegistryError("connection refused")
        return self.tags.get(reference)

    def existing_build(self, repository: str, key: str) -> dict[str, Any] | None:
        self.asked.append(f"{repository}:build-{key.split(':')[1][:32]}")
        if self.down:
            raise RegistryError("connection refused")
        return self.builds.get((repository, key))

    def push_build(self, key: str, digest: str, packages: list[str]) -> None:
        """What the push step leaves behind: the tagged image and its labels' facts."""
        repository = f"{REGISTRY}/environments"
        self.builds[(repository, key)] = {
            "image": f"{repository}@{digest}", "imageDigest": digest, "sizeBytes": 99,
            "packages": packages, "python": "3.11.2", "serving": {"compatible": True},
        }  # fmt: skip


@dataclass
class FakeLogs:
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def __call__(self, namespace: str, pod: str, container: str) -> str:
        return self.logs.get((namespace, pod, container), "")


def build_config(build_registry: str | None = REGISTRY) -> OperatorConfig:
    host, _, prefix = (build_registry or "").partition("/")
    build = BuildConfig(registry=host or None, repository_prefix=prefix, registry_insecure=True,
                        curated=(("mlkube-sklearn", BASE),))  # fmt: skip
    return OperatorConfig(serving_image="registry.example/mlkube-serving:0.1.0", build=build)


def fake_deps(
    registry: FakeRegistry | None = None, logs: FakeLogs | None = None, *,
    build_registry: str | None = REGISTRY,
) -> Deps:  # fmt: skip
    return Deps(config=build_config(build_registry), namespace=BUILD_NAMESPACE,
                registry=registry or FakeRegistry(), logs=logs or FakeLogs())  # fmt: skip


def key_of(obj: dict[str, Any], base_digest: str = BASE_DIGEST) -> str:
    """The build key the controller computes for `obj` with the test config."""
    build = build_config().build
    inputs = inputs_from_spec(obj["spec"]["build"], base_digest=base_digest,
                              pip_settings=build.pip, apt_sources=build.apt_sources)  # fmt: skip
    return build_key(inputs)


def environment(
    name: str, *, version: str = "1", environment_name: str | None = None,
    image: str | None = None, build: dict[str, Any] | None = None,
    created: str = "2026-11-30T10:00:00Z", namespace: str = "team",
) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"environmentName": environment_name or name, "version": version}
    if image is not None:
        spec["image"] = image
    else:
        spec["build"] = build or {"base": "mlkube-sklearn:0.1.0", "pip": ["lightgbm==4.5.0"]}
    return {"apiVersion": "mlkube.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created,
                         "generation": 1},
            "spec": spec}  # fmt: skip
