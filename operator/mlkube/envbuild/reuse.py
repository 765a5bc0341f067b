"""The operator's reuse check (docs/environments.md §3, step 2): is there already an image
for this build key in the registry? HEAD of tag `build-<key32>`, then the image config's
labels give back what the build reported (packages, Python, serving contract, packaged
model), so a reused build fills the Environment's status without running anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlkube.envbuild import contract as k
from mlkube.oci import Client, parse


@dataclass(frozen=True)
class ExistingBuild:
    image: str  # repository@digest
    digest: str
    packages: list[str]
    python: str
    serving: dict[str, Any]
    size_bytes: int
    packaged_model: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)


def find_build(client: Client, repository: str, build_key: str) -> ExistingBuild | None:
    """The image tagged for `build_key` in `repository` (`registry/prefix/environments`), or
    None when the tag is absent or was made for another key (a tag prefix collision).
    Registry errors (unreachable, unauthorized) propagate: the caller must not build blind."""
    ref = parse(f"{repository}:{k.build_tag(build_key)}")
    if client.head_manifest(ref) is None:
        return None
    image = client.get_image(ref)
    config = json.loads(client.get_blob(image.reference, image.config.digest))
    labels: dict[str, str] = (config.get("config") or {}).get("Labels") or {}
    if labels.get(k.LABEL_BUILD_KEY) != build_key:
        return None
    # The index digest when there is one; builds push a single image manifest.
    digest = image.index_digest or image.reference.digest or ""
    model = labels.get(k.LABEL_PACKAGED_MODEL)
    return ExistingBuild(
        image=f"{ref.name}@{digest}",
        digest=digest,
        packages=k.decode_packages(labels[k.LABEL_PACKAGES]) if k.LABEL_PACKAGES in labels else [],
        python=labels.get(k.LABEL_PYTHON, ""),
        serving=json.loads(labels.get(k.LABEL_SERVING) or "{}"),
        size_bytes=sum(layer.size for layer in image.layers),
        packaged_model=json.loads(model) if model else None,
        labels=labels,
    )
