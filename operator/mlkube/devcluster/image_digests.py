"""The image digests the dev cluster knows, for the operator setting MLKUBE_IMAGE_DIGESTS
(docs/pipelines.md §3): a pipeline step is cacheable only when its image resolves to a digest,
and the dev cluster has no registry to ask.

- Real node: the digest containerd recorded when `hack/images/build --import` loaded the image
  (`ctr images ls`), the same content the kubelet runs.
- kwok mode: step pods run as local processes from this checkout (the dev pod executor), so
  the "image" is the source tree the executor runs: its digest is a content digest of the
  serving image's sources (serving-image/, operator/mlkube/, pyproject.toml). An edit to the
  code a step runs changes it, as a rebuilt image would.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

SOURCE_ROOTS = ("serving-image/mlkube_serving", "operator/mlkube", "pyproject.toml")
_SKIP_PARTS = {"__pycache__"}


def setting(digests: Mapping[str, str]) -> str:
    """`image=sha256:…,…` (sorted, so the operator's environment does not change needlessly)."""
    return ",".join(f"{image}={digest}" for image, digest in sorted(digests.items()))


def _source_files(repo: Path) -> Iterator[Path]:
    for root in SOURCE_ROOTS:
        path = repo / root
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and not _SKIP_PARTS & set(file.parts) and file.suffix != ".pyc":
                    yield file


def source_digest(repo: Path) -> str:
    """sha256 over the relative paths and bytes of the sources a kwok-mode step runs."""
    digest = hashlib.sha256()
    for file in _source_files(repo):
        rel = file.relative_to(repo).as_posix().encode()
        data = file.read_bytes()
        digest.update(len(rel).to_bytes(8, "big") + rel + len(data).to_bytes(8, "big") + data)
    return f"sha256:{digest.hexdigest()}"


def containerd_digests(socket: str, refs: Mapping[str, str]) -> dict[str, str]:
    """ref → manifest digest for the imported images `refs` (name → ref) that containerd has."""
    listing = subprocess.run(
        ["ctr", "-a", socket, "-n", "k8s.io", "images", "ls"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    if listing.returncode != 0:
        return {}
    return parse_ctr_listing(listing.stdout, set(refs.values()))


def parse_ctr_listing(text: str, wanted: set[str]) -> dict[str, str]:
    """`ctr images ls` columns: REF TYPE DIGEST SIZE PLATFORMS LABELS."""
    found: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[0] in wanted and fields[2].startswith("sha256:"):
            found[fields[0]] = fields[2]
    return found
