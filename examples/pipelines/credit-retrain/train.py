"""Train the credit-risk classifier: the `train` step of the credit-retrain sample Pipeline.

Reads every CSV file under --data (20 feature columns f0..f19 and the label column `default`),
holds out a deterministic fifth of the rows, fits a logistic regression and writes the model
(a joblib file the mlkube sklearn runtime serves) and its held-out metrics (a JSON object, the
Pipeline's `metrics` output). Deterministic: the same bytes in give the same model and metrics,
which is what makes the step cacheable by content.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

FEATURES = [f"f{i}" for i in range(20)]
LABEL = "default"


def read_rows(folder: Path) -> tuple[list[list[float]], list[int]]:
    features: list[list[float]] = []
    labels: list[int] = []
    files = sorted(folder.rglob("*.csv"))
    if not files:
        sys.exit(f"train: no CSV files under {folder}")
    for path in files:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                features.append([float(row[name]) for name in FEATURES])
                labels.append(int(row[LABEL]))
    return features, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="folder of training CSV files")
    parser.add_argument("--model-out", type=Path, required=True, help="folder for model.joblib")
    parser.add_argument("--metrics-out", type=Path, required=True, help="metrics JSON file")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularization strength")
    args = parser.parse_args()

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score

    features, labels = read_rows(args.data)
    # Every fifth row is held out: deterministic, no shuffling seed to remember.
    train = [i for i in range(len(labels)) if i % 5]
    test = [i for i in range(len(labels)) if not i % 5]
    model = LogisticRegression(C=args.C, max_iter=500)
    model.fit([features[i] for i in train], [labels[i] for i in train])
    held_out = [features[i] for i in test]
    truth = [labels[i] for i in test]
    scores = model.predict_proba(held_out)[:, 1]
    metrics = {
        "auc": round(float(roc_auc_score(truth, scores)), 4),
        "accuracy": round(float(accuracy_score(truth, model.predict(held_out))), 4),
        "rows": len(labels),
    }
    args.model_out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.model_out / "model.joblib")
    args.metrics_out.write_text(json.dumps(metrics))
    print(f"train: {len(train)} rows, held-out auc {metrics['auc']} accuracy {metrics['accuracy']}")


if __name__ == "__main__":
    main()
