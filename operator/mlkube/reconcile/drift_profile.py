"""Restrict a baseline profile to the features a deployment monitors (`drift.features`).

The sidecar gets the same list (`MLKUBE_DRIFT_FEATURES`) and restricts its copy with
`mlkube_serving.drift.profile.select_features`; both must build the identical document, or the
profile digests differ and the operator skips every summary. A test holds the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class DriftProfileError(ValueError):
    """The requested feature selection keeps no feature of the profile."""


def select_features(profile: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The profile with only the features in `names` (all of them when `names` is empty)."""
    wanted = {n for n in names if n}
    if not wanted:
        return dict(profile)
    kept = [f for f in profile["features"] if f["name"] in wanted]
    if not kept:
        raise DriftProfileError(f"none of the features {sorted(wanted)} is in the drift profile")
    return {**profile, "features": kept}


def unknown_features(profile: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """Requested names the profile does not track (reported, not fatal)."""
    known = {str(f["name"]) for f in profile["features"]}
    return sorted({n for n in names if n and n not in known})
