"""In-memory stand-ins for the Environment controller's ports (controllers/environment_ports):
a registry of tags and labels, a planner whose key hashes the spec, pod logs from a dict."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlkube.controllers.environment_ports import Deps, RegistryError, Settings
from mlkube.reconcile.environment_facts import PACKAGES_LABEL

REGISTRY = "127.0.0.1:5000/mlkube"
BUILD_NAMESPACE = "mlkube-system"
BASE = "127.0.0.1:5000/mlkube/serving-sklearn:0.1.0"
BASE_DIGEST = "sha256:" + "b" * 64


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def packages_label(packages: list[str]) -> str:
    return base64.b64encode(gzip.compress(json.dumps(packages).encode())).decode()


@dataclass
class FakeRegistry:
    tags: dict[str, str] = field(default_factory=lambda: {BASE: BASE_DIGEST})
    labels_of: dict[str, dict[str, str]] = field(default_factory=dict)
    down: bool = False
    asked: list[str] = field(default_factory=list)

    def digest(self, reference: str) -> str | None:
        self.asked.append(reference)
        if self.down:
            raise RegistryError("connection refused")
        return self.tags.get(reference)

    def labels(self, reference: str) -> dict[str, str]:
        return dict(self.labels_of.get(reference, {}))

    def push_build(self, key: str, digest: str, packages: list[str]) -> str:
        tag = f"{REGISTRY}/environments:build-{key.split(':')[1][:32]}"
        self.tags[tag] = digest
        self.labels_of[tag] = {PACKAGES_LABEL: packages_label(packages)}
        return tag


class FakePlanner:
    """Key: sha256 of the build spec (without the name) and the base digest; Job and
    ConfigMap named after it in the build namespace, as builders/environment_build does."""

    def key(self, obj: Mapping[str, Any], base_digest: str) -> str:
        spec = dict((obj.get("spec") or {}).get("build") or {})
        return digest_of(json.dumps({"spec": spec, "base": base_digest}, sort_keys=True))

    def objects(
        self, obj: Mapping[str, Any], key: str, base_image: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        name = f"envbuild-{key.split(':')[1][:20]}"
        meta = {
            "name": name,
            "namespace": BUILD_NAMESPACE,
            "labels": {"mlkube.dev/build-key": key.split(":")[1][:63]},
        }
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": dict(meta),
            "spec": {
                "template": {"spec": {"containers": [{"name": "push", "image": "tools"}]}},
                "base": base_image,
            },
        }
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": dict(meta),
            "data": {"build.json": json.dumps({"buildKey": key})},
        }
        return job, config_map


@dataclass
class FakeLogs:
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def __call__(self, namespace: str, pod: str, container: str) -> str:
        return self.logs.get((namespace, pod, container), "")


def fake_deps(
    registry: FakeRegistry | None = None, logs: FakeLogs | None = None, *,
    build_registry: str | None = REGISTRY, curated: dict[str, str] | None = None,
) -> Deps:  # fmt: skip
    return Deps(
        settings=Settings(registry=build_registry, namespace=BUILD_NAMESPACE,
                          curated=curated or {"mlkube-sklearn:0.1.0": BASE}),
        registry=registry or FakeRegistry(), logs=logs or FakeLogs(), planner=FakePlanner(),
    )  # fmt: skip


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
