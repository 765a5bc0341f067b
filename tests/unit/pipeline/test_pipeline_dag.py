"""The step graph: problems named, levels, run order, closures (examples and properties)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlkube.reconcile.pipeline_dag import (
    DagError,
    ancestors,
    dag_problems,
    dependents,
    find_cycle,
    graph_of,
    topological_levels,
    topological_order,
)
from support.pipeline_specs import consumer, container, pipeline


def test_graph_of_adds_referenced_steps_to_depends_on() -> None:
    spec = pipeline(
        container("prep", outputs=[{"name": "out"}]),
        container("lint"),
        consumer("train", "prep", dependsOn=["lint"]),
    )
    assert graph_of(spec.steps) == {"prep": (), "lint": (), "train": ("lint", "prep")}


def test_diamond_levels_and_order() -> None:
    graph = {"a": [], "b": ["a"], "c": ["a"], "d": ["c", "b"]}
    assert topological_levels(graph) == [["a"], ["b", "c"], ["d"]]
    assert topological_order(graph) == ["a", "b", "c", "d"]


def test_level_is_the_longest_path_not_the_shortest() -> None:
    graph = {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"]}
    assert topological_levels(graph) == [["a"], ["b"], ["c"], ["d"]]


def test_problems_name_unknown_and_self_dependencies_and_the_cycle() -> None:
    graph = {"a": ["ghost"], "b": ["b"], "c": ["d"], "d": ["e"], "e": ["c"]}
    assert dag_problems(graph) == [
        "step a depends on unknown step ghost",
        "step b depends on itself",
        "dependency cycle: c -> d -> e -> c",
    ]
    with pytest.raises(DagError, match="dependency cycle: c -> d -> e -> c"):
        topological_levels(graph)


def test_a_valid_graph_has_no_problems() -> None:
    assert dag_problems({"a": [], "b": ["a"]}) == []
    assert find_cycle({"a": [], "b": ["a"]}) is None


def test_a_200_step_chain_needs_no_recursion() -> None:
    names = [f"s{i:03d}" for i in range(200)]
    graph = {n: [names[i - 1]] if i else [] for i, n in enumerate(names)}
    assert topological_order(graph) == names
    cyclic = {**graph, "s000": ["s199"]}
    cycle = find_cycle(cyclic)
    assert cycle is not None and len(cycle) == 201 and cycle[0] == cycle[-1]


def test_closures() -> None:
    graph = {"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": []}
    assert ancestors(graph, "c") == {"a", "b"}
    assert dependents(graph, ["b"]) == {"c"}
    assert dependents(graph, ["a"]) == {"b", "c", "d"}
    assert dependents(graph, ["a", "b"]) == {"c", "d"}


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A random DAG: step i may depend only on steps before it; names shuffled so the
    order of the names says nothing about the order of the graph."""
    size = draw(st.integers(1, 12))
    names = draw(st.permutations([f"s{i}" for i in range(size)]))
    return {names[i]: [names[j] for j in range(i) if draw(st.booleans())] for i in range(size)}


@given(dags())
def test_levels_are_longest_paths_and_order_respects_every_edge(
    graph: dict[str, list[str]],
) -> None:
    levels = topological_levels(graph)
    level = {n: i for i, names in enumerate(levels) for n in names}
    assert sorted(level) == sorted(graph)  # every step exactly once
    assert all(names == sorted(names) and names for names in levels)
    for name, deps in graph.items():
        assert level[name] == (1 + max(level[d] for d in deps) if deps else 0)
    order = topological_order(graph)
    position = {n: i for i, n in enumerate(order)}
    assert all(position[d] < position[n] for n, deps in graph.items() for d in deps)


@given(dags(), st.data())
def test_a_back_edge_makes_a_named_cycle_of_real_edges(
    graph: dict[str, list[str]], data: st.DataObject
) -> None:
    order = topological_order(graph)
    assert find_cycle(graph) is None
    if len(order) < 2:
        return
    low = data.draw(st.integers(0, len(order) - 2))
    high = data.draw(st.integers(low + 1, len(order) - 1))
    # order[high] reachable from order[low]? Make it so, then close the loop.
    cyclic = {n: list(d) for n, d in graph.items()}
    cyclic[order[high]].append(order[low])
    cyclic[order[low]].append(order[high])
    cycle = find_cycle(cyclic)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert all(b in cyclic[a] for a, b in itertools.pairwise(cycle))
    assert any("dependency cycle" in p for p in dag_problems(cyclic))


@given(dags())
def test_ancestors_and_dependents_are_mirror_images(graph: dict[str, list[str]]) -> None:
    for a in graph:
        below = dependents(graph, [a])
        for b in graph:
            assert (b in below) == (a in ancestors(graph, b))
