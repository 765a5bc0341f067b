"""`step outputs`: after `main` ends, upload and digest its outputs and report the summary.

Decisions (docs/pipelines.md §2):
- main killed (no exit code): summary `exitCode: null`, nothing uploaded, exit 0 — the pod
  already fails through `main`; this container must not add a second, misleading failure.
- main exited N != 0: summary `exitCode: N`, nothing uploaded, exit 0, same reason.
- main exited 0: every declared output is checked first (collect); any problem → summary with
  the error, nothing uploaded, exit 1. Else artifacts are uploaded to <prefix>/outputs/<name>
  with their digests and listings, then the full summary is written to
  <prefix>/_mlkube/summary.json (last: its presence means the outputs are complete).
"""

from __future__ import annotations

import contextlib

from fsspec import AbstractFileSystem

from mlkube.builders.pipeline_contract import StepManifest, StepPaths, output_uri, summary_uri
from mlkube.builders.pipeline_summary import (
    MAX_VALUE_BYTES,
    StepSummary,
    SummaryOutput,
    cut,
    listing_fingerprint,
    to_json,
)
from mlkube.storage.errors import StorageError
from mlkube_serving.step.collect import collect
from mlkube_serving.step.errors import StepError
from mlkube_serving.step.upload import open_store, upload_output, write_text
from mlkube_serving.step.wait import POLL_SECONDS, wait_for_main

KILLED = "main ended without an exit code (killed: out of memory, deadline or deletion)"


def run_outputs(
    manifest: StepManifest, paths: StepPaths, poll: float = POLL_SECONDS
) -> tuple[StepSummary, int]:
    """Wait for main, then (summary, exit code of this program)."""
    fs = _warm(manifest.prefix)
    code = wait_for_main(paths, poll)
    if code is None:
        return StepSummary(None, error=KILLED), 0
    if code != 0:
        return StepSummary(code), 0
    try:
        summary = StepSummary(0, _produce(manifest, paths, fs))
    except (StepError, StorageError) as exc:
        summary = StepSummary(0, error=cut(str(exc), MAX_VALUE_BYTES))
        _store_quietly(manifest, summary, fs)
        return summary, 1
    try:
        write_text(summary_uri(manifest.prefix), to_json(summary), fs)
    except (StepError, StorageError) as exc:
        failed = StepSummary(0, error=cut(f"cannot write the summary: {exc}", MAX_VALUE_BYTES))
        return failed, 1
    return summary, 0


def _warm(prefix: str) -> AbstractFileSystem | None:
    """The store's filesystem, opened before main ends; None (each write opens its own and
    reports the error then) when it cannot be opened now."""
    try:
        fs = open_store(prefix)
        connect = getattr(fs, "connect", None)  # s3fs: build the client now (no request)
        if callable(connect):
            connect()
        return fs
    except Exception:
        return None


def _produce(
    manifest: StepManifest, paths: StepPaths, fs: AbstractFileSystem | None
) -> tuple[SummaryOutput, ...]:
    checked = collect(manifest, paths)
    produced: list[SummaryOutput] = []
    for output in manifest.outputs:
        if output.type != "artifact":
            produced.append(checked[output.name])
            continue
        uri = output_uri(manifest.prefix, output.name)
        what = f"output {output.name}"
        try:
            facts, listing = upload_output(paths.output(output.name), uri, what, fs)
        except StorageError as exc:
            raise StepError(f"{what}: {exc}") from exc
        produced.append(
            SummaryOutput(
                output.name,
                "artifact",
                uri=uri,
                digest=facts.digest,
                size=facts.size,
                file_count=facts.file_count,
                listing=listing_fingerprint(listing),
            )
        )
    return tuple(produced)


def _store_quietly(
    manifest: StepManifest, summary: StepSummary, fs: AbstractFileSystem | None
) -> None:
    """The failed summary in the store too (the pod may be gone when the operator looks);
    best effort: the termination log has it already."""
    with contextlib.suppress(StorageError, StepError):
        write_text(summary_uri(manifest.prefix), to_json(summary), fs)
