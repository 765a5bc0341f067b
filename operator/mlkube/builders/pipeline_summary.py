"""The step summary: what a step pod's `outputs` container reports back to the operator.

Pure, shared by `python -m mlkube_serving step outputs` (writes it) and the PipelineRun
controller (reads it). Two copies are written: the full one at <prefix>/_mlkube/summary.json
and a fitted one (`fit_summary`, at most 4 KiB: the kubelet's termination-message limit) in the
termination log. When fitting had to cut or drop anything the fitted copy says
`"truncated": true` and the reader must fetch the stored copy (docs/pipelines.md §2).

Artifact outputs carry the registry digest plus a listing fingerprint (sha256 over the sorted
relative paths and sizes), so the cache can re-check an output with one listing instead of
reading every byte back.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from mlkube.builders.pipeline_contract import OUTPUT_TYPES, OutputType, check_name
from mlkube.builders.pipeline_json import ContractError, json_fields, json_list, parse_json_fields

MAX_TERMINATION_BYTES: Final = 4096  # what the kubelet keeps of a termination message
MAX_VALUE_BYTES: Final = 1024  # a parameter output's value; an error message
MAX_STORED_BYTES: Final = 256 * 1024  # readers refuse a larger stored summary
MAX_METRICS: Final = 64  # per metrics output
_DIGEST_PREFIX: Final = "sha256:"


@dataclass(frozen=True)
class SummaryOutput:
    """One declared output as produced. artifact: uri, digest, size, file_count, listing;
    parameter: value; metrics: metrics."""

    name: str
    type: OutputType
    uri: str | None = None
    digest: str | None = None
    size: int | None = None
    file_count: int | None = None
    listing: str | None = None
    value: str | None = None
    metrics: Mapping[str, float] | None = None


@dataclass(frozen=True)
class StepSummary:
    """exit_code None = main was killed before it wrote its exit code."""

    exit_code: int | None
    outputs: tuple[SummaryOutput, ...] = ()
    error: str | None = None
    truncated: bool = False
    _metrics: dict[str, float] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        merged: dict[str, float] = {}
        for output in self.outputs:
            for name, number in (output.metrics or {}).items():
                if name in merged:
                    raise ContractError(f"metric {name!r} is reported by two metrics outputs")
                merged[name] = number
        object.__setattr__(self, "_metrics", merged)

    @property
    def metrics(self) -> dict[str, float]:
        """All metrics outputs merged: metric name -> number."""
        return dict(self._metrics)

    def output(self, name: str) -> SummaryOutput | None:
        return next((o for o in self.outputs if o.name == name), None)

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.error is None


def listing_fingerprint(files: Iterable[tuple[str, int]]) -> str:
    """sha256 over (relative POSIX path, size) in the digest's path order: equal for a local
    folder and its upload, changed by any added, removed, renamed or resized file."""
    hasher = hashlib.sha256()
    for path, size in sorted(files, key=lambda item: item[0].encode("utf-8")):
        hasher.update(path.encode("utf-8") + b"\x00" + str(int(size)).encode() + b"\n")
    return _DIGEST_PREFIX + hasher.hexdigest()


def cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character."""
    encoded = text.encode("utf-8")
    return text if len(encoded) <= limit else encoded[:limit].decode("utf-8", "ignore")


