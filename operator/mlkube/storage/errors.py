"""Errors of the storage layer: one hierarchy so callers can catch `StorageError` once.

The storage initializer maps these to exit codes and the CLI maps them to messages, so each
error carries enough context (URI, digests) to be understood without a traceback.
"""


class StorageError(Exception):
    """Base of every storage failure (transport errors are chained as `__cause__`)."""


class UnsupportedScheme(StorageError):
    """The URI scheme is not one of s3, gs, http(s), pvc, file, or the operation is not
    possible on it (for example uploading to http)."""


class ArtifactNotFound(StorageError):
    """Nothing exists at the artifact URI (no file, no folder, no object prefix)."""


class DigestMismatch(StorageError):
    """The artifact's computed digest differs from the one recorded in the Model."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        self.uri = uri
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"digest mismatch for {uri}: expected {expected}, got {actual} "
            "(the artifact changed after registration or the transfer was corrupted)"
        )
