"""The batch benchmark's input and models, generated once and cached by their parameters.

1,000,000 rows x 20 float features (rounded to 6 decimals so CSV and Parquet hold the same
values) as one CSV file and one Parquet file (row groups of 50,000 rows), and two models
trained on a 20,000-row sample: a 100-tree random forest (depth 10) and a logistic regression,
saved as joblib (what mlkube and the Azure-style loop load) and converted once to ONNX (what
the floor and Ray Data run). Everything lives under ~/.cache/mlkube/bench-batch/<key>, where
the key hashes the generator's parameters and library versions, so a second run starts at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CACHE = Path(
    os.environ.get("MLKUBE_BENCH_CACHE", Path.home() / ".cache" / "mlkube" / "bench-batch")
)
GENERATOR_VERSION = 1
MODELS = ("rf", "lr")


@dataclass(frozen=True)
class Params:
    rows: int = 1_000_000
    features: int = 20
    seed: int = 7
    row_group: int = 50_000
    train_rows: int = 20_000
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        import sklearn

        body = {**asdict(self), "sklearn": sklearn.__version__}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.rows}x{self.features}-{digest}"


@dataclass(frozen=True)
class Dataset:
    folder: Path
    csv: Path
    parquet: Path
    rows: int

    def input(self, fmt: str) -> Path:
        return self.csv if fmt == "csv" else self.parquet

    def model_dir(self, name: str) -> Path:
        return self.folder / "models" / name

    def onnx(self, name: str) -> Path:
        return self.folder / "onnx" / f"{name}.onnx"


def columns(features: int) -> list[str]:
    return [f"f{i}" for i in range(features)]


def matrix(rows: int, features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=(rows, features)), 6)


def target(x: np.ndarray) -> np.ndarray:
    """A nonlinear rule with noise, so the forest has real work and ties are rare."""
    rng = np.random.default_rng(1)
    score = x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - np.abs(x[:, 3]) + 0.3 * np.sin(3 * x[:, 4])
    return (score + rng.normal(scale=0.5, size=len(x)) > -0.5).astype(np.int64)


def ensure(params: Params, log: bool = True) -> Dataset:
    """The dataset for these parameters, generating what is missing (atomically, by rename)."""
    folder = CACHE / params.key()
    data = Dataset(folder, folder / "data.csv", folder / "data.parquet", params.rows)
    if (folder / "ready.json").exists():
        return data
    import joblib
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if log:
        print(f"generating {params.rows:,} rows x {params.features} into {folder} ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    names = columns(params.features)
    writer_pq: pq.ParquetWriter | None = None
    tmp_csv, tmp_pq = folder / "data.csv.tmp", folder / "data.parquet.tmp"
    with pacsv.CSVWriter(tmp_csv, pa.schema([(n, pa.float64()) for n in names])) as writer_csv:
        step = params.row_group
        for block, start in enumerate(range(0, params.rows, step)):
            x = matrix(min(step, params.rows - start), params.features, params.seed + block)
            table = pa.Table.from_arrays([pa.array(x[:, i]) for i in range(x.shape[1])], names)
            writer_csv.write_table(table)
            if writer_pq is None:
                writer_pq = pq.ParquetWriter(tmp_pq, table.schema)
            writer_pq.write_table(table, row_group_size=params.row_group)
    assert writer_pq is not None
    writer_pq.close()
    os.replace(tmp_csv, data.csv)
    os.replace(tmp_pq, data.parquet)
    x = matrix(params.train_rows, params.features, params.seed + 100_000)
    y = target(x)
    import pandas as pd

    frame = pd.DataFrame(x, columns=names)
    fitted = {
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(frame, y),
        "lr": LogisticRegression(max_iter=1000).fit(frame, y),
    }
    (folder / "onnx").mkdir(exist_ok=True)
    for name, estimator in fitted.items():
        data.model_dir(name).mkdir(parents=True, exist_ok=True)
        joblib.dump(estimator, data.model_dir(name) / "model.joblib")
        onnx = to_onnx(
            estimator,
            np.zeros((1, params.features), dtype=np.float32),
            options={"zipmap": False},
        )
        data.onnx(name).write_bytes(onnx.SerializeToString())
    (folder / "ready.json").write_text(json.dumps(asdict(params)))
    return data
