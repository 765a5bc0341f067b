"""Combine the drift summaries of a deployment's replicas into one verdict.

Each replica's sidecar sees only the traffic its pod served, so the operator polls every
replica's `GET /v1/summary`, adds their window counts over the profile's frozen bins and
recomputes every score from the sums (`drift_stats`). Summing counts is exact: the merged
result is what one sidecar would report had it seen all the replicas' windows. Thresholds stay
the profile's (calibrated for one window), which is conservative for the larger merged window.
Pure Python and no clock, so the operator can import it and tests can pin every number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mlkube.reconcile.drift_stats import CATEGORICAL, categorical_scores, numeric_scores

SUMMARY_FORMAT_VERSION = 1


class DriftMergeError(ValueError):
    """No summary could be merged (none given, or none matches the profile)."""


def profile_digest(profile: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a profile: replicas must agree on it to be merged."""
    canonical = json.dumps(profile, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def summarise_feature(
    feature: Mapping[str, Any], record: Mapping[str, Any], *, ready: bool, epsilon: float
) -> dict[str, Any]:
    """One feature's summary entry from its window counts (the same shape the sidecar sends)."""
    counts = [int(c) for c in record["counts"]]
    nulls = int(record["nulls"])
    out: dict[str, Any] = {"name": feature["name"], "type": feature["type"]}
    if feature["type"] == CATEGORICAL:
        extra = {"other": int(record["other"]), "unseen": int(record["unseen"])}
        scores = categorical_scores(feature, counts, extra["other"], extra["unseen"], epsilon)
        count = sum(counts) + extra["other"] + extra["unseen"]
        quality = {"unseenRatio": _ratio(extra["unseen"], count)}
    else:
        extra = {"below": int(record["below"]), "above": int(record["above"])}
        scores = numeric_scores(feature, counts, extra["below"], extra["above"], epsilon)
        count = sum(counts) + extra["below"] + extra["above"]
        quality = {"outOfRangeRatio": _ratio(extra["below"] + extra["above"], count)}
    method = str(feature["method"])
    thresholds = {k: float(v) for k, v in feature["thresholds"].items()}
    score = None if scores is None else scores[method]
    out.update(
        method=method,
        score=score,
        threshold=thresholds[method],
        drifted=bool(ready and score is not None and score >= thresholds[method]),
        scores=scores,
        thresholds=thresholds,
        count=count,
        nulls=nulls,
        nullRatio=_ratio(nulls, count + nulls),
        **quality,
        counts=counts,
        **extra,
    )
    return out


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def decide_dataset_drift(
    features: Sequence[Mapping[str, Any]], *, share: float, ready: bool
) -> dict[str, Any]:
    """Dataset drift: the share of drifted features (among those with data) reaches `share`."""
    evaluated = [f for f in features if f["score"] is not None]
    drifted = sum(1 for f in evaluated if f["drifted"])
    ratio = drifted / len(evaluated) if evaluated else 0.0
    return {
        "detected": bool(ready and evaluated and ratio >= share),
        "driftedFeatures": drifted,
        "evaluatedFeatures": len(evaluated),
        "ratio": ratio,
        "share": share,
    }


def merge_summaries(
    summaries: Sequence[Mapping[str, Any]], profile: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge replica summaries made with `profile`; the others are skipped and counted."""
    digest = profile_digest(profile)
    usable = [s for s in summaries if s.get("profileDigest") == digest]
    if not usable:
        raise DriftMergeError(f"none of {len(summaries)} summaries was made with profile {digest}")
    window_size = int(profile["windowSize"])
    samples = sum(int(s["windowSamples"]) for s in usable)
    ready = samples >= window_size
    epsilon = float(profile["epsilon"])
    features = []
    for index, feature in enumerate(profile["features"]):
        record = _sum_records([s["features"][index] for s in usable], feature)
        features.append(summarise_feature(feature, record, ready=ready, epsilon=epsilon))
    prediction = None
    if profile.get("prediction") is not None and all(s.get("prediction") for s in usable):
        record = _sum_records([s["prediction"] for s in usable], profile["prediction"])
        prediction = summarise_feature(profile["prediction"], record, ready=ready, epsilon=epsilon)
    return {
        "formatVersion": SUMMARY_FORMAT_VERSION,
        "model": profile.get("model"),
        "profileDigest": digest,
        "replicas": sum(int(s.get("replicas", 1)) for s in usable),
        "skippedSummaries": len(summaries) - len(usable),
        "windowSize": window_size,
        "windowSamples": samples,
        "samplesReceived": sum(int(s["samplesReceived"]) for s in usable),
        "samplesDropped": sum(int(s["samplesDropped"]) for s in usable),
        "ready": ready,
        # The oldest evaluation bounds how stale the merged verdict can be.
        "evaluatedAt": min(
            (s["evaluatedAt"] for s in usable if s.get("evaluatedAt")), default=None
        ),
        "datasetDrift": decide_dataset_drift(
            features, share=float(profile["datasetDriftShare"]), ready=ready
        ),
        "features": features,
        "prediction": prediction,
    }


def _sum_records(
    records: Sequence[Mapping[str, Any]], feature: Mapping[str, Any]
) -> dict[str, Any]:
    """Add the count fields of one feature across replicas, checking they share the bins."""
    if feature["type"] == CATEGORICAL:
        keys, width = ("other", "unseen"), len(feature["categories"])
    else:
        keys, width = ("below", "above"), len(feature["cells"]["proportions"])
    total: dict[str, Any] = {"counts": [0] * width, "nulls": 0, keys[0]: 0, keys[1]: 0}
    for rec in records:
        if rec["name"] != feature["name"] or len(rec["counts"]) != width:
            raise DriftMergeError(f"feature {feature['name']!r}: summaries disagree on bins")
        total["counts"] = [a + int(b) for a, b in zip(total["counts"], rec["counts"], strict=True)]
        for key in ("nulls", *keys):
            total[key] += int(rec[key])
    return total
