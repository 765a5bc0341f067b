"""The appended image's config and manifest, derived from the base's (pure, deterministic).

Nothing time-dependent goes in: `created` and the new history entry reuse the base's
`created`, so equal inputs give an equal config digest and an equal manifest digest.
"""

from __future__ import annotations

import copy
import json
from typing import Any

EPOCH = "1970-01-01T00:00:00Z"


def _merge_env(current: list[str], extra: dict[str, str]) -> list[str]:
    names = {item.split("=", 1)[0]: i for i, item in enumerate(current)}
    merged = list(current)
    for name, value in extra.items():
        entry = f"{name}={value}"
        if name in names:
            merged[names[name]] = entry
        else:
            merged.append(entry)
    return merged


def base_env(config: dict[str, Any]) -> dict[str, str]:
    items = (config.get("config") or {}).get("Env") or []
    return dict(item.split("=", 1) for item in items if "=" in item)


def new_config(
    base: dict[str, Any],
    *,
    diff_id: str,
    env: dict[str, str],
    labels: dict[str, str],
    created_by: str,
) -> dict[str, Any]:
    config = copy.deepcopy(base)
    created = str(base.get("created") or EPOCH)
    config["created"] = created
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("diff_ids", []).append(diff_id)
    config.setdefault("history", []).append(
        {"created": created, "created_by": created_by, "comment": "mlkube envbuild layer"}
    )
    inner = config.setdefault("config", {}) or {}
    config["config"] = inner
    inner["Env"] = _merge_env(list(inner.get("Env") or []), env)
    inner["Labels"] = {**(inner.get("Labels") or {}), **labels}
    return config


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def new_manifest(
    base: dict[str, Any],
    media_type: str,
    config: dict[str, Any],
    layer: dict[str, Any],
) -> dict[str, Any]:
    """The base manifest's layers + `layer`, with `config` (descriptors as dicts)."""
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config,
        "layers": [*base["layers"], layer],
    }
