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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline_store as store
from mlkube.reconcile import pipeline_cache as keys
from mlkube.reconcile.batch_schedule import format_time
from mlkube.reconcile.pipeline_cache import OutputState

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


def output_states(
    outputs: list[Mapping[str, Any]], namespace: str, config: OperatorConfig
) -> dict[str, OutputState]:
    """name → ok | missing | changed for recorded artifact outputs: one listing each, the full
    digest only when the listing differs from the one recorded (or none was)."""
    states: dict[str, OutputState] = {}
    for out in outputs:
        name, uri, want = str(out.get("name")), out.get("uri"), out.get("digest")
        if not uri or not want:
            continue  # the verdict names it
        found = store.fingerprint(str(uri), namespace, config)
        if found == "":
            states[name] = "missing"
        elif found is not None and found == out.get("fingerprint"):
            states[name] = "ok"
        else:
            same = store.digest(str(uri), namespace, config) == want
            states[name] = "ok" if same else "changed"
    return states


def verify_outputs(
    outputs: list[Mapping[str, Any]], namespace: str, config: OperatorConfig
) -> str | None:
    """Why the recorded artifact outputs cannot be reused (missing, digest changed), or None."""
    entry = {"outputs": outputs}
    checks = output_states(keys.artifact_outputs(entry), namespace, config)
    for out in sorted(keys.artifact_outputs(entry), key=lambda o: str(o.get("name"))):
        name = str(out.get("name"))
        if not out.get("uri") or not out.get("digest"):
            return f"output {name} has no recorded uri and digest"
        if checks.get(name) == "missing":
            return f"output {name} missing"
        if checks.get(name) == "changed":
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
    """The entry for `key` when it may be reused, else the reason it may not
    (reconcile/pipeline_cache.py decides). Raises StoreUnreadable when the store cannot be
    read (the caller retries later)."""
    found = store.read_json(entry_uri(artifact_store, namespace, key), namespace, config)
    entry = found if isinstance(found, dict) else None
    max_age = datetime.timedelta(seconds=max_age_seconds)
    early = keys.cache_precheck(entry, key=key, now=now, max_age=max_age,
                                max_age_text=max_age_text)  # fmt: skip
    if early is not None or entry is None:
        return Lookup(False, early or keys.NO_ENTRY)
    checks = output_states(keys.artifact_outputs(entry), namespace, config)
    hit, reason = keys.cache_verdict(entry, key=key, now=now, max_age=max_age, checks=checks,
                                     max_age_text=max_age_text)  # fmt: skip
    return Lookup(hit, reason, entry if hit else None)


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
        "created": format_time(now),
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
