"""The content-addressed step cache's pure half: the key, the verdict, image digests.

docs/pipelines.md §3. The key is a sha256 over canonical JSON (sorted keys, no whitespace) of
what decides a step's outputs: namespace, image *digest* (never a tag that may move:
kubeflow/pipelines#13862), command, args and env as rendered, input *content* digests (minus
`ignoredInputs`), every run parameter (step pods see them all as MLKUBE_PARAM_<NAME>), the
declared outputs and `cache.version`. Retry, timeout, resources, dependsOn and `when` are not
in it. A hit is never trusted blindly: the caller lists the entry's artifact outputs and passes
what it found to `cache_verdict`, which says hit or why not (kubeflow/pipelines#7939).

    cache_key(namespace=, image_digest=, command=, args=, env=, inputs=, outputs=, version=,
              parameters=, ignored_inputs=) -> "sha256:<64 hex>"
    cache_label(key) -> the Job label value (first 63 hex characters)
    cache_precheck(entry, key=, now=, max_age=, ...) -> miss reason before any listing, or None
    cache_verdict(entry, key=, now=, max_age=, checks=, ...) -> (hit, reason)
    artifact_outputs(entry) -> the entry's artifact outputs the caller must verify
    parse_image_digests(text) / resolve_image_digest(image, digests) / normalize_image(ref)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from mlkube.reconcile.pipeline_retry import parse_time

KEY_VERSION: Final = 1
SETTING: Final = "MLKUBE_IMAGE_DIGESTS"
DIGEST_PATTERN: Final = re.compile(r"sha256:[0-9a-f]{64}")
# Reasons written to status.steps[].cache.reason (docs/pipelines.md §3).
HIT: Final = "hit"
NO_ENTRY: Final = "no entry"
DISABLED: Final = "disabled"
FORCE_RERUN: Final = "ForceRerun"
OutputState = Literal["ok", "missing", "changed"]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def cache_key(
    *,
    namespace: str,
    image_digest: str,
    command: Sequence[str],
    args: Sequence[str],
    env: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, str],
    outputs: Iterable[tuple[str, str]],
    version: str,
    parameters: Mapping[str, str],
    ignored_inputs: Iterable[str] = (),
) -> str:
    """sha256 of the canonical step: `env` is the rendered wire form ({name, value} or
    {name, valueFrom}, in order: later entries may refer to earlier ones), `inputs` name →
    content digest, `outputs` (name, type) pairs (order does not matter)."""
    ignored = set(ignored_inputs)
    body = {
        "v": KEY_VERSION,
        "namespace": namespace,
        "image": image_digest,
        "command": list(command),
        "args": list(args),
        "env": [dict(e) for e in env],
        "inputs": {k: v for k, v in inputs.items() if k not in ignored},
        "outputs": [{"name": n, "type": t} for n, t in sorted(set(outputs))],
        "parameters": dict(parameters),
        "version": version,
    }
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def cache_label(key: str) -> str:
    """The `mlkube.dev/cache-key` label value: a label value holds at most 63 characters."""
    return key.removeprefix("sha256:")[:63]


def cache_precheck(
    entry: Mapping[str, Any] | None,
    *,
    key: str | None,
    now: dt.datetime,
    max_age: dt.timedelta,
    max_age_text: str = "30d",
    policy: str = "Default",
    enabled: bool = True,
    uncacheable: str | None = None,
) -> str | None:
    """Why the step cannot be served from the cache before anything is listed, or None
    (then list `artifact_outputs(entry)` and call `cache_verdict`). `key` None with
    `uncacheable` the reason: the step has no key. An entry from the future counts as new."""
    if not enabled:
        return DISABLED
    if uncacheable is not None or key is None:
        return f"uncacheable: {uncacheable or 'no cache key'}"
    if policy == "ForceRerun":
        return FORCE_RERUN
    if entry is None or entry.get("key") != key:
        return NO_ENTRY
    created = parse_time(entry.get("created"))
    if created is None or now - created > max_age:
        return f"expired (maxAge {max_age_text})"
    return None


def artifact_outputs(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The entry's artifact outputs ({name, uri, digest, fingerprint?}): each must be listed
    (and digested when its fingerprint changed) before a hit."""
    outputs = entry.get("outputs") or []
    return [
        o for o in outputs if isinstance(o, Mapping) and o.get("type", "artifact") == "artifact"
    ]


