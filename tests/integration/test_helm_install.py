"""The chart installed, upgraded and uninstalled by the real helm (hack/helm/build.sh; Helm 4 too
when MLKUBE_HELM4_BIN names one) on a real control plane, as docs/install.md says to.

The lines are read from docs/install.md ("Install, upgrade, uninstall") at test time and run
verbatim, each in a fresh shell whose PATH finds helm and kubectl. Checked after each: `--wait`
returned with the operator Deployment available (kwok runs its pod: Running and Ready); an upgrade
applied its values and kept the webhook certificate (the Secret's data and both configurations'
caBundle unchanged); the uninstall left no object of the release anywhere (every listable
resource is listed), the CRDs kept exactly when their keep policy says so. Then the page's
dry-run lines: the rendered chart, crds/ and the samples pass `kubectl apply --dry-run=server`.
A second release, in another namespace, installs beside a first and both go without a trace.

The control plane is this module's own, not the session's: a release owns cluster-scoped
objects (ClusterRoles, webhook configurations, maybe the CRDs) that the session cluster already
holds without Helm's ownership (the `crds` fixture), and an uninstall may delete CRDs the rest
of the session needs. No Model is written while a release's webhooks are registered: the API
server would call the Service's address, which here routes nowhere on this machine.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.devcluster import Cluster
from mlkube.devcluster.cluster import build_binaries
from mlkube.devcluster.kubectl import kubectl_binary
from mlkube.k8s import Kube
from support.helm import CHART, by_kind, helm_binary, render_chart
from support.helm_release import assert_nothing_left, kept_crds, run, tools_dir, user_env
from support.shell_blocks import command_lines, run_lines

REPO = Path(__file__).resolve().parents[2]
INSTALL_DOC = REPO / "docs" / "install.md"
HEADING = "## Install, upgrade, uninstall"
ADMISSION = "admissionregistration.k8s.io/v1"
CONFIG_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def helm_versions() -> list[tuple[str, Path]]:
    """helm v3 always; Helm 4 when its build is named (c14kstatus builds it for kstatus --wait)."""
    found = [("v3", helm_binary())]
    if os.environ.get("MLKUBE_HELM4_BIN"):
        found.append(("v4", Path(os.environ["MLKUBE_HELM4_BIN"])))
    return found


HELMS = helm_versions()


@pytest.fixture(scope="module")
def helm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    bin_dir = os.environ.get("MLKUBE_CONTROLPLANE_BIN")
    cluster = Cluster(tmp_path_factory.mktemp("helm-cluster"),
                      Path(bin_dir) if bin_dir else build_binaries(), nodes=1)  # fmt: skip
    started = time.monotonic()
    cluster.start()
    print(f"\nhelm's control plane started in {time.monotonic() - started:.1f}s")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def kube(helm_cluster: Cluster) -> Kube:
    return Kube(str(helm_cluster.kubeconfig))


def shell_env(helm: Path, cluster: Cluster, tmp: Path) -> dict[str, str]:
    tools = tools_dir(tmp / "bin", helm, kubectl_binary())
    return user_env(tools, cluster.kubeconfig, tmp / "helm-home")


def doc_lines(heading: str, nth: int = 0) -> list[str]:
    """The command lines of the `nth` sh block in the section `heading` of docs/install.md."""
    section = INSTALL_DOC.read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```sh")[1:]]
    return command_lines(blocks[nth])


def run_line(line: str, env: dict[str, str], tmp: Path) -> str:
    """One documented line, verbatim, in a fresh non-interactive bash from the repo root."""
    (result,) = run_lines([line], REPO, env, timeout=600, script=tmp / "line.sh")
    assert result.status == 0, f"$ {line}\n(exit {result.status})\n{result.output[-3000:]}"
    return result.output


def labelled(kube: Kube, api: str, kind: str, release: str, namespace: str | None) -> list[Any]:
    """The release's objects of a kind (the chart's instance label)."""
    return kube.list(api, kind, namespace, label_selector=f"app.kubernetes.io/instance={release}")


def operator_deployment(kube: Kube, release: str, namespace: str) -> dict[str, Any]:
    (deployment,) = labelled(kube, "apps/v1", "Deployment", release, namespace)
    return deployment


def available(deployment: dict[str, Any]) -> bool:
    status = deployment.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return (
        conditions.get("Available") == "True"
        and status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == deployment["spec"]["replicas"]
        and status.get("readyReplicas") == deployment["spec"]["replicas"]
    )


def webhook_certificate(kube: Kube, release: str, namespace: str) -> dict[str, Any]:
    """The serving certificate's Secret data and every caBundle the release's webhook
    configurations carry: what an upgrade must not change."""
    (secret,) = [s for s in labelled(kube, "v1", "Secret", release, namespace)
                 if s.get("type") == "kubernetes.io/tls"]  # fmt: skip
    bundles = {}
    for kind in CONFIG_KINDS:
        for config in labelled(kube, ADMISSION, kind, release, None):
            meta = config["metadata"]
            if (meta.get("annotations") or {}).get("meta.helm.sh/release-namespace") != namespace:
                continue
            for hook in config["webhooks"]:
                bundles[f"{kind}/{meta['name']}/{hook['name']}"] = hook["clientConfig"]["caBundle"]
    assert len(bundles) >= 2, f"the release's webhooks: {sorted(bundles)}"
    return {"data": secret["data"], "caBundles": bundles}


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


@pytest.mark.parametrize(("version", "helm"), HELMS, ids=[v for v, _ in HELMS])
def test_documented_install_upgrade_uninstall(
    version: str, helm: Path, helm_cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    env = shell_env(helm, helm_cluster, tmp_path)
    assert f"{version}." in run(["helm", "version", "--short"], env)
    install, upgrade, uninstall = doc_lines(HEADING)
    release, namespace = install.split()[2], "mlkube-system"
    assert f"--namespace {namespace}" in install

    # 1. Install: --wait returns with the operator available and the webhooks' CA in place.
    started = time.monotonic()
    run_line(install, env, tmp_path)
    print(f"helm {version} install --wait: {time.monotonic() - started:.1f}s")
    deployment = operator_deployment(kube, release, namespace)
    assert available(deployment), deployment.get("status")
    first = webhook_certificate(kube, release, namespace)
    ca = first["data"]["ca.crt"]
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")
    assert set(first["caBundles"].values()) == {ca}

    # 2. Upgrade with changed values: applied and rolled out; the certificate does not churn.
    started = time.monotonic()
    run_line(upgrade, env, tmp_path)
    print(f"helm {version} upgrade --wait: {time.monotonic() - started:.1f}s")
    upgraded = operator_deployment(kube, release, namespace)
    assert "logLevel=debug" in upgrade and env_of(upgraded)["MLKUBE_LOG_LEVEL"] == "debug"
    assert upgraded["metadata"]["generation"] > deployment["metadata"]["generation"]
    assert available(upgraded), upgraded.get("status")
    assert webhook_certificate(kube, release, namespace) == first, "upgrade rotated the cert"
    # A second upgrade (another value) keeps it too.
    run(["helm", "upgrade", release, str(CHART), "--namespace", namespace, "--reuse-values",
         "--set", "resources.limits.memory=640Mi", "--wait"], env)  # fmt: skip
    assert webhook_certificate(kube, release, namespace) == first, "2nd upgrade rotated the cert"

    # 3. Uninstall: nothing of the release anywhere; CRDs kept exactly by their keep policy.
    run_line(uninstall, env, tmp_path)
    kept = kept_crds(helm, env)
    assert_nothing_left(env, [(release, namespace)], kept)
    crds = {c["metadata"]["name"] for c in kube.list("apiextensions.k8s.io/v1",
                                                      "CustomResourceDefinition")}  # fmt: skip
    assert kept <= crds, f"CRDs the keep policy keeps are gone: {sorted(kept - crds)}"

    # 4. The page's dry-run lines, verbatim: namespace and CRDs are there, webhooks are not.
    for line in doc_lines(HEADING, nth=1):
        output = run_line(line, env, tmp_path)
        assert "(server dry run)" in output, output


def test_a_second_release_in_another_namespace(
    helm_cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    """Two releases side by side, as two teams would run them: each in its own namespace,
    watching its own (disjoint) namespaces; the first owns the CRDs (release mlkube in
    mlkube-system, as documented: it takes back CRDs an earlier uninstall kept), the second
    leaves them to it (crds.install=false). Both install and become available, each has its
    own webhook certificate and configurations, and both uninstall without a trace."""
    env = shell_env(helm_binary(), helm_cluster, tmp_path)
    releases = {
        ("mlkube", "mlkube-system"): ["watchNamespaces={team-a}"],
        ("team-b", "team-b-system"): ["crds.install=false", "watchNamespaces={team-b}"],
    }
    for namespace in ("team-a", "team-b"):
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for (release, namespace), values in releases.items():
        argv = ["helm", "install", release, str(CHART), "--namespace", namespace,
                "--create-namespace", "--wait"]  # fmt: skip
        for value in values:
            argv += ["--set", value]
        run(argv, env)
    certificates = []
    for release, namespace in releases:
        assert available(operator_deployment(kube, release, namespace))
        certificates.append(webhook_certificate(kube, release, namespace))
    assert certificates[0] != certificates[1]  # neither took the other's
    for release, namespace in releases:
        run(["helm", "uninstall", release, "--namespace", namespace, "--wait"], env)
    assert_nothing_left(env, list(releases), kept_crds(helm_binary(), env))


def test_extra_env_reaches_the_operator_container() -> None:
    """How a store's endpoint and credentials (from a Secret) reach the operator: the e2e tier
    installs the operator pod with exactly these values (tests/e2e/test_operator_pod.py)."""
    objects = render_chart(helm_binary(), "ops", [
        "extraEnv[0].name=MLKUBE_S3_ENDPOINT_URL", "extraEnv[0].value=http://10.86.0.1:9000",
        "extraEnvFrom[0].secretRef.name=store-credentials",
    ])  # fmt: skip
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "MLKUBE_S3_ENDPOINT_URL", "value": "http://10.86.0.1:9000"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "store-credentials"}}]
    (default,) = by_kind(render_chart(helm_binary(), "ops"), "Deployment")
    assert "envFrom" not in default["spec"]["template"]["spec"]["containers"][0]


VARIATIONS = {
    "defaults": [],
    "watch-namespaces": ["watchNamespaces={dry-a,dry-b}"],
    "settings": ["logLevel=debug", "artifacts.stores.dry-a={s3://models/a}",
                 "podNetworks={10.88.0.0/16}", "extraEnvFrom[0].secretRef.name=store-credentials",
                 "monitoring.labels.release=kube-prometheus-stack"],
}  # fmt: skip


@pytest.mark.parametrize("values", VARIATIONS.values(), ids=VARIATIONS.keys())
def test_rendered_variations_pass_server_dry_run(
    values: list[str], helm_cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    """`helm template --include-crds` with value variations, every object validated and admitted
    by the API server (`kubectl apply --dry-run=server`), nothing stored."""
    env = shell_env(helm_binary(), helm_cluster, tmp_path)
    for namespace in ("dry-ops", "dry-a", "dry-b"):
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    argv = ["helm", "template", "dry", str(CHART), "--namespace", "dry-ops", "--include-crds"]
    for value in values:
        argv += ["--set", value]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(run(argv, env))
    output = run(["kubectl", "apply", "--dry-run=server", "-f", str(rendered)], env)
    lines = output.splitlines()
    assert lines and all(line.endswith("(server dry run)") for line in lines), output
    assert any(line.startswith("deployment.apps/") for line in lines), output
    assert not labelled(kube, "apps/v1", "Deployment", "dry", "dry-ops")  # nothing stored
