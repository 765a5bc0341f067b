"""The OCI client's errors: one hierarchy, each saying what was asked of which registry.

Callers (the environment controller, the build tools) turn them into conditions and
termination messages, so the text must make sense to a user without a stack trace.
"""

from __future__ import annotations


class OciError(Exception):
    """Anything that went wrong talking to a registry."""


class InvalidReference(OciError):
    """An image reference or digest that cannot be parsed."""


class RegistryUnreachable(OciError):
    """No HTTP answer at all: DNS, connection refused, TLS handshake, timeout."""


class RegistryError(OciError):
    """The registry answered with an unexpected status; `code` is the first OCI error code."""

    def __init__(self, message: str, *, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Unauthorized(RegistryError):
    """401/403: missing or wrong credentials, or a token without the needed scope."""


class NotFound(RegistryError):
    """404: the repository, tag, manifest or blob does not exist."""


class DigestMismatch(OciError):
    """Content whose sha256 differs from the digest it was fetched or pushed by."""


class NoMatchingPlatform(OciError):
    """An image index without a manifest for the wanted platform."""
