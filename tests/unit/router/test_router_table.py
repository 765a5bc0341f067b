"""Routing table: cumulative weights, bisect choice with an injected random source, mirrors."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube_serving._http.client import PoolRegistry
from mlkube_serving.router.config import parse_config
from mlkube_serving.router.table import RoutingTable, build_cumulative


def table(traffic: dict[str, int], mirror: dict[str, int] | None = None) -> RoutingTable:
    names = set(traffic) | set(mirror or {}) | {"blue"}
    doc: dict[str, Any] = {
        "version": 1,
        "endpoint": "e",
        "deployments": {n: {"url": f"http://{n}.ns.svc:8080"} for n in names},
        "traffic": traffic,
        "mirror": mirror or {},
    }
    return RoutingTable(parse_config(doc), PoolRegistry())


def test_cumulative_weights_skip_zero_and_keep_sorted_order() -> None:
    names, cumulative = build_cumulative({"green": 30, "blue": 70, "red": 0})
    assert (names, cumulative) == (["blue", "green"], [70.0, 100.0])
    assert build_cumulative({}) == ([], [])


def test_choice_boundaries_follow_the_weights() -> None:
    t = table({"blue": 70, "green": 30})
    picks = {r: t.choose(r) for r in (0.0, 0.3, 0.6999, 0.7, 0.85, 0.999999)}
    assert {r: p.name for r, p in picks.items() if p} == {
        0.0: "blue",
        0.3: "blue",
        0.6999: "blue",
        0.7: "green",
        0.85: "green",
        0.999999: "green",
    }


def test_no_live_traffic_means_no_choice() -> None:
    assert table({"blue": 0}).choose(0.5) is None


def test_host_header_omits_default_port() -> None:
    t = table({"blue": 100})
    assert t.routes["blue"].host_line == b"host: blue.ns.svc:8080\r\n"


@settings(max_examples=150, deadline=None)
@given(
    weights=st.lists(st.integers(0, 100), min_size=1, max_size=6).filter(lambda w: sum(w) > 0),
    rand=st.floats(0.0, 1.0, exclude_max=True),
)
def test_choice_lands_in_the_interval_of_the_random_number(weights: list[int], rand: float) -> None:
    total = sum(weights)
    scaled = [w * 100 // total for w in weights]
    scaled[max(range(len(scaled)), key=lambda i: scaled[i])] += 100 - sum(scaled)
    traffic = {f"d{i}": w for i, w in enumerate(scaled)}
    chosen = table(traffic).choose(rand)
    assert chosen is not None
    low = 0
    for name in sorted(traffic):
        high = low + traffic[name]
        if traffic[name] and low <= rand * 100 < high:
            assert chosen.name == name
        low = high
    assert traffic[chosen.name] > 0


def test_evenly_spread_random_numbers_give_exact_proportions() -> None:
    t = table({"blue": 70, "green": 20, "red": 10})
    counts = Counter(t.choose(i / 1000).name for i in range(1000))  # type: ignore[union-attr]
    assert counts == {"blue": 700, "green": 200, "red": 100}


def test_failover_choice_excludes_failed_deployments() -> None:
    t = table({"blue": 50, "green": 30, "red": 20})
    assert {t.choose_excluding(r / 10, ["blue"]).name for r in range(10)} == {"green", "red"}  # type: ignore[union-attr]
    assert t.choose_excluding(0.5, ["blue", "green", "red"]) is None


def test_mirrors_use_their_own_draw_and_never_copy_to_the_live_deployment() -> None:
    t = table({"blue": 100}, mirror={"green": 10, "red": 50})
    draws = iter([0.05, 0.6])  # green: 0.05 < 0.10 yes; red: 0.6 < 0.5 no
    assert [r.name for r in t.pick_mirrors("blue", lambda: next(draws))] == ["green"]
    assert [r.name for r in t.pick_mirrors("green", lambda: 0.0)] == ["red"]
