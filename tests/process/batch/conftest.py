"""Batch scorer process fixtures: real data files on disk, a fitted model, and a helper that runs
`python -m mlkube_serving batch ...` as a real process (workers are real processes too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

COLUMNS = ["f0", "f1", "f2", "f3"]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        line = self.stdout.strip().splitlines()[-1]
        found: dict[str, Any] = json.loads(line)
        return found


def batch(*args: str, timeout: float = 120) -> Result:
    """Run one batch step as its own process, as a pod would."""
    env = {**os.environ, "MLKUBE_LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", "mlkube_serving", "batch", "--termination-log", "", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)


def write_inputs(folder: Path, fmt: str, sizes: tuple[int, ...] = (900, 13, 420)) -> pd.DataFrame:
    """Files of the given sizes in one format; returns the whole input in plan order."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = [frame(n, i) for i, n in enumerate(sizes)]
    for i, part in enumerate(parts):
        path = folder / f"part-{i:02d}.{fmt}"
        if fmt == "csv":
            part.to_csv(path, index=False)
        elif fmt == "jsonl":
            # json.dumps writes floats exactly (repr), so the model sees the same values.
            rows = part.to_dict(orient="records")
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        else:
            pq.write_table(
                pa.Table.from_pandas(part, preserve_index=False), path, row_group_size=64
            )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    """A logistic regression on four named features, saved as the registry would store it."""
    data = frame(2000, 99)
    target = (data["f0"] + 0.5 * data["f1"] - data["f3"] > 0).astype(int)
    fitted = LogisticRegression().fit(data, target)
    folder = tmp_path_factory.mktemp("model")
    joblib.dump(fitted, folder / "model.joblib")
    return folder, fitted


def read_output(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True)
    return pq.read_table(path).to_pandas()


# The S3-compatible server of the storage tests (MinIO when MLKUBE_MINIO_BIN is set, else moto).
from tests.process.storage.conftest import s3_bucket, s3_server  # noqa: E402, F401
