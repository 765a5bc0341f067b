"""The step graph of a Pipeline (pure): checks, topological levels, ancestors and dependents.

A graph here is a plain mapping step name → names it depends on (`graph_of` builds it from the
steps: `dependsOn` plus every step their inputs and built-in blocks reference), so the CLI's DAG
view, the run planner (reconcile/pipeline_plan.py) and the tests share one representation.
The pydantic spec already refuses cycles and unknown references (api/pipeline_refs.py); these
checks repeat them on the graph because a snapshot is read back from a ConfigMap and the planner
must never loop on a graph it was not meant to see.

    dag_problems(graph) -> list[str]          unknown dependencies, self-dependencies, a cycle
    find_cycle(graph) -> list[str] | None     one cycle, first name repeated last
    topological_levels(graph) -> list[list[str]]   level = longest path from a root, names sorted
    topological_order(graph) -> list[str]     levels flattened (a valid run order)
    ancestors(graph, name) / dependents(graph, names)   transitive closures
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

Graph = Mapping[str, Sequence[str]]


class DagError(ValueError):
    """The graph has unknown dependencies or a cycle (the message names them)."""


class _HasDependencies(Protocol):
    @property
    def name(self) -> str: ...

    def dependencies(self) -> list[str]: ...


def graph_of(steps: Iterable[_HasDependencies]) -> dict[str, tuple[str, ...]]:
    """name → sorted dependencies (dependsOn plus referenced steps) of each step."""
    return {step.name: tuple(step.dependencies()) for step in steps}


def find_cycle(graph: Graph) -> list[str] | None:
    """One dependency cycle as names with the first repeated last (e.g. [a, b, a]), or None.
    Unknown names are ignored; the search starts from names in sorted order, so the cycle
    named is the same every time."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in sorted(graph):
        if root in state:
            continue
        # Iterative depth-first search: 200 steps in a chain must not hit the recursion limit.
        path: list[str] = [root]
        todo: list[list[str]] = [sorted(set(graph[root]))]
        state[root] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            dep = todo[-1].pop(0)
            if dep not in graph or state.get(dep) == 2:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            state[dep] = 1
            path.append(dep)
            todo.append(sorted(set(graph[dep])))
    return None


def dag_problems(graph: Graph) -> list[str]:
    """Every problem of the graph as a message: unknown or self dependencies, then a cycle."""
    problems = []
    for name in sorted(graph):
        for dep in sorted(set(graph[name])):
            if dep == name:
                problems.append(f"step {name} depends on itself")
            elif dep not in graph:
                problems.append(f"step {name} depends on unknown step {dep}")
    cycle = find_cycle({n: [d for d in deps if d != n] for n, deps in graph.items()})
    if cycle:
        problems.append("dependency cycle: " + " -> ".join(cycle))
    return problems


def topological_levels(graph: Graph) -> list[list[str]]:
    """Steps grouped by level: a root is level 0, a step one more than its deepest dependency.
    Every step of a level can run once the levels before it are done. Raises DagError."""
    problems = dag_problems(graph)
    if problems:
        raise DagError("; ".join(problems))
    level: dict[str, int] = {}
    remaining = {name: set(deps) for name, deps in graph.items()}
    current = sorted(name for name, deps in remaining.items() if not deps)
    depth = 0
    children: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in set(deps):
            children[dep].append(name)
    while current:
        nxt = []
        for name in current:
            level[name] = depth
            for child in children[name]:
                remaining[child].discard(name)
                if not remaining[child]:
                    nxt.append(child)
        current, depth = sorted(nxt), depth + 1
    return [sorted(n for n, d in level.items() if d == i) for i in range(depth)]


def topological_order(graph: Graph) -> list[str]:
    """A run order: every step after all of its dependencies (levels, names sorted in each)."""
    return [name for level in topological_levels(graph) for name in level]


def ancestors(graph: Graph, name: str) -> set[str]:
    """Every step `name` depends on, directly or not (unknown names are skipped)."""
    seen: set[str] = set()
    todo = list(graph.get(name, ()))
    while todo:
        dep = todo.pop()
        if dep in seen or dep not in graph:
            continue
        seen.add(dep)
        todo.extend(graph[dep])
    seen.discard(name)
    return seen


def dependents(graph: Graph, names: Iterable[str]) -> set[str]:
    """Every step that depends, directly or not, on one of `names` (the names not included)."""
    children: dict[str, list[str]] = {}
    for child, deps in graph.items():
        for dep in deps:
            children.setdefault(dep, []).append(child)
    start = set(names)
    seen: set[str] = set()
    todo = [c for n in start for c in children.get(n, ())]
    while todo:
        child = todo.pop()
        if child in seen:
            continue
        seen.add(child)
        todo.extend(children.get(child, ()))
    return seen - start
