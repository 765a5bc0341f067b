"""The batch scorer with the other shared runtimes: an MLflow directory (columns picked by the
signature's names, whatever the file's column order) and a plain ONNX model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tests.process.batch.conftest import batch

from support.serving import N_FEATURES, build_mlflow, make_data


def _inputs(folder: Path) -> pd.DataFrame:
    X, _ = make_data(rows=700, seed=5)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    folder.mkdir()
    shuffled = frame[list(reversed(frame.columns))]  # names, not positions, must decide
    pq.write_table(pa.Table.from_pandas(shuffled, preserve_index=False), folder / "x.parquet",
                   row_group_size=100)  # fmt: skip
    return frame


def _score(tmp_path: Path, model: Path) -> np.ndarray:
    out = f"file://{tmp_path}/out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", out,
                 "--mini-batch-size", "200rows").code == 0  # fmt: skip
    scored = batch("score", "--output", out, "--model", str(model), "--concurrency", "2")
    assert scored.code == 0, scored.stderr
    assert batch("merge", "--output", out).code == 0
    result: np.ndarray = pd.read_csv(tmp_path / "out/predictions.csv")["prediction"].to_numpy()
    return result


def test_mlflow_model_uses_signature_column_names(tmp_path: Path) -> None:
    frame = _inputs(tmp_path / "in")
    model = build_mlflow(tmp_path / "mlflow")
    with open(model / "model.pkl", "rb") as handle:
        estimator = pickle.load(handle)
    np.testing.assert_array_equal(_score(tmp_path, model), estimator.predict(frame.to_numpy()))


def test_onnx_model(tmp_path: Path) -> None:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = make_data()
    estimator = LogisticRegression(max_iter=500).fit(X, y)
    onnx = to_onnx(estimator, np.zeros((1, N_FEATURES), dtype=np.float32),
                   options={"zipmap": False})  # fmt: skip
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx/model.onnx").write_bytes(onnx.SerializeToString())
    # A plain ONNX model has no column names: the file's columns are used in file order.
    X2, _ = make_data(rows=300, seed=8)
    (tmp_path / "in").mkdir()
    frame = pd.DataFrame(X2, columns=[f"c{i}" for i in range(N_FEATURES)])
    frame.to_csv(tmp_path / "in/x.csv", index=False)
    session = ort.InferenceSession(onnx.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: X2.astype(np.float32)})[0]
    np.testing.assert_array_equal(_score(tmp_path, tmp_path / "onnx"), expected)
