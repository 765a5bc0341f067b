"""Real helm releases on a real control plane, and what a release leaves in the cluster.

`helm` and `kubectl` are run as a user runs them: from a fresh shell whose PATH finds them
(tools_dir links the built binaries), with KUBECONFIG naming the cluster. What a release owns is
found the way an auditor would look: every listable resource of every API group (kubectl's own
discovery), kept when it carries the release's Helm annotations or labels, or mlkube in its name.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from support.helm import CHART
from support.shell_blocks import clean_env

# Not objects of a release: the record of what happened (they expire on their own).
EVENT_KINDS = {"Event"}
KEEP_POLICY = "helm.sh/resource-policy"


def tools_dir(path: Path, helm: Path, kubectl: Path) -> Path:
    """A bin folder holding `helm` and `kubectl` links, for a user's PATH."""
    path.mkdir(parents=True, exist_ok=True)
    for name, target in (("helm", helm), ("kubectl", kubectl)):
        link = path / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return path


def user_env(tools: Path, kubeconfig: Path, helm_home: Path) -> dict[str, str]:
    """A fresh login's environment with the tools first on PATH and helm's state kept apart."""
    env = clean_env(KUBECONFIG=str(kubeconfig), HELM_CACHE_HOME=str(helm_home / "cache"),
                    HELM_CONFIG_HOME=str(helm_home / "config"),
                    HELM_DATA_HOME=str(helm_home / "data"))  # fmt: skip
    env["PATH"] = f"{tools}:{env['PATH']}"
    return env


def run(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run a tool; fail with its output when it fails."""
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout}{out.stderr}")
    return out.stdout


def all_objects(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every object of every listable resource type the server serves, in every namespace."""
    kinds = run(["kubectl", "api-resources", "--verbs=list", "-o", "name"], env).split()
    listed = json.loads(run(["kubectl", "get", ",".join(kinds), "-A", "-o", "json"], env))
    return [obj for obj in listed["items"] if obj["kind"] not in EVENT_KINDS]


def of_release(obj: dict[str, Any], release: str, namespace: str) -> bool:
    """Whether `obj` is the release's (Helm's annotations, the chart's instance label, Helm's
    release record) or could be any mlkube release's (mlkube in its name)."""
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    helm_owned = (annotations.get("meta.helm.sh/release-name") == release
                  and annotations.get("meta.helm.sh/release-namespace") == namespace)  # fmt: skip
    record = labels.get("owner") == "helm" and labels.get("name") == release
    return (
        helm_owned
        or record
        or labels.get("app.kubernetes.io/instance") == release
        or "mlkube" in meta["name"]
    )


def local_api_service(obj: dict[str, Any]) -> bool:
    """An APIService the API server registers itself for a group it serves (a kept CRD's
    v1alpha1.mlkube.dev): no Service behind it, nobody's release."""
    return obj["kind"] == "APIService" and not (obj.get("spec") or {}).get("service")


def describe(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def kept_crds(helm: Path, env: dict[str, str], values: list[str] = ()) -> set[str]:  # type: ignore[assignment]
    """The CRDs an uninstall must leave: the chart's crds/ folder (Helm never deletes those) and
    templated CRDs whose resource policy says keep. Templated ones without it must go."""
    names = {
        doc["metadata"]["name"]
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    }
    argv = [str(helm), "template", "mlkube", str(CHART)]
    for value in values:
        argv += ["--set", value]
    for doc in yaml.safe_load_all(run(argv, env)):
        annotations = (doc or {}).get("metadata", {}).get("annotations") or {}
        if doc and doc["kind"] == "CustomResourceDefinition" and annotations.get(KEEP_POLICY):
            names.add(doc["metadata"]["name"])
    return names


def leftovers(env: dict[str, str], releases: list[tuple[str, str]], kept: set[str]) -> list[str]:
    """What the uninstalled `releases` (name, namespace) left behind, apart from the CRDs in
    `kept` and the release namespaces themselves (Helm never deletes a namespace)."""
    spared = {("Namespace", ns) for _, ns in releases}
    spared |= {("CustomResourceDefinition", name) for name in kept}
    return sorted(
        describe(obj)
        for obj in all_objects(env)
        if any(of_release(obj, release, ns) for release, ns in releases)
        and (obj["kind"], obj["metadata"]["name"]) not in spared
        and not local_api_service(obj)
    )


def assert_nothing_left(
    env: dict[str, str], releases: list[tuple[str, str]], kept: set[str], timeout: float = 60
) -> None:
    """Wait for the garbage collector (ReplicaSets, Pods, EndpointSlices follow their owners);
    fail naming what is still there."""
    deadline = time.monotonic() + timeout
    while left := leftovers(env, releases, kept):
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind after {timeout:g}s: {left}")
        time.sleep(1)
