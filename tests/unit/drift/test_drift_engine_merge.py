"""Engine summaries and their exact merge across replicas (the operator's pure function)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pytest

from mlkube.reconcile.drift_merge import DriftMergeError, merge_summaries, profile_digest
from mlkube_serving.drift import synthetic
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.engine import profile_digest as serving_digest


def feed(engine: DriftEngine, cols: dict[str, Any], batch: int = 250) -> None:
    for payload in synthetic.to_payloads(cols, batch):
        engine.ingest(payload)


def test_summary_is_plain_json_and_waits_for_a_full_window(profile: dict[str, Any]) -> None:
    engine = DriftEngine(profile)
    feed(engine, synthetic.make_columns(600, seed=5, shift={"x0": 3.0}))
    summary = orjson.loads(orjson.dumps(engine.evaluate(now="t0")))  # no numpy scalars inside
    assert summary["ready"] is False and summary["windowSamples"] == 600
    x0 = summary["features"][0]
    assert x0["score"] > x0["threshold"] and x0["drifted"] is False  # not judged before full
    assert summary["datasetDrift"]["detected"] is False
    assert summary["profileDigest"] == profile_digest(profile)
    assert summary["prediction"]["name"] == synthetic.PREDICTION


def test_summary_reports_quality_rates(profile: dict[str, Any]) -> None:
    engine = DriftEngine(profile)
    cols = synthetic.make_columns(1000, seed=6, new_categories={"c1": 0.2})
    cols["x7"] = cols["x7"] * 3  # uniform(-1, 1) stretched: about 2/3 outside the range
    feed(engine, cols)
    summary = engine.evaluate(now="t1")
    features = {f["name"]: f for f in summary["features"]}
    assert features["x13"]["nullRatio"] == pytest.approx(0.05, abs=0.02)
    assert features["x7"]["outOfRangeRatio"] == pytest.approx(2 / 3, abs=0.05)
    assert features["c1"]["unseenRatio"] == pytest.approx(0.2, abs=0.04)
    assert features["x7"]["drifted"] and features["c1"]["drifted"]
    assert features["x0"]["count"] + features["x0"]["nulls"] == 1000


def test_merging_replicas_equals_one_engine_seeing_everything(profile: dict[str, Any]) -> None:
    first = synthetic.make_columns(1000, seed=8, shift={"x1": 0.4})
    second = synthetic.make_columns(1000, seed=9, new_categories={"c0": 0.1})
    a, b, both = DriftEngine(profile), DriftEngine(profile), DriftEngine(profile, window_size=2000)
    feed(a, first)
    feed(b, second)
    feed(both, first)
    feed(both, second)
    merged = merge_summaries([a.evaluate(now="t2"), b.evaluate(now="t1")], profile)
    single = both.evaluate(now="t3")
    assert merged["replicas"] == 2 and merged["windowSamples"] == 2000
    assert merged["evaluatedAt"] == "t1"  # the oldest replica bounds staleness
    assert merged["windowSize"] == 1000 and merged["ready"] is True
    for got, want in zip(merged["features"], single["features"], strict=True):
        assert got["counts"] == want["counts"] and got["nulls"] == want["nulls"]
        assert got["drifted"] == want["drifted"]
        for method, value in want["scores"].items():
            assert got["scores"][method] == pytest.approx(value, abs=1e-9)
    assert merged["datasetDrift"] == single["datasetDrift"]
    assert merged["prediction"]["counts"] == single["prediction"]["counts"]


def test_merge_of_one_summary_reproduces_it(profile: dict[str, Any]) -> None:
    engine = DriftEngine(profile)
    feed(engine, synthetic.make_columns(1200, seed=10, shift={"x2": 1.0}))
    summary = engine.evaluate(now="t")
    merged = merge_summaries([summary], profile)
    assert merged.pop("skippedSummaries") == 0
    assert _close(orjson.loads(orjson.dumps(merged)), summary)


def _close(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        assert set(got) == set(want)
        return all(_close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-9)
        return True
    assert got == want
    return True


def test_merge_skips_summaries_of_another_profile(profile: dict[str, Any]) -> None:
    engine = DriftEngine(profile)
    feed(engine, synthetic.make_columns(500, seed=11))
    good = engine.evaluate(now="t")
    stale = {**good, "profileDigest": "sha256:old"}
    merged = merge_summaries([good, stale], profile)
    assert merged["skippedSummaries"] == 1 and merged["windowSamples"] == 500
    with pytest.raises(DriftMergeError):
        merge_summaries([stale], profile)


def test_merge_rejects_counts_that_do_not_fit_the_bins(profile: dict[str, Any]) -> None:
    engine = DriftEngine(profile)
    feed(engine, synthetic.make_columns(300, seed=12))
    broken = copy.deepcopy(engine.evaluate(now="t"))
    broken["features"][0]["counts"].append(1)
    with pytest.raises(DriftMergeError, match="disagree"):
        merge_summaries([broken], profile)


def test_operator_and_sidecar_spell_the_profile_digest_alike(profile: dict[str, Any]) -> None:
    assert serving_digest(profile) == profile_digest(profile)
    assert profile_digest(profile).startswith("sha256:")


def test_features_without_values_are_not_judged(profile: dict[str, Any]) -> None:
    engine = DriftEngine(profile)
    cols = synthetic.make_columns(1000, seed=13)
    payload = {"columns": ["x0", "x1"], "rows": np.column_stack([cols["x0"], cols["x1"]]).tolist()}
    engine.ingest(payload)
    summary = engine.evaluate(now="t")
    c0 = summary["features"][synthetic.FEATURES.index("c0")]
    assert c0["score"] is None and c0["scores"] is None and not c0["drifted"]
    assert c0["nullRatio"] == 1.0 and c0["unseenRatio"] is None
    assert summary["datasetDrift"]["evaluatedFeatures"] == 2
    merged = merge_summaries([summary], profile)
    assert merged["features"][synthetic.FEATURES.index("c0")]["score"] is None
    assert merged["datasetDrift"] == summary["datasetDrift"]
