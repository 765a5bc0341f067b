"""The router config revision: unchanged content keeps it, changed content gets previous + 1, a
new ConfigMap starts at the Unix time (above any revision a deleted one could have reached)."""

from __future__ import annotations

import json
from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import build_router_config, render_router_config
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.router_revision import config_revision, derive_revision

NOW = 1_796_000_000.7


def file_of(doc: dict[str, Any]) -> str:
    return render_router_config(doc)


def test_derivation_from_the_live_configmap(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    spec: OnlineEndpointSpec = make_spec(traffic={"blue": 70, "green": 30})
    desired = build_router_config(owner, spec, config, 0)
    # No ConfigMap yet: the Unix time (seconds).
    assert derive_revision(None, desired, NOW) == 1_796_000_000
    # Unchanged content keeps its revision, whatever the clock says.
    live = file_of(build_router_config(owner, spec, config, 41))
    assert derive_revision(live, desired, NOW) == 41
    assert derive_revision(live, desired, NOW + 10_000) == 41
    # Changed content: previous + 1 (the clock is not used).
    moved = build_router_config(owner, make_spec(traffic={"blue": 0, "green": 100}), config, 0)
    assert derive_revision(live, moved, NOW) == 42
    # The desired document's own revision never matters.
    assert derive_revision(live, {**desired, "revision": 7}, NOW) == 41


def test_a_configmap_without_a_usable_revision_starts_at_the_clock(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    desired = build_router_config(owner, make_spec(), config, 0)
    older_operator = json.dumps({k: v for k, v in desired.items() if k != "revision"})
    for text in (
        older_operator,
        "",
        "not json",
        "[1, 2]",
        json.dumps({**desired, "revision": -3}),
        json.dumps({**desired, "revision": True}),
        json.dumps({**desired, "revision": "9"}),
    ):
        assert derive_revision(text, desired, NOW) == 1_796_000_000, text
    assert derive_revision(None, desired, 0.0) == 1  # never 0: the router's "no revision"


def test_revisions_only_grow_over_a_sequence_of_changes(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    live: str | None = None
    seen = []
    for weight in (10, 10, 50, 50, 100, 10):
        spec = make_spec(traffic={"blue": 100 - weight, "green": weight})
        revision = derive_revision(live, build_router_config(owner, spec, config, 0), NOW)
        live = file_of(build_router_config(owner, spec, config, revision))
        assert config_revision(live) == revision
        seen.append(revision)
    base = 1_796_000_000
    assert seen == [base, base, base + 1, base + 1, base + 2, base + 3]
