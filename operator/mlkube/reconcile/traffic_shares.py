"""Integer traffic shares that sum to exactly 100 (pure), shared by every writer of a split.

The CRD's CEL rule wants spec.traffic to sum to 100, and the router and the Gateway API take
integer weights; a pipeline's canary (builders/pipeline_deploy) and a rollout's step
(reconcile/rollout_split) both give one deployment a weight and scale the others around it, so
they share this one rounding: largest remainder, ties in name order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def scaled_traffic(traffic: Mapping[str, int], deployment: str, weight: int) -> dict[str, int]:
    """`traffic` with `deployment` at `weight` and the other weights scaled to 100 - weight.

    Integer shares by largest remainder (ties: name order), so the sum is exactly 100. With no
    other live traffic the new deployment takes 100 (nothing else could carry the rest).
    """
    others = {k: int(v) for k, v in traffic.items() if k != deployment}
    total = sum(others.values())
    if total <= 0:
        return {**dict.fromkeys(others, 0), deployment: 100}
    room = 100 - weight
    exact = {k: v * room / total for k, v in others.items()}
    shares = {k: math.floor(x) for k, x in exact.items()}
    left = room - sum(shares.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - shares[k]), k))[:left]:
        shares[key] += 1
    return {**shares, deployment: weight}
