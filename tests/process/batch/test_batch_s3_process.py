"""The batch scorer over an S3-compatible server (MinIO, or moto without a binary): input
listed and read from s3://, parts, records, progress and the merged file written there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import s3fs
from tests.process.batch.conftest import batch, write_inputs


def test_two_indexes_over_s3_equal_model_predict(
    tmp_path: Path, model: Any, s3_bucket: str
) -> None:
    local = tmp_path / "in"
    csv = write_inputs(local / "a", "csv", (400, 30))
    parquet = write_inputs(local / "b", "parquet", (250,))
    endpoint = os.environ["MLKUBE_S3_ENDPOINT_URL"]  # set by the s3_bucket fixture (loopback)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, client_kwargs={"endpoint_url": endpoint})
    for path in sorted(local.rglob("*.*")):
        fs.put_file(str(path), f"{s3_bucket}/in/{path.relative_to(local)}")
    source, out = f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/out"
    planned = batch("plan", "--input", source, "--output", out, "--mini-batch-size", "100rows")
    assert planned.code == 0, planned.stderr
    for index in ("0", "1"):
        scored = batch("score", "--output", out, "--model", str(model[0]),
                       "--index", index, "--indexes", "2")  # fmt: skip
        assert scored.code == 0, scored.stderr
    merged = batch("merge", "--output", out)
    assert merged.code == 0, merged.stderr
    whole = pd.concat([csv, parquet], ignore_index=True)  # a/ sorts before b/
    assert merged.summary()["items"]["succeeded"] == len(whole)
    with fs.open(f"{s3_bucket}/out/predictions.csv", "rb") as handle:
        got = pd.read_csv(handle)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, model[1].predict(whole))
    progress = json.loads(fs.cat_file(f"{s3_bucket}/out/_mlkube/progress/index-00001.json"))
    assert progress["done"] is True
    assert batch("merge", "--output", out).summary()["unchanged"] is True
