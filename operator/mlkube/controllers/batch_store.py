"""The operator's reads of a BatchJob's output folder: progress files, summaries, manifest.

docs/batch-endpoints.md §4: the store is the truth, the operator polls it. Reads go through
`mlkube.storage` with the operator's fetch policy (file:// and pvc:// only in dev mode, no
internal hosts, per-request timeouts) and the per-namespace store allow-list, every file is
read with a byte cap, and a progress file is re-read only when its listing entry (size, mtime
or ETag) changed since the last poll. Nothing here imports a data-plane library (pyarrow,
pandas): these are small JSON files.
"""

from __future__ import annotations

import posixpath
from typing import Final

from mlkube.builders.operator_config import OperatorConfig, fetch_policy, store_problem
from mlkube.controllers.memo import FingerprintMemo
from mlkube.storage.bounded import read_stream_bounded
from mlkube.storage.errors import StorageError
from mlkube.storage.locations import Location, check_location, open_filesystem, resolve

PROGRESS_DIR: Final = "_mlkube/progress"
PROGRESS_CAP: Final = 16 * 1024
SUMMARY_CAP: Final = 16 * 1024
MANIFEST_CAP: Final = 8 * 1024 * 1024  # a manifest lists every part: big jobs, big manifests
WORK_CAP: Final = 8 * 1024 * 1024
MAX_PROGRESS_FILES: Final = 1000  # one per index; the Indexed Job has at most 1000
_CACHE_SIZE: Final = 20_000
# Progress files by name, with the listing entry they were read at (process-wide).
_PROGRESS: Final = FingerprintMemo[bytes](_CACHE_SIZE)


class StoreUnreadable(Exception):
    """The operator may not or cannot read the output (a fallback applies; never fatal)."""


class OutputReader:
    """Bounded reads below one output folder, with a process-wide cache of progress files."""

    def __init__(self, output: str, namespace: str, config: OperatorConfig) -> None:
        refused = store_problem(output, namespace, config)
        if refused:
            raise StoreUnreadable(refused)
        self.policy = fetch_policy(config)
        try:
            self.location: Location = resolve(output.rstrip("/") + "/")
            check_location(self.location, self.policy)
            self.fs = open_filesystem(self.location, policy=self.policy)
        except StorageError as err:
            raise StoreUnreadable(str(err)) from err

    def _path(self, relpath: str) -> str:
        return posixpath.join(self.location.path.rstrip("/"), relpath)

    def read(self, relpath: str, cap: int) -> bytes | None:
        """The file's bytes, None when it does not exist; StoreUnreadable otherwise."""
        path = self._path(relpath)
        try:
            with self.fs.open(path, "rb") as stream:
                return read_stream_bounded(stream, cap, relpath)
        except FileNotFoundError:
            return None
        except (OSError, StorageError, ValueError) as err:
            raise StoreUnreadable(f"reading {relpath}: {err}") from err

    def progress_files(self) -> list[bytes]:
        """Every index's progress file (unchanged ones from the cache)."""
        root = self._path(PROGRESS_DIR)
        try:
            entries = self.fs.ls(root, detail=True)
        except FileNotFoundError:
            return []
        except (OSError, StorageError, ValueError) as err:
            raise StoreUnreadable(f"listing {PROGRESS_DIR}: {err}") from err
        files = sorted(
            (e for e in entries if e.get("type") == "file" and str(e["name"]).endswith(".json")),
            key=lambda e: str(e["name"]),
        )[:MAX_PROGRESS_FILES]
        out = []
        for entry in files:
            name = str(entry["name"])
            key = (entry.get("size"), entry.get("mtime"), entry.get("ETag"),
                   str(entry.get("LastModified", "")))  # fmt: skip
            data = _PROGRESS.get(name, key)
            if data is None:
                data = self.read(posixpath.join(PROGRESS_DIR, posixpath.basename(name)),
                                 PROGRESS_CAP)  # fmt: skip
                if data is None:
                    continue
                _PROGRESS.put(name, key, data)
            out.append(data)
        return out
