"""Sample inputs of the credit-retrain Pipeline that `make dev` uploads to the dev store: the
training code (examples/pipelines/credit-retrain/) and labelled credit-risk applications
(the 20 features f0..f19 the sample Models take, plus the label column `default`).

The labels follow a fixed logistic rule, so a logistic regression recovers it (held-out AUC
about 0.94, above the 0.91 the sample Models record in their lineage: the retrain passes its
evaluation gate). Deterministic (seeded, stdlib only: the launcher must not import numpy), so a
second `make dev` uploads identical bytes, the create-only upload keeps them and the pipeline's
cache keys (content digests) do not move.

The same data's drift profile is the sample credit-risk-v4's baseline (green on `credit` has drift
on), so traffic unlike the training data starts the retrain (`onDrift`). It is built by
`mlkube model profile` in a child process: that needs numpy, which the launcher never imports.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

from mlkube.devcluster.batch_samples import FEATURES
from mlkube.storage import upload

TRAINING = "credit-training"
CODE = "credit-retrain-code"
PREFIX = "samples"
FILES, ROWS = 2, 4000
CODE_DIR = Path(__file__).resolve().parents[3] / "examples" / "pipelines" / "credit-retrain"
HEADER = ",".join([*(f"f{i}" for i in range(FEATURES)), "default"])


def weights() -> list[float]:
    rng = random.Random(7)
    return [rng.uniform(-1.5, 1.5) for _ in range(FEATURES)]


def labelled_csv(rows: int, seed: int) -> str:
    rng = random.Random(1000 + seed)
    w = weights()
    lines = [HEADER]
    for _ in range(rows):
        x = [rng.gauss(0.0, 1.0) for _ in range(FEATURES)]
        p = 1.0 / (1.0 + math.exp(-sum(a * b for a, b in zip(w, x, strict=True))))
        label = 1 if rng.random() < p else 0
        lines.append(",".join([*(f"{v:.4f}" for v in x), str(label)]))
    return "\n".join(lines) + "\n"


def write_training(root: Path) -> Path:
    folder = root / TRAINING
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(FILES):
        (folder / f"applications-{i:02d}.csv").write_text(labelled_csv(ROWS, seed=i))
    return folder


def upload_inputs(root: Path, store_uri: str) -> dict[str, str]:
    """Upload the training data and the training code; returns their URIs (`.../<folder>/`)."""
    prefix = f"{store_uri.rstrip('/')}/{PREFIX}"
    data = write_training(root)
    return {
        TRAINING: upload(str(data), prefix).rstrip("/") + "/",
        CODE: upload(str(CODE_DIR), f"{prefix}/{CODE}").rstrip("/") + "/",
    }


BASELINE_WINDOW = 500  # the sample endpoint's green drift.windowSize


def write_baseline(root: Path) -> Path:
    """The drift profile of the training features (seeded: the same bytes on every run)."""
    data = write_training(root) / "applications-00.csv"
    out = root / "credit-risk.profile.json"
    command = [sys.executable, "-m", "mlkube", "model", "profile", "--data", str(data),
               "--exclude", "default", "--window-size", str(BASELINE_WINDOW),
               "--model", "credit-risk", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"building the sample drift profile failed: {done.stderr[-2000:]}")
    return out
