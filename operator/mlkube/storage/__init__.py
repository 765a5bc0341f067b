"""The artifact storage and digest layer shared by the CLI, the operator and the serving image.

Resolves s3://, gs://, http(s)://, pvc://claim/path and file:// URIs with fsspec (cloud SDKs are
imported only when their scheme is used) and computes the one artifact digest everybody
verifies against (see docs/artifact-digest.md).
"""

from mlkube.storage.digest import ArtifactFacts
from mlkube.storage.errors import ArtifactNotFound, DigestMismatch, StorageError, UnsupportedScheme
from mlkube.storage.transfer import compute_digest, download, download_and_verify, upload

__all__ = [
    "ArtifactFacts",
    "ArtifactNotFound",
    "DigestMismatch",
    "StorageError",
    "UnsupportedScheme",
    "compute_digest",
    "download",
    "download_and_verify",
    "upload",
]
