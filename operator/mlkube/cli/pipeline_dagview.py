"""The DAG view of `mlkube pipeline show` and `runs show`: steps by topological level.

Pure. The levels come from reconcile/pipeline_dag.py (the planner's own graph), so what the
CLI draws is the order the operator runs. Two parts, both readable in 80 columns:

    flow:  train → evaluate → register → deploy        (a level of several: {a, b})
    1  train
    2  evaluate     ← train
    3  register     ← evaluate, train

The flow line is wrapped at the arrows; a step's dependency list is cut with `…` when long.
With a run's status each level line also carries the step's phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from mlkube.reconcile.pipeline_dag import DagError, Graph, topological_levels

WIDTH: Final = 80
ARROW: Final = " → "


def flow_lines(levels: Sequence[Sequence[str]], width: int = WIDTH) -> list[str]:
    """`a → {b, c} → d`, wrapped before an arrow so no line passes `width`."""
    parts = [names[0] if len(names) == 1 else "{" + ", ".join(names) + "}" for names in levels]
    lines: list[str] = []
    current = ""
    for part in parts:
        piece = part if not current else ARROW + part
        if current and len(current) + len(piece) > width:
            lines.append(current)
            current = "  " + ARROW.lstrip() + part  # a continuation starts with the arrow
        else:
            current += piece
    if current:
        lines.append(current)
    return lines


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


def level_lines(
    graph: Graph,
    levels: Sequence[Sequence[str]],
    phases: Mapping[str, str] | None = None,
    width: int = WIDTH,
) -> list[str]:
    """One line per step: level number, name, phase (with a run), `← dependencies`."""
    names = [n for level in levels for n in level]
    name_width = max((len(n) for n in names), default=0)
    phase_width = max((len(p) for p in (phases or {}).values()), default=0)
    lines = []
    for depth, level in enumerate(levels, start=1):
        for name in level:
            head = f"{depth:>2}  {name:<{name_width}}"
            if phases is not None:
                head += f"  {phases.get(name, 'Pending'):<{phase_width}}"
            deps = sorted(set(graph.get(name, ())))
            if deps:
                room = width - len(head) - 4
                head += "  ← " + _cut(", ".join(deps), room)
            lines.append(head.rstrip())
    return lines


def render_dag(
    graph: Graph, phases: Mapping[str, str] | None = None, width: int = WIDTH
) -> list[str]:
    """The whole view (flow, then levels); a graph with a cycle or unknown step says why."""
    try:
        levels = topological_levels(graph)
    except DagError as err:
        return [f"(no DAG view: {err})"]
    count = len(levels)
    head = f"DAG ({len(graph)} steps, {count} level{'s' if count != 1 else ''}):"
    return [head, *("  " + line for line in flow_lines(levels, width - 2)),
            *("  " + line for line in level_lines(graph, levels, phases, width - 2))]  # fmt: skip
