"""kubectl is built from its own Go module (hack/kubectl) so that adding it never rebuilds the
control plane; it must still pin the very Kubernetes version the control plane and the real
node are built from, or `kubectl version` would show a skew again (issue 18)."""

import re
from pathlib import Path

HACK = Path(__file__).resolve().parents[3] / "hack"


def kubernetes_version(go_mod: Path) -> str:
    found = re.search(r"^require k8s\.io/kubernetes (v\S+)$", go_mod.read_text(), re.M)
    assert found, f"{go_mod} does not require k8s.io/kubernetes"
    return found.group(1)


def staging_pins(go_mod: Path) -> set[str]:
    return set(re.findall(r"^\s*(k8s\.io/\S+ => k8s\.io/\S+ v\S+)$", go_mod.read_text(), re.M))


def test_kubectl_pins_the_control_planes_kubernetes():
    control_plane = HACK / "controlplane" / "kubernetes" / "go.mod"
    kubectl = HACK / "kubectl" / "go.mod"
    assert kubernetes_version(kubectl) == kubernetes_version(control_plane)
    assert kubernetes_version(HACK / "node" / "kubernetes" / "go.mod") == kubernetes_version(
        control_plane
    )
    # The staging modules too: kubectl's client libraries are the control plane's.
    assert staging_pins(control_plane) <= staging_pins(kubectl)


def test_kubectl_cache_key_is_its_own():
    """The control plane's key must not hash hack/kubectl (a kubectl change would rebuild it)."""
    assert "kubectl" not in (HACK / "controlplane" / "build.sh").read_text()
    assert "kubectl" not in (HACK / "node" / "build.sh").read_text()
    script = (HACK / "kubectl" / "build.sh").read_text()
    assert 'gobuild_bin kubectl "$here" build.sh go.mod go.sum tools.go' in script
