"""Curated environments in the kwok mode: stand-in images in the loopback registry.

kwok fakes the node, and the dev pod executor runs build and serving pods as local processes
from this checkout, so no image is ever run. The operator still resolves a curated base to a
digest in the registry (docs/environments.md §3: the base digest is a build input), so the
dev cluster pushes, per curated environment, a layer-less image whose tag and labels name the
sources the executor runs (image_digests.source_digest): an edit to them makes new digests,
as rebuilt images would, and builds on the old ones are not reused.
"""

from __future__ import annotations

import json

from mlkube.devcluster import buildsupport, registry
from mlkube.oci import Client, mediatypes, parse, sha256_digest

LABEL = "dev.mlkube.kwok-stand-in"


def build_config(target: str, source_digest: str) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Labels": {LABEL: target, "dev.mlkube.sources": source_digest},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    return json.dumps(config, sort_keys=True).encode()


def push_stand_ins(address: str, source_digest: str) -> dict[str, str]:
    """target → `<address>/mlkube/<target>@sha256:…` for the serving image and its variants
    (the shape `buildsupport.push_images` returns on the real node)."""
    client = Client(insecure=[address], timeout=10)
    tag = source_digest.removeprefix("sha256:")[:16]
    pushed: dict[str, str] = {}
    for target in (buildsupport.FALLBACK_TARGET, *buildsupport.VARIANT_TARGETS):
        ref = parse(f"{address}/{registry.REPOSITORY_PREFIX}/{target}:{tag}")
        config = build_config(target, source_digest)
        config_digest = sha256_digest(config)
        client.upload_blob(ref, config_digest, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": config_digest,
                       "size": len(config)},
            "layers": [],
        }  # fmt: skip
        digest = client.put_manifest(ref, json.dumps(manifest).encode(), mediatypes.OCI_MANIFEST)
        pushed[target] = f"{address}/{registry.REPOSITORY_PREFIX}/{target}@{digest}"
    return pushed
