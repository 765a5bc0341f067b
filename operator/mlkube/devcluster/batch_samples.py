"""Sample batch input that `make dev` uploads to the dev store: CSV files of credit-risk
applications (the 20 features the sample Models credit-risk-v3/v4 take, as in
examples/models/credit-risk/*/sample-request.json), so `mlkube batch invoke credit-batch`
has data to score (docs/dev-cluster.md).

Two folders: `credit-applications/` (clean: 5 files of 6,000 rows, so the sample endpoint's
default `10000rows` deployment plans 5 mini-batches and progress is visible) and
`credit-applications-poisoned/` (3 clean files and a fourth whose row 4322 holds text where a
number belongs: the failure demo — one failed item in files mode (the file), one in rows mode
(the row, named by its byte offset and line)). Deterministic (seeded, stdlib only: the
launcher must not import numpy), so a second `make dev` uploads identical bytes and the
create-only upload keeps them.
"""

from __future__ import annotations

import random
from pathlib import Path

from mlkube.storage import upload

FEATURES = 20
CLEAN = "credit-applications"
POISONED = "credit-applications-poisoned"
PREFIX = "samples"  # under the store: s3://<bucket>/samples/<folder>/
CLEAN_FILES, CLEAN_ROWS = 5, 6000
POISONED_FILES, POISONED_ROWS, POISONED_ROW = 3, 6000, 4321
HEADER = ",".join(f"f{i}" for i in range(FEATURES))


def csv_text(rows: int, seed: int, poison_row: int | None = None) -> str:
    rng = random.Random(seed)
    lines = [HEADER]
    for i in range(rows):
        values = [f"{rng.gauss(0.0, 1.0):.4f}" for _ in range(FEATURES)]
        if i == poison_row:
            values[3] = "not-a-number"
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


def write_inputs(root: Path) -> dict[str, Path]:
    """Both sample folders under `root` (rewritten every time: they are derived data)."""
    clean, poisoned = root / CLEAN, root / POISONED
    for folder in (clean, poisoned):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(CLEAN_FILES):
        (clean / f"applications-{i:02d}.csv").write_text(csv_text(CLEAN_ROWS, seed=i))
    for i in range(POISONED_FILES):
        text = csv_text(POISONED_ROWS, seed=100 + i)
        (poisoned / f"applications-{i:02d}.csv").write_text(text)
    bad = csv_text(POISONED_ROWS, seed=199, poison_row=POISONED_ROW)
    (poisoned / "applications-02b.csv").write_text(bad)
    return {CLEAN: clean, POISONED: poisoned}


def upload_inputs(root: Path, store_uri: str) -> dict[str, str]:
    """Write and upload both folders; returns their URIs (`.../<folder>/`)."""
    prefix = f"{store_uri.rstrip('/')}/{PREFIX}"
    return {name: upload(str(path), prefix).rstrip("/") + "/"
            for name, path in write_inputs(root).items()}  # fmt: skip
