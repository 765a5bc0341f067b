"""The step summary: strict parse, serialisation, the 4 KiB fit and the listing fingerprint."""

from __future__ import annotations

import json

import pytest

from mlkube.builders.pipeline_contract import ContractError
from mlkube.builders.pipeline_summary import (
    MAX_TERMINATION_BYTES,
    StepSummary,
    SummaryOutput,
    check_metrics,
    cut,
    fit_summary,
    listing_fingerprint,
    parse_summary,
    to_json,
)

DIGEST = "sha256:" + "0f" * 32
MODEL = SummaryOutput(
    "model", "artifact", uri="s3://b/p/outputs/model", digest=DIGEST, size=12, file_count=2,
    listing=listing_fingerprint([("a", 5), ("b/c", 7)]),
)  # fmt: skip
SUMMARY = StepSummary(
    0,
    (MODEL, SummaryOutput("lr", "parameter", value="0.1"),
     SummaryOutput("scores", "metrics", metrics={"auc": 0.91, "n": 3})),
)  # fmt: skip


def test_round_trip_and_wire_names() -> None:
    text = to_json(SUMMARY)
    assert parse_summary(text) == SUMMARY
    body = json.loads(text)
    assert body["exitCode"] == 0
    assert body["outputs"][0]["fileCount"] == 2
    assert "truncated" not in body and "error" not in body
    assert parse_summary(text).metrics == {"auc": 0.91, "n": 3}
    assert parse_summary(text).succeeded


def test_killed_main_has_null_exit_code() -> None:
    summary = parse_summary('{"exitCode": null, "error": "killed"}')
    assert summary.exit_code is None and not summary.succeeded and summary.outputs == ()


def test_listing_fingerprint_ignores_order_and_sees_sizes_and_names() -> None:
    base = listing_fingerprint([("b/c", 7), ("a", 5)])
    assert base == MODEL.listing
    assert listing_fingerprint([("a", 5), ("b/c", 8)]) != base
    assert listing_fingerprint([("a", 5), ("b/d", 7)]) != base
    assert listing_fingerprint([("a", 5)]) != base


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"exitCode": "0"}, "exitCode must be an integer or null"),
        ({"exitCode": True}, "exitCode must be an integer or null"),
        ({"exitCode": 0, "more": 1}, "unknown fields"),
        ({"exitCode": 0, "outputs": [{"name": "x", "type": "blob"}]}, "type 'blob'"),
        ({"exitCode": 0, "outputs": [{"name": "x", "type": "parameter"}]}, "missing fields"),
        ({"exitCode": 0, "outputs": [{"name": "x", "type": "parameter", "value": "a" * 1025}]},
         "<= 1 KiB"),
        ({"exitCode": 0, "outputs": [{"name": "m", "type": "artifact", "uri": "s3://b/m",
          "digest": "md5:1", "size": 1, "fileCount": 1}]}, "digest 'md5:1' is not sha256"),
        ({"exitCode": 0, "outputs": [{"name": "m", "type": "artifact", "uri": "s3://b/m",
          "digest": DIGEST, "size": -1, "fileCount": 1}]}, "size must be a non-negative"),
        ({"exitCode": 0, "outputs": [{"name": "s", "type": "metrics", "metrics": {"a": "1"}}]},
         "not a number"),
        ({"exitCode": 0, "outputs": [
            {"name": "s", "type": "metrics", "metrics": {"a": 1}},
            {"name": "t", "type": "metrics", "metrics": {"a": 2}}]}, "reported by two"),
        ({"exitCode": 0, "outputs": [{"name": "x", "type": "parameter", "value": ""},
                                     {"name": "x", "type": "parameter", "value": ""}]},
         "reported twice"),
    ],
)  # fmt: skip
def test_parse_is_strict(body: dict[str, object], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_summary(json.dumps(body))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, None, [1]])
def test_metrics_must_be_finite_numbers(bad: object) -> None:
    with pytest.raises(ContractError, match="not a number"):
        check_metrics({"auc": bad}, "scores")
    assert check_metrics({"auc": 1, "loss": 0.5}, "scores") == {"auc": 1, "loss": 0.5}


def test_metrics_must_be_an_object_of_bounded_size() -> None:
    with pytest.raises(ContractError, match="must be a JSON object"):
        check_metrics([1], "scores")
    with pytest.raises(ContractError, match="at most 64"):
        check_metrics({f"m{i}": i for i in range(65)}, "scores")


def test_cut_never_splits_a_character() -> None:
    assert cut("héllo", 2) == "h"
    assert cut("héllo", 3) == "hé"
    assert cut("abc", 10) == "abc"


def test_small_summary_is_not_cut() -> None:
    assert fit_summary(SUMMARY) == to_json(SUMMARY)


def test_fit_cuts_long_parameters_keeps_artifacts_and_marks_truncated() -> None:
    params = tuple(SummaryOutput(f"p{i}", "parameter", value="é" * 500) for i in range(20))
    summary = StepSummary(0, (MODEL, *params), error=None)
    full = to_json(summary)
    assert len(full.encode()) > 20_000
    fitted = fit_summary(summary)
    assert len(fitted.encode()) <= MAX_TERMINATION_BYTES
    parsed = parse_summary(fitted)
    assert parsed.truncated
    assert parsed.output("model") is not None
    assert parsed.output("model").digest == DIGEST  # type: ignore[union-attr]
    assert all(len(o.value or "") < 500 for o in parsed.outputs)
    assert parse_summary(full) == summary  # the stored copy keeps every value


def test_fit_falls_back_to_exit_code_only() -> None:
    many = tuple(
        SummaryOutput(f"m{i}", "artifact", uri="s3://bucket/" + "x" * 200, digest=DIGEST,
                      size=1, file_count=1)
        for i in range(40)
    )  # fmt: skip
    fitted = fit_summary(StepSummary(0, many, error="e" * 1000))
    assert len(fitted.encode()) <= MAX_TERMINATION_BYTES
    parsed = parse_summary(fitted)
    assert parsed.truncated and parsed.outputs == () and parsed.exit_code == 0
    assert parsed.error == "e" * 256