def cache_verdict(
    entry: Mapping[str, Any] | None,
    *,
    key: str | None,
    now: dt.datetime,
    max_age: dt.timedelta,
    checks: Mapping[str, OutputState],
    max_age_text: str = "30d",
    policy: str = "Default",
    enabled: bool = True,
    uncacheable: str | None = None,
) -> tuple[bool, str]:
    """(hit, reason): the precheck, then every artifact output of the entry must have been
    verified `ok` (`checks`: output name → ok | missing | changed; absent = not verified)."""
    early = cache_precheck(
        entry, key=key, now=now, max_age=max_age, max_age_text=max_age_text,
        policy=policy, enabled=enabled, uncacheable=uncacheable,
    )  # fmt: skip
    if early is not None or entry is None:
        return False, early or NO_ENTRY
    for output in sorted(artifact_outputs(entry), key=lambda o: str(o.get("name"))):
        name = str(output.get("name"))
        state = checks.get(name)
        if not output.get("uri") or not output.get("digest"):
            return False, f"output {name} has no recorded uri and digest"
        if state == "missing":
            return False, f"output {name} missing"
        if state == "changed":
            return False, f"output {name} digest changed"
        if state != "ok":
            return False, f"output {name} not verified"
    return True, HIT


def normalize_image(ref: str) -> str:
    """`python:3.11` → `docker.io/library/python:3.11`; no tag → `:latest`; a digest is kept
    (`name@sha256:…`, the tag dropped), so equal images compare equal however written."""
    ref = ref.strip()
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}"
        first, _, rest = name.partition("/")
    if first == "docker.io" and "/" not in rest:
        name = f"docker.io/library/{rest}"
    if digest:
        return f"{name}@{digest}"
    return f"{name}:{tag or 'latest'}"


def parse_image_digests(text: str) -> tuple[tuple[str, str], ...]:
    """`image=sha256:…,image2=sha256:…` as sorted (normalised image, digest) pairs.
    Raises ValueError naming the bad item."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        image, sep, digest = item.rpartition("=")
        image, digest = image.strip(), digest.strip()
        if not sep or not image:
            raise ValueError(f"{SETTING}: {item!r} is not image=sha256:<64 hex>")
        if not DIGEST_PATTERN.fullmatch(digest):
            raise ValueError(f"{SETTING}: {item!r}: {digest!r} is not sha256:<64 hex>")
        pairs[normalize_image(image)] = digest
    return tuple(sorted(pairs.items()))


def resolve_image_digest(
    image: str, digests: Iterable[tuple[str, str]] | Mapping[str, str]
) -> tuple[str | None, str]:
    """(digest, "") for an image pinned by `@sha256:` or listed in MLKUBE_IMAGE_DIGESTS, else
    (None, the `uncacheable` reason)."""
    _, at, pinned = image.partition("@")
    if at and DIGEST_PATTERN.fullmatch(pinned):
        return pinned, ""
    known = dict(digests.items() if isinstance(digests, Mapping) else digests)
    wanted = normalize_image(image)
    for listed, digest in known.items():
        if normalize_image(listed) == wanted:
            return digest, ""
    return None, f"image {image} is not pinned by digest and not in {SETTING}"


_REPO_DIGEST: Final = re.compile(r"@(sha256:[a-f0-9]{64})$")


def image_moved(keyed: str | None, ran: str | None) -> str | None:
    """Why a finished step's outputs must not be cached, when the kubelet reports that `main`
    ran another image than the key's digest (a tag resolved through a stale
    MLKUBE_IMAGE_DIGESTS that has since been rebuilt: kubeflow/pipelines#13862), else None.

    Only a repository digest (`name@sha256:…`) is comparable: a bare image ID (`sha256:…`, what
    containerd reports for an image imported without a registry) is the config digest, not
    the manifest digest the key holds, so it proves nothing either way.
    """
    found = _REPO_DIGEST.search(ran or "")
    if keyed is None or found is None or found.group(1) == keyed:
        return None
    return (
        f"not cached: main ran {found.group(1)}, the cache key used {keyed}"
        " (the image's tag moved; update MLKUBE_IMAGE_DIGESTS or pin the image by digest)"
    )
