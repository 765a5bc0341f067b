"""The listing of an artifact: (relative path, size) of each file, without reading any content.

What the pipeline cache re-checks a cached step output with: `pipeline_summary.listing_fingerprint`
over this listing equals the fingerprint the step's `outputs` container recorded at upload
unless a file was added, removed, renamed or resized. One listing request per prefix page
instead of a full read (docs/pipelines.md §3); a same-size overwrite is not seen, which is why
the cache also has maxAge and the store's outputs are written once per attempt.
"""

from __future__ import annotations

from mlkube.storage.errors import StorageError
from mlkube.storage.locations import check_location, open_filesystem, resolve
from mlkube.storage.policy import UNRESTRICTED, Budget, FetchPolicy
from mlkube.storage.transfer import list_entries, translated_errors


def list_files(uri: str, policy: FetchPolicy = UNRESTRICTED) -> list[tuple[str, int]]:
    """(relative POSIX path, size) of every file of the artifact at `uri`, in digest order
    (a single file: its basename). Raises ArtifactNotFound when nothing is there and
    StorageError when the store does not say a file's size (then compute the digest)."""
    location = resolve(uri)
    check_location(location, policy)
    budget = Budget(policy.limits, uri)
    with translated_errors("list", uri, budget):
        fs = open_filesystem(location, policy=policy)
        entries = list_entries(location, fs, budget)
    unsized = [entry.relpath for entry in entries if entry.size is None]
    if unsized:
        raise StorageError(f"{uri}: the store gives no size for {unsized[0]}")
    return [(entry.relpath, int(entry.size or 0)) for entry in entries]
