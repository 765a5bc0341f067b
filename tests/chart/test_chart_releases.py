"""Two releases of the chart (issue 14: a second release failed on `ClusterRole
"mlkube-operator" … invalid ownership metadata`): no object of one has the name of an object of
the other, cluster-scoped ones included, and each binds and calls only its own objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.api.kinds import KINDS
from support.helm import by_kind, helm_binary, render_chart


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def identities(objects: list[dict[str, Any]]) -> set[tuple[str, str | None, str]]:
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}


def test_a_second_release_shares_no_object_with_the_first(helm: Path) -> None:
    first = render_chart(helm, "mlkube-system", ["watchNamespaces={team-a}"])
    second = render_chart(
        helm, "team-b-system", ["crds.install=false", "watchNamespaces={team-b}"], release="team-b"
    )
    assert identities(first) & identities(second) == set()
    assert len(by_kind(first, "CustomResourceDefinition")) == len(KINDS)
    assert not by_kind(second, "CustomResourceDefinition")  # the first release owns them
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                      "ValidatingWebhookConfiguration"}  # fmt: skip
    for obj in second:
        if obj["kind"] in cluster_scoped:
            assert obj["metadata"]["name"].startswith("team-b-mlkube"), obj["metadata"]["name"]
    roles = {r["metadata"]["name"] for r in by_kind(second, "ClusterRole")}
    for binding in by_kind(second, "ClusterRoleBinding") + by_kind(second, "RoleBinding"):
        assert binding["roleRef"]["name"] in roles
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "team-b-mlkube-operator",
                                        "namespace": "team-b-system"}]  # fmt: skip
    (service,) = by_kind(second, "Service")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (config,) = by_kind(second, kind)
        ref = config["webhooks"][0]["clientConfig"]["service"]
        assert (ref["namespace"], ref["name"]) == ("team-b-system", service["metadata"]["name"])
