"""dist/install.yaml: rendered from the chart by hack/dist-manifest (hack/generate writes it,
hack/verify diffs it), the same on every render, and safe to publish (no private key)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlkube.api.kinds import KINDS
from support.helm import REPO, helm_binary

DIST = REPO / "dist" / "install.yaml"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}  # fmt: skip


def render(out: Path) -> str:
    env = {**os.environ, "MLKUBE_HELM_BIN": str(helm_binary())}
    subprocess.run([str(REPO / "hack" / "dist-manifest"), str(out)], env=env, check=True)
    return out.read_text()


def test_committed_manifest_is_the_chart_rendered_and_stable(tmp_path: Path) -> None:
    first = render(tmp_path / "a.yaml")
    assert first == render(tmp_path / "b.yaml")  # no generated certificate: nothing random
    assert DIST.read_text() == first, "dist/install.yaml is stale: run hack/generate"


def test_manifest_contents() -> None:
    objects: list[dict[str, Any]] = [d for d in yaml.safe_load_all(DIST.read_text()) if d]
    assert objects[0] == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "mlkube-system", "labels": {
            "app.kubernetes.io/part-of": "mlkube",
            "pod-security.kubernetes.io/enforce": "restricted"}},
    }  # fmt: skip
    kinds = [obj["kind"] for obj in objects]
    assert "Secret" not in kinds and "PRIVATE KEY" not in DIST.read_text()
    assert kinds.count("CustomResourceDefinition") == len(KINDS) and kinds.count("Certificate") == 2
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "mlkube-system", obj["metadata"]
    (deployment,) = [obj for obj in objects if obj["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "mlkube-operator"
