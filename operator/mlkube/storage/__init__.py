"""The artifact storage and digest layer shared by the CLI, the operator and the serving image.

Resolves s3://, gs://, http(s)://, pvc://claim/path and file:// URIs with fsspec (cloud SDKs are
imported only when their scheme is used) and computes the one artifact digest everybody
verifies against (see docs/artifact-digest.md). Reads are bounded by a `FetchPolicy`
(docs/artifact-storage.md); uploads are content-addressed and create-only.
"""

from mlkube.storage.digest import ArtifactFacts
from mlkube.storage.errors import (
    ArtifactExists,
    ArtifactLocationRefused,
    ArtifactNotFound,
    ArtifactTimeout,
    ArtifactTooLarge,
    DigestMismatch,
    DigestRequired,
    InvalidArtifact,
    StorageError,
    UnsupportedScheme,
)
from mlkube.storage.policy import UNRESTRICTED, FetchLimits, FetchPolicy
from mlkube.storage.transfer import compute_digest, download, download_and_verify
from mlkube.storage.upload import artifact_prefix, publish, upload

__all__ = [
    "UNRESTRICTED",
    "ArtifactExists",
    "ArtifactFacts",
    "ArtifactLocationRefused",
    "ArtifactNotFound",
    "ArtifactTimeout",
    "ArtifactTooLarge",
    "DigestMismatch",
    "DigestRequired",
    "FetchLimits",
    "FetchPolicy",
    "InvalidArtifact",
    "StorageError",
    "UnsupportedScheme",
    "artifact_prefix",
    "compute_digest",
    "download",
    "download_and_verify",
    "publish",
    "upload",
]
