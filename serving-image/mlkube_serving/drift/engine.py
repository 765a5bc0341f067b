"""The drift engine: sliding windows of encoded samples and their evaluation into a summary.

Not thread-safe on purpose: exactly one thread (the sidecar's worker) owns an engine, so the
hot path takes no locks. The summary it produces is the JSON document `GET /v1/summary`
serves and the operator merges across replicas (`mlkube.reconcile.drift_merge`), so every
feature entry carries its window counts over the profile's frozen bins.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from mlkube_serving.drift.columns import CATEGORICAL
from mlkube_serving.drift.compiled import CompiledFeature, compile_profile
from mlkube_serving.drift.ingest import PayloadDecoder
from mlkube_serving.drift.window import SlidingWindow

SUMMARY_FORMAT_VERSION = 1


def profile_digest(profile: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a profile (same spelling as the operator's merge)."""
    canonical = json.dumps(profile, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class DriftEngine:
    """Count-based windows over one profile's tracked columns."""

    def __init__(self, profile: Mapping[str, Any], *, window_size: int | None = None) -> None:
        self.profile = profile
        self.digest = profile_digest(profile)
        self.compiled = compile_profile(profile)
        self.window_size = int(window_size or self.compiled.window_size)
        self.decoder = PayloadDecoder(self.compiled)
        self.window = SlidingWindow(
            self.window_size, len(self.compiled.columns), self.compiled.max_slots
        )
        self.ingested = 0
        self.pending = 0  # rows ingested since the last evaluation

    def ingest(self, payload: object) -> int:
        """Decode one payload and slide the window; raises PayloadError if malformed."""
        codes = self.decoder.decode(payload)
        self.window.append(codes)
        self.ingested += codes.shape[0]
        self.pending += codes.shape[0]
        return int(codes.shape[0])

    def evaluate(self, *, now: str | None, received: int = 0, dropped: int = 0) -> dict[str, Any]:
        """The summary of the current window (drift flags only once the window is full)."""
        self.pending = 0
        counts = self.window.slot_counts()
        ready = self.window.filled >= self.window_size
        entries = [
            summarise_column(column, counts[i, : column.slots], ready, self.compiled.epsilon)
            for i, column in enumerate(self.compiled.columns)
        ]
        features = entries[:-1] if self.compiled.has_prediction else entries
        evaluated = [f for f in features if f["score"] is not None]
        drifted = sum(1 for f in evaluated if f["drifted"])
        ratio = drifted / len(evaluated) if evaluated else 0.0
        share = float(self.profile.get("datasetDriftShare", 0.5))
        return {
            "formatVersion": SUMMARY_FORMAT_VERSION,
            "model": self.profile.get("model"),
            "profileDigest": self.digest,
            "replicas": 1,
            "windowSize": self.window_size,
            "windowSamples": self.window.filled,
            "samplesReceived": received,
            "samplesDropped": dropped,
            "ready": ready,
            "evaluatedAt": now,
            "datasetDrift": {
                "detected": bool(ready and evaluated and ratio >= share),
                "driftedFeatures": drifted,
                "evaluatedFeatures": len(evaluated),
                "ratio": ratio,
                "share": share,
            },
            "features": features,
            "prediction": entries[-1] if self.compiled.has_prediction else None,
        }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def summarise_column(
    column: CompiledFeature, slots: npt.NDArray[np.int64], ready: bool, epsilon: float
) -> dict[str, Any]:
    """One feature's entry: scores, verdict, quality rates and the counts needed to merge."""
    size = column.size
    raw = column.scores(slots[None, :], epsilon)
    scores = {m: _number(float(v[0])) for m, v in raw.items()}
    count = int(slots[: size + 2].sum())
    nulls = int(slots[size + 2])
    score = scores[column.method]
    threshold = column.thresholds[column.method]
    entry: dict[str, Any] = {
        "name": column.name,
        "type": column.kind,
        "method": column.method,
        "score": score,
        "threshold": threshold,
        "drifted": bool(ready and score is not None and score >= threshold),
        "scores": None if score is None else scores,
        "thresholds": dict(column.thresholds),
        "count": count,
        "nulls": nulls,
        "nullRatio": nulls / (count + nulls) if count + nulls else None,
    }
    a, b = int(slots[size]), int(slots[size + 1])
    if column.kind == CATEGORICAL:
        entry["unseenRatio"] = b / count if count else None
        entry.update(counts=slots[:size].tolist(), other=a, unseen=b)
    else:
        entry["outOfRangeRatio"] = (a + b) / count if count else None
        entry.update(counts=slots[:size].tolist(), below=a, above=b)
    return entry
