"""Errors of the storage layer: one hierarchy so callers can catch `StorageError` once.

The storage initializer maps these to exit codes, the CLI to messages and the Model controller
to a status reason (`reason`) and to retry-or-fail (`permanent`): a permanent error does not go
away by trying again (the bytes or the policy must change), a transient one (network, throttling)
may. Each error carries enough context (URI, digests, limits) to be understood without a traceback.
"""

from typing import ClassVar


class StorageError(Exception):
    """Base of every storage failure (transport errors are chained as `__cause__`).

    A plain StorageError is a transport or server problem: transient.
    """

    reason: ClassVar[str] = "ArtifactUnreadable"
    permanent: ClassVar[bool] = False


class UnsupportedScheme(StorageError):
    """The URI scheme is not one of s3, gs, http(s), pvc, file, or the operation is not
    possible on it (for example uploading to http)."""

    reason: ClassVar[str] = "ArtifactSchemeNotAllowed"
    permanent: ClassVar[bool] = True


class ArtifactNotFound(StorageError):
    """Nothing exists at the artifact URI (no file, no folder, no object prefix)."""

    reason: ClassVar[str] = "ArtifactNotFound"
    permanent: ClassVar[bool] = True


class InvalidArtifact(StorageError):
    """The artifact cannot be stored or verified as it is: a file path that would escape the
    destination folder, a malformed digest, an empty folder."""

    reason: ClassVar[str] = "ArtifactInvalid"
    permanent: ClassVar[bool] = True


class ArtifactLocationRefused(StorageError):
    """Policy refuses to read this location: a store outside the namespace's allow-list, a
    link-local, metadata or cluster-internal address, a local path outside dev mode."""

    reason: ClassVar[str] = "ArtifactLocationRefused"
    permanent: ClassVar[bool] = True


class ArtifactTooLarge(StorageError):
    """The artifact exceeds the byte or file-count cap of whoever reads it."""

    reason: ClassVar[str] = "ArtifactTooLarge"
    permanent: ClassVar[bool] = True


class ArtifactTimeout(StorageError):
    """Reading the artifact took longer than the wall-clock cap (a slow or endless source).
    Transient: a slow store may be faster next time."""

    reason: ClassVar[str] = "ArtifactTimeout"
    permanent: ClassVar[bool] = False


class DigestRequired(StorageError):
    """Bytes would be used without a registered digest to verify them against."""

    reason: ClassVar[str] = "DigestRequired"
    permanent: ClassVar[bool] = True


class ArtifactExists(StorageError):
    """An upload target already holds different bytes; artifacts are create-only."""

    reason: ClassVar[str] = "ArtifactExists"
    permanent: ClassVar[bool] = True


class DigestMismatch(StorageError):
    """The artifact's computed digest differs from the one recorded in the Model."""

    reason: ClassVar[str] = "DigestMismatch"
    permanent: ClassVar[bool] = True

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        self.uri = uri
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"digest mismatch for {uri}: expected {expected}, got {actual} "
            "(the artifact changed after registration or the transfer was corrupted)"
        )


def storage_error_in(exc: BaseException) -> StorageError | None:
    """A policy error raised deep inside a transport (e.g. an aiohttp hook or resolver) and
    re-wrapped by it: the StorageError in its cause/context chain, if any."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, StorageError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
