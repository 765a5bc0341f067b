"""The baseline profile: format, invariants, calibration, file formats and the CLI entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from mlkube_serving.drift import methods, synthetic
from mlkube_serving.drift.cli import profile_main
from mlkube_serving.drift.columns import category_key, read_frame
from mlkube_serving.drift.errors import ProfileError
from mlkube_serving.drift.profile import build_profile, load_profile, profile_to_bytes


def by_name(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in profile["features"]}


def test_profile_has_versioned_documented_shape(profile: dict[str, Any]) -> None:
    assert profile["formatVersion"] == 1
    assert profile["kind"] == "DriftProfile"
    assert profile["windowSize"] == 1000 and profile["epsilon"] == 1e-4
    assert profile["datasetDriftShare"] == 0.5
    assert profile["columns"] == synthetic.FEATURES
    features = by_name(profile)
    assert list(features) == synthetic.FEATURES
    assert {features[n]["type"] for n in synthetic.NUMERIC_FEATURES} == {"numeric"}
    assert {features[n]["type"] for n in synthetic.CATEGORICAL_FEATURES} == {"categorical"}
    assert profile["prediction"]["name"] == synthetic.PREDICTION


def test_numeric_feature_invariants(profile: dict[str, Any]) -> None:
    for name in synthetic.NUMERIC_FEATURES:
        f = by_name(profile)[name]
        q = f["quantiles"]
        assert len(q) == 101 and q == sorted(q)
        assert q[0] == f["min"] and q[-1] == f["max"]
        cells = f["cells"]
        assert cells["edges"] == sorted(set(cells["edges"]))
        assert len(cells["proportions"]) == len(cells["edges"]) + 1
        assert sum(cells["proportions"]) == pytest.approx(1.0, abs=1e-5)
        assert set(f["bins"]["edges"]) <= set(cells["edges"])
        assert sum(f["bins"]["proportions"]) == pytest.approx(1.0, abs=1e-5)
        assert f["method"] == "wasserstein" and f["scale"] > 0
        for method in methods.NUMERIC_METHODS:
            floor = profile["calibration"]["floors"][method]
            assert f["thresholds"][method] == max(floor, f["calibrated"][method])


def test_discrete_and_null_features_are_profiled_honestly(profile: dict[str, Any]) -> None:
    features = by_name(profile)
    # Poisson(3) has few distinct values: duplicate quantiles collapse into fewer cells.
    assert len(features["x10"]["cells"]["edges"]) < 15
    assert features["x13"]["nulls"] / (features["x13"]["count"] + features["x13"]["nulls"]) == (
        pytest.approx(0.05, abs=0.005)
    )
    assert features["x13"]["mean"] == pytest.approx(5.0, abs=0.05)


def test_categorical_feature_keeps_top_k_and_other(profile: dict[str, Any]) -> None:
    c2 = by_name(profile)["c2"]
    assert len(c2["categories"]) == 20 and c2["categories"][0] == "k00"
    assert len(c2["proportions"]) == 21 and c2["proportions"][-1] > 0
    assert sum(c2["proportions"]) == pytest.approx(1.0, abs=1e-5)
    assert c2["distinct"] == 40 and len(c2["otherCategories"]) == 20 and c2["otherComplete"]
    c3 = by_name(profile)["c3"]
    assert c3["categories"] == ["yes", "no"] and c3["proportions"][-1] == 0.0
    assert c3["nulls"] > 0 and c3["method"] == "jensenshannon"
    assert c3["thresholds"]["jensenshannon"] >= 0.1


def test_profile_is_deterministic_and_survives_json(train_columns: dict[str, Any]) -> None:
    small = {k: v[:5000] for k, v in train_columns.items()}
    one = build_profile(small, window_size=200, seed=3, bootstrap_windows=200)
    two = build_profile(small, window_size=200, seed=3, bootstrap_windows=200)
    assert one == two
    assert load_profile(profile_to_bytes(one)) == one


def test_small_windows_are_judged_by_ks(train_columns: dict[str, Any]) -> None:
    small = {"x0": train_columns["x0"][:3000]}
    profile = build_profile(small, window_size=50, bootstrap_windows=300)
    x0 = profile["features"][0]
    assert x0["method"] == "ks"
    assert x0["thresholds"]["ks"] >= methods.ks_floor(50)
    # On 50 samples the W1 null distribution is far above the 0.1 default: calibration lifts it.
    assert x0["thresholds"]["wasserstein"] > 0.2


def test_options_force_types_rank_and_skip() -> None:
    frame = pd.DataFrame(
        {"zip": [10115, 10117, 10115, 80331] * 50, "empty": [None] * 200, "v": np.arange(200.0)}
    )
    profile = build_profile(
        frame, window_size=20, categorical=["zip"], importance={"v": 2.0}, bootstrap_windows=50
    )
    features = by_name(profile)
    assert features["zip"]["type"] == "categorical"
    assert features["zip"]["categories"] == ["10115", "10117", "80331"]
    assert features["v"]["importance"] == 2.0 and features["zip"]["importance"] is None
    assert profile["skippedColumns"] == ["empty"]
    with pytest.raises(ProfileError, match="unknown columns"):
        build_profile(frame, window_size=20, categorical=["nope"])


def test_category_keys_match_across_json_and_pandas() -> None:
    assert category_key(3) == category_key(3.0) == category_key("3") == category_key(np.int64(3))
    assert category_key(True) == "true" and category_key(np.bool_(False)) == "false"
    assert category_key(2.5) == "2.5"
    assert category_key(None) is None and category_key(float("nan")) is None
    assert category_key(pd.NA) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"formatVersion": 2, "features": []}',
        b'{"formatVersion": 1, "windowSize": 10, "features": [{"name": "a"}]}',
    ],
)
def test_load_profile_rejects_bad_documents(raw: bytes) -> None:
    with pytest.raises(ProfileError):
        load_profile(raw)


def test_read_frame_handles_csv_parquet_and_jsonl(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, None], "b": ["x", "y", "x"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    for name in ("d.csv", "d.parquet", "d.jsonl"):
        read = read_frame(tmp_path / name)
        assert list(read.columns) == ["a", "b"] and read["b"].tolist() == ["x", "y", "x"]
    with pytest.raises(ProfileError, match="unsupported"):
        read_frame(tmp_path / "d.xlsx")


def test_cli_writes_a_loadable_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cols = synthetic.make_columns(3000, seed=4)
    pd.DataFrame(cols).to_parquet(tmp_path / "train.parquet")
    out = tmp_path / "profile.json"
    code = profile_main(
        [
            "--data", str(tmp_path / "train.parquet"), "--model", "credit", "--out", str(out),
            "--window-size", "200", "--prediction-column", synthetic.PREDICTION,
            "--bootstrap-windows", "100", "--exclude", "x15",
        ]
    )  # fmt: skip
    assert code == 0
    profile = load_profile(out)
    assert profile["model"] == "credit" and profile["windowSize"] == 200
    assert "x15" not in profile["columns"] and profile["prediction"]["name"] == "score"
    assert "profiled 3000 rows" in capsys.readouterr().err
    assert profile_main(["--data", str(tmp_path / "missing.csv")]) == 2


def test_cli_prints_to_stdout_without_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd.DataFrame({"a": np.arange(100.0)}).to_csv(tmp_path / "t.csv", index=False)
    assert profile_main(["--data", str(tmp_path / "t.csv"), "--bootstrap-windows", "20"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed["features"][0]["name"] == "a"
