"""The local step cache of `pipeline run-local`: the operator's layout and verdict, on disk.

Entries live where the operator keeps them in its artifact store
(`<store>/<namespace>/_mlkube/pipeline-cache/<hex>.json`, controllers/pipeline_cache.py), the
store being the local cache dir, and the decision is reconcile/pipeline_cache.py's: an entry
younger than maxAge whose artifact outputs still exist with their recorded digests (checked
by reading them back: local files are cheap to hash). A deleted or rewritten output is a miss
with its reason, never a silent hit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlparse

from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import Step
from mlkube.reconcile import pipeline_cache as keys

CACHE_DIR: Final = "_mlkube/pipeline-cache"
ENTRY_VERSION: Final = 1


def uri_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def _has_files(path: Path) -> bool:
    """As in an object store, a folder without files is no output at all."""
    if path.is_file():
        return True
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def content_digest(uri: str) -> str:
    """The registry's digest of the file or folder at `uri` (mlkube.storage)."""
    from mlkube.storage import compute_digest

    return compute_digest(uri).digest


class LocalCache:
    def __init__(self, store_dir: Path, namespace: str) -> None:
        self.root = store_dir / namespace / CACHE_DIR

    def entry_path(self, key: str) -> Path:
        return self.root / f"{key.split(':', 1)[-1]}.json"

    def _read(self, key: str) -> dict[str, Any] | None:
        path = self.entry_path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) else None

    def lookup(self, step: Step, key: str, policy: str) -> tuple[dict[str, Any] | None, str]:
        """(the entry when it may be reused, else None; the reason)."""
        entry = self._read(key)
        common: dict[str, Any] = {
            "key": key,
            "now": dt.datetime.now(dt.UTC),
            "max_age": parse_duration(step.cache.max_age),
            "max_age_text": step.cache.max_age,
            "policy": policy,
            "enabled": step.cache.enabled,
        }
        early = keys.cache_precheck(entry, **common)
        if early is not None or entry is None:
            return None, early or keys.NO_ENTRY
        checks: dict[str, keys.OutputState] = {}
        for out in keys.artifact_outputs(entry):
            uri = str(out.get("uri") or "")
            name = str(out.get("name"))
            if not uri.startswith("file://") or not _has_files(uri_path(uri)):
                checks[name] = "missing"
            else:
                checks[name] = "ok" if content_digest(uri) == out.get("digest") else "changed"
        hit, reason = keys.cache_verdict(entry, checks=checks, **common)
        return (entry if hit else None), reason

    def record(self, step: Step, key: str, run: str, outputs: Sequence[Mapping[str, Any]],
               metrics: Mapping[str, Any]) -> None:  # fmt: skip
        """The entry of a step that just succeeded (as the operator writes it)."""
        if not step.cache.enabled:
            return
        entry = {
            "v": ENTRY_VERSION,
            "key": key,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sourceRun": run,
            "step": step.name,
            "maxAgeSeconds": parse_duration(step.cache.max_age).total_seconds(),
            "outputs": [dict(o) for o in outputs],
            "metrics": dict(metrics),
        }
        path = self.entry_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, indent=1), encoding="utf-8")
        tmp.replace(path)  # a reader sees a whole entry or none
