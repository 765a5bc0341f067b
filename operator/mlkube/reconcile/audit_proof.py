"""Proofs that an audit stamp was written by the operator's webhook, not by the user.

The mutating webhook fails open, so while it is down anyone who may create a Model can set
`mlkube.dev/created-by` themselves. Next to each stamp the webhook therefore writes an HMAC over
the stamp and what identifies this incarnation of the object: namespace, name, creation time
and (for last-modified-by) the generation the write produces. The key lives in a Secret only the
operator reads. The operator copies a stamp into status only when its proof verifies, and
reports `unknown` otherwise: a forged stamp, a stamp copied from another Model or from an
earlier Model of the same name, or a spec change made while the webhook was down.

The object's UID does not exist yet when a CREATE is admitted, so creation time stands in for
it: the proof's time must lie within CREATION_TOLERANCE_SECONDS of `creationTimestamp`. Names
from `generateName` are not known either; such proofs bind the prefix.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from mlkube.contract import (
    ANNOTATION_CREATED_BY,
    ANNOTATION_CREATED_BY_PROOF,
    ANNOTATION_LAST_MODIFIED_BY,
    ANNOTATION_LAST_MODIFIED_BY_PROOF,
)

PROOF_VERSION: Final = "v1"
# Admission happens just before the API server sets creationTimestamp; the operator's and the
# API server's clocks may differ a little.
CREATION_TOLERANCE_SECONDS: Final = 60
UNKNOWN_USER: Final = "unknown"


def _mac(key: bytes, *parts: str) -> str:
    message = "\n".join((PROOF_VERSION, *parts)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_created(key: bytes, *, namespace: str, name: str, created: int, user: str) -> str:
    """Proof for created-by; `name` is the object's name or, when generated, its prefix."""
    mac = _mac(key, "created-by", namespace, name, str(created), user)
    return f"{PROOF_VERSION}.{created}.{mac}"


def sign_modified(
    key: bytes, *, namespace: str, name: str, created: int, generation: int, user: str
) -> str:
    """Proof for last-modified-by at `generation` (the generation the admitted write produces)."""
    mac = _mac(key, "last-modified-by", namespace, name, str(created), str(generation), user)
    return f"{PROOF_VERSION}.{created}.{generation}.{mac}"


def epoch_of(timestamp: str | None) -> int | None:
    """Seconds since the epoch of an RFC 3339 timestamp such as metadata.creationTimestamp."""
    if not timestamp:
        return None
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(then.timestamp())


def trusted_stamps(meta: Mapping[str, Any], key: bytes | None) -> dict[str, str]:
    """created-by and last-modified-by as the webhook stamped them, `unknown` where unproven."""
    annotations = meta.get("annotations") or {}
    trusted = {ANNOTATION_CREATED_BY: UNKNOWN_USER, ANNOTATION_LAST_MODIFIED_BY: UNKNOWN_USER}
    created_at = epoch_of(meta.get("creationTimestamp"))
    if key is None or created_at is None:
        return trusted
    namespace = str(meta.get("namespace") or "")
    name, prefix = str(meta.get("name") or ""), str(meta.get("generateName") or "")
    names = {name, prefix} if prefix and name.startswith(prefix) else {name}
    generation = int(meta.get("generation") or 1)

    user = annotations.get(ANNOTATION_CREATED_BY)
    proof = str(annotations.get(ANNOTATION_CREATED_BY_PROOF) or "").split(".")
    if user and len(proof) == 3 and _fresh(proof[1], created_at):
        want = {sign_created(key, namespace=namespace, name=n, created=int(proof[1]), user=user)
                for n in names}  # fmt: skip
        if _matches(".".join(proof), want):
            trusted[ANNOTATION_CREATED_BY] = user

    user = annotations.get(ANNOTATION_LAST_MODIFIED_BY)
    proof = str(annotations.get(ANNOTATION_LAST_MODIFIED_BY_PROOF) or "").split(".")
    if user and len(proof) == 4 and _fresh(proof[1], created_at) and proof[2] == str(generation):
        want = {
            sign_modified(key, namespace=namespace, name=n, created=int(proof[1]),
                          generation=generation, user=user)
            for n in names
        }  # fmt: skip
        if _matches(".".join(proof), want):
            trusted[ANNOTATION_LAST_MODIFIED_BY] = user
    return trusted


def with_trusted_stamps(obj: Mapping[str, Any], key: bytes | None) -> dict[str, Any]:
    """A copy of `obj` whose audit annotations are the trusted ones (`unknown` where unproven),
    for code that reads the stamps from the object."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **trusted_stamps(meta, key)}
    return {**obj, "metadata": meta}


def _fresh(created: str, created_at: int) -> bool:
    return created.isdigit() and abs(int(created) - created_at) <= CREATION_TOLERANCE_SECONDS


def _matches(proof: str, candidates: set[str]) -> bool:
    return any(hmac.compare_digest(proof, want) for want in candidates)
