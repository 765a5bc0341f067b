"""`drift.features`: the sidecar and the operator restrict the profile identically, so the
restricted sidecar's summaries merge against the operator's restricted copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.reconcile import drift_profile as operator_side
from mlkube.reconcile.drift_merge import merge_summaries, profile_digest
from mlkube_serving.drift import synthetic
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.errors import ProfileError
from mlkube_serving.drift.profile import (
    resolve_profile_path,
    select_features,
    write_profile,
)


@pytest.mark.parametrize(
    "names",
    [[], ["x0", "x1", "c0"], ["c3", "x0"], ["x0", "not-profiled"], ["x0", "", "x0"]],
)
def test_both_sides_build_the_same_document(profile: dict[str, Any], names: list[str]) -> None:
    sidecar = select_features(profile, names)
    operator = operator_side.select_features(profile, names)
    assert sidecar == operator
    assert profile_digest(sidecar) == profile_digest(operator)
    kept = [f["name"] for f in sidecar["features"]]
    assert kept == [f["name"] for f in profile["features"] if not names or f["name"] in names]
    assert sidecar["columns"] == profile["columns"]  # rows sent positionally still line up


def test_unknown_and_empty_selections(profile: dict[str, Any]) -> None:
    assert operator_side.unknown_features(profile, ["x0", "zz", "aa"]) == ["aa", "zz"]
    with pytest.raises(ProfileError):
        select_features(profile, ["zz"])
    with pytest.raises(operator_side.DriftProfileError):
        operator_side.select_features(profile, ["zz"])


def test_restricted_summaries_merge_and_judge_only_the_selection(profile: dict[str, Any]) -> None:
    names = ["x0", "x1", "x2", "x3"]
    restricted = select_features(profile, names)
    engine = DriftEngine(restricted)
    cols = synthetic.make_columns(1000, seed=3, shift={"x0": 1.0, "x1": 2.0, "x2": 0.5})
    for payload in synthetic.to_payloads(cols, 250):
        engine.ingest(payload)
    merged = merge_summaries(
        [engine.evaluate(now="t")], operator_side.select_features(profile, names)
    )
    assert merged["skippedSummaries"] == 0
    assert [f["name"] for f in merged["features"]] == names
    assert merged["datasetDrift"]["evaluatedFeatures"] == 4
    assert merged["datasetDrift"]["detected"] is True  # 3 of 4 shifted
    # The unrestricted profile has another digest: such a summary is skipped, never misread.
    assert profile_digest(profile) != merged["profileDigest"]


def test_a_directory_resolves_to_its_single_profile(
    profile: dict[str, Any], tmp_path: Path
) -> None:
    write_profile(profile, tmp_path / "credit.profile.json")
    assert resolve_profile_path(tmp_path) == tmp_path / "credit.profile.json"
    assert resolve_profile_path(tmp_path / "x.json") == tmp_path / "x.json"
    write_profile(profile, tmp_path / "second.json")
    with pytest.raises(ProfileError, match="exactly one"):
        resolve_profile_path(tmp_path)
