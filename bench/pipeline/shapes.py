"""The benchmark's pipelines (pure): the same DAGs for both controllers, and the statistics."""

from __future__ import annotations

import math

Dag = dict[str, list[str]]  # step name → the steps it depends on (insertion = topological order)


def chain(n: int) -> Dag:
    """s00 → s01 → ... : each step starts only when the one before it has finished, so every
    gap between them is the controller's doing."""
    names = [f"s{i:02d}" for i in range(n)]
    return {name: names[i - 1 : i] for i, name in enumerate(names)}


def lattice(layers: int, width: int) -> Dag:
    """`layers` x `width` steps; a step depends on two of the layer before it (j and j+1), so
    the DAG has fan-in, fan-out and a critical path of `layers` steps (10 x 5 = 50 steps)."""
    dag: Dag = {}
    for layer in range(layers):
        for j in range(width):
            deps = (
                []
                if layer == 0
                else sorted({f"l{layer - 1:02d}w{j}", f"l{layer - 1:02d}w{(j + 1) % width}"})
            )
            dag[f"l{layer:02d}w{j}"] = deps
    return dag


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
