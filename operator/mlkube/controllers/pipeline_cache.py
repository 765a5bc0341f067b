"""The step cache in the artifact store: entries, their re-verification, input digests.

docs/pipelines.md §3. An entry `<store>/<namespace>/_mlkube/pipeline-cache/<key>.json` says
which run produced the outputs of a step with that key; a hit needs an entry younger than the
step's maxAge whose artifact outputs still exist and still have their digests (a deleted or
rewritten output is a miss with a reason, never a silent hit: kubeflow/pipelines#7939). The
listing fingerprint recorded in the entry lets an unchanged output be verified by one listing
instead of reading it. Inputs given by URI without a digest are digested by the operator,
memoised by their listing fingerprint in this process and in the store.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any, Final

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline_store as store

CACHE_DIR: Final = "_mlkube/pipeline-cache"
ENTRY_VERSION: Final = 1


@dataclass(frozen=True)
class Lookup:
    hit: bool
    reason: str  # docs/pipelines.md §3: hit, no entry, expired (maxAge 30d), output X missing...
    entry: dict[str, Any] | None = None


def cache_root(artifact_store: str, namespace: str) -> str:
    return f"{artifact_store.rstrip('/')}/{namespace}/{CACHE_DIR}"


def _hex(key: str) -> str:
    return key.split(":", 1)[-1]


def entry_uri(artifact_store: str, namespace: str, key: str) -> str:
    return f"{cache_root(artifact_store, namespace)}/{_hex(key)}.json"


def _parse_time(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def verify_outputs(
    outputs: list[dict[str, Any]], namespace: str, config: OperatorConfig
) -> str | None:
    """Why the recorded artifact outputs cannot be reused (missing, digest changed), or None."""
    for out in outputs:
        if out.get("type", "artifact") != "artifact":
            continue
        name, uri, want = out.get("name"), out.get("uri"), out.get("digest")
        if not uri or not want:
            return f"output {name} has no recorded uri and digest"
        found = store.fingerprint(uri, namespace, config)
        if found == "":
            return f"output {name} missing"
        if found is not None and found == out.get("fingerprint"):
            continue
        if store.digest(uri, namespace, config) != want:
            return f"output {name} digest changed"
    return None


def lookup(
    artifact_store: str,
    namespace: str,
    key: str,
    *,
    max_age_seconds: float,
    max_age_text: str,
    now: datetime.datetime,
    config: OperatorConfig,
) -> Lookup:
    """The entry for `key` when it may be reused, else the reason it may not.
    Raises StoreUnreadable when the store cannot be read (the caller retries later)."""
    entry = store.read_json(entry_uri(artifact_store, namespace, key), namespace, config)
    if not isinstance(entry, dict) or entry.get("key") != key:
        return Lookup(False, "no entry")
    created = _parse_time(entry.get("created"))
    if created is None or (now - created).total_seconds() > max_age_seconds:
        return Lookup(False, f"expired (maxAge {max_age_text})")
    problem = verify_outputs(list(entry.get("outputs") or []), namespace, config)
    if problem is not None:
        return Lookup(False, problem)
    return Lookup(True, "hit", entry)


def record(
    artifact_store: str,
    namespace: str,
    key: str,
    *,
    run: str,
    step: str,
    outputs: list[dict[str, Any]],
    metrics: dict[str, Any],
    max_age_seconds: float,
    now: datetime.datetime,
    config: OperatorConfig,
) -> dict[str, Any]:
    """Write the entry of a step that just succeeded (outputs with their listing
    fingerprints, so a later hit is verified by a listing)."""
    printed = []
    for out in outputs:
        out = dict(out)
        if out.get("type", "artifact") == "artifact" and out.get("uri"):
            print_ = store.fingerprint(str(out["uri"]), namespace, config)
            if print_:
                out["fingerprint"] = print_
        printed.append(out)
    entry = {
        "v": ENTRY_VERSION,
        "key": key,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sourceRun": run,
        "step": step,
        "maxAgeSeconds": max_age_seconds,
        "outputs": printed,
        "metrics": metrics,
    }
    store.write_json(entry_uri(artifact_store, namespace, key), namespace, config, entry)
    return entry


def input_digest(artifact_store: str, namespace: str, uri: str, config: OperatorConfig) -> str:
    """The content digest of the artifact at `uri`, re-read only when its listing changed.
    Raises StoreUnreadable when it is missing or unreadable."""
    print_ = store.fingerprint(uri, namespace, config)
    if print_ == "":
        raise store.StoreUnreadable(f"input {uri} does not exist")
    if print_ is None:
        return store.digest(uri, namespace, config)
    known = store.DigestMemo.get(uri, print_)
    if known is not None:
        return known
    memo_uri = (
        f"{cache_root(artifact_store, namespace)}/inputs/"
        f"{hashlib.sha256(uri.encode()).hexdigest()}.json"
    )
    memo = store.read_json(memo_uri, namespace, config)
    if isinstance(memo, dict) and memo.get("uri") == uri and memo.get("fingerprint") == print_:
        value = str(memo.get("digest"))
    else:
        value = store.digest(uri, namespace, config)
        store.write_json(
            memo_uri, namespace, config, {"uri": uri, "fingerprint": print_, "digest": value}
        )
    store.DigestMemo.put(uri, print_, value)
    return value