def to_json(summary: StepSummary) -> str:
    return json.dumps(_body(summary), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fit_summary(summary: StepSummary, limit: int = MAX_TERMINATION_BYTES) -> str:
    """The summary as JSON in at most `limit` UTF-8 bytes: first whole, then with parameter
    values and the error cut shorter, then without listings, at last only the exit code."""
    text = to_json(summary)
    if len(text.encode("utf-8")) <= limit:
        return text
    for chars in (256, 64, 16, 0):
        smaller = replace(
            summary,
            truncated=True,
            error=None if summary.error is None else cut(summary.error, max(chars, 64)),
            outputs=tuple(_shrink(o, chars) for o in summary.outputs),
        )
        text = to_json(smaller)
        if len(text.encode("utf-8")) <= limit:
            return text
    error = None if summary.error is None else cut(summary.error, 256)
    return to_json(StepSummary(summary.exit_code, error=error, truncated=True))


def _shrink(output: SummaryOutput, chars: int) -> SummaryOutput:
    """Parameter values cut to `chars`; at 0 the listing fingerprints go too."""
    value = None if output.value is None else cut(output.value, chars)
    return replace(output, value=value, listing=output.listing if chars else None)


def _body(summary: StepSummary) -> dict[str, Any]:
    body: dict[str, Any] = {
        "exitCode": summary.exit_code,
        "outputs": [_output_body(o) for o in summary.outputs],
    }
    if summary.error is not None:
        body["error"] = summary.error
    if summary.truncated:
        body["truncated"] = True
    return body


def _output_body(output: SummaryOutput) -> dict[str, Any]:
    body: dict[str, Any] = {"name": output.name, "type": output.type}
    optional = {
        "uri": output.uri, "digest": output.digest, "size": output.size,
        "fileCount": output.file_count, "listing": output.listing, "value": output.value,
        "metrics": None if output.metrics is None else dict(output.metrics),
    }  # fmt: skip
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def parse_summary(text: str | bytes) -> StepSummary:
    """A summary from the termination log or the store; anything off-contract is an error."""
    fields = parse_json_fields(text, "summary", MAX_STORED_BYTES, required=("exitCode",),
                               optional=("outputs", "error", "truncated"))  # fmt: skip
    exit_code = fields["exitCode"]
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        raise ContractError(f"summary: exitCode must be an integer or null, got {exit_code!r}")
    error = fields.get("error")
    if error is not None and not isinstance(error, str):
        raise ContractError("summary: error must be a string")
    truncated = fields.get("truncated", False)
    if not isinstance(truncated, bool):
        raise ContractError("summary: truncated must be a boolean")
    outputs = tuple(_parse_output(o) for o in json_list(fields.get("outputs", []), "outputs"))
    names = [o.name for o in outputs]
    if len(set(names)) != len(names):
        raise ContractError(f"summary: an output is reported twice: {names}")
    return StepSummary(exit_code, outputs, error, truncated)


def _parse_output(body: object) -> SummaryOutput:
    required = {"artifact": ("uri", "digest", "size", "fileCount"), "parameter": ("value",),
                "metrics": ("metrics",)}  # fmt: skip
    kind = body.get("type") if isinstance(body, Mapping) else None
    if kind not in OUTPUT_TYPES:
        raise ContractError(f"summary output: type {kind!r} not in {OUTPUT_TYPES}")
    optional = ("listing",) if kind == "artifact" else ()
    wanted = ("name", "type", *required[kind])
    fields = json_fields(body, f"summary output ({kind})", required=wanted, optional=optional)
    name = check_name(fields["name"], "output")
    if kind == "parameter":
        value = fields["value"]
        if not isinstance(value, str) or len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise ContractError(f"output {name}: value must be a string of <= 1 KiB")
        return SummaryOutput(name, "parameter", value=value)
    if kind == "metrics":
        return SummaryOutput(name, "metrics", metrics=check_metrics(fields["metrics"], name))
    for key in ("digest", "listing"):
        digest = fields.get(key)
        if key in fields and not (isinstance(digest, str) and _is_sha256(digest)):
            raise ContractError(f"output {name}: {key} {digest!r} is not sha256:<hex>")
    uri, size, count = fields["uri"], fields["size"], fields["fileCount"]
    if not isinstance(uri, str) or "://" not in uri:
        raise ContractError(f"output {name}: uri {uri!r} is not a URI")
    for key, number in (("size", size), ("fileCount", count)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ContractError(f"output {name}: {key} must be a non-negative integer")
    return SummaryOutput(name, "artifact", uri=uri, digest=fields["digest"], size=size,
                         file_count=count, listing=fields.get("listing"))  # fmt: skip


def check_metrics(body: object, output: str) -> dict[str, float]:
    """A metrics output: a JSON object of at most MAX_METRICS names -> finite numbers."""
    if not isinstance(body, Mapping):
        raise ContractError(f"output {output}: metrics must be a JSON object name -> number")
    if len(body) > MAX_METRICS:
        raise ContractError(f"output {output}: {len(body)} metrics, at most {MAX_METRICS}")
    found: dict[str, float] = {}
    for name, number in body.items():
        if not isinstance(name, str) or not name or len(name) > 128:
            raise ContractError(f"output {output}: metric name {name!r} is empty or too long")
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or not math.isfinite(number):
            raise ContractError(f"output {output}: metric {name!r} is {number!r}, not a number")
        found[name] = number
    return found


def _is_sha256(text: str) -> bool:
    hexdigest = text.removeprefix(_DIGEST_PREFIX)
    return text.startswith(_DIGEST_PREFIX) and len(hexdigest) == 64 and _is_hex(hexdigest)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
