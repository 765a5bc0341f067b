"""`step inputs`: materialise a step's artifact inputs, verified, before `main` starts.

Each input is downloaded to <root>/inputs/<name>/ with the storage initializer's code
(mlkube.storage.download_and_verify: s3, gs, http(s), file, pvc) and checked against the digest
the operator put in the manifest; a mismatch removes the files and fails the pod, so a step never
runs on bytes its cache key does not describe. The folder of each artifact output is created
here too, world-writable: `main` may run as another uid than this image, and the volume is the
pod's own emptyDir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlkube.builders.pipeline_contract import StepManifest, StepPaths
from mlkube.storage import DigestMismatch, StorageError, download_and_verify
from mlkube_serving.step.errors import StepError


@dataclass(frozen=True)
class Fetched:
    name: str
    digest: str
    size: int
    file_count: int


def prepare(manifest: StepManifest, paths: StepPaths) -> list[Fetched]:
    """Download and verify every input, then create the output folders."""
    # In a pod both are mounts (this is a no-op); the run volume is not mounted here at all.
    for folder in (paths.inputs, paths.outputs):
        os.makedirs(folder, exist_ok=True)
    fetched = [_fetch(manifest, paths, index) for index in range(len(manifest.inputs))]
    for output in manifest.outputs:
        if output.type == "artifact":
            folder = paths.output(output.name)
            os.makedirs(folder, exist_ok=True)
            os.chmod(folder, 0o777)  # main's uid may differ; a per-pod emptyDir
    return fetched


def _fetch(manifest: StepManifest, paths: StepPaths, index: int) -> Fetched:
    item = manifest.inputs[index]
    dest = paths.input(item.name)
    os.makedirs(dest, exist_ok=True)
    try:
        facts = download_and_verify(item.uri, dest, item.digest)
    except DigestMismatch as exc:
        raise StepError(
            f"input {item.name}: digest mismatch for {item.uri}: expected {exc.expected}, "
            f"actual {exc.actual} (the data changed since the run resolved it)"
        ) from exc
    except StorageError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise StepError(f"input {item.name}: {exc}{cause}") from exc
    except OSError as exc:
        raise StepError(f"input {item.name}: cannot write {dest}: {exc}") from exc
    return Fetched(item.name, facts.digest, facts.size, facts.file_count)
