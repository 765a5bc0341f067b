"""Errors of the API layer: one hierarchy so callers can catch `ApiError` once."""


class ApiError(Exception):
    """Base of every error raised by mlkube.api."""


class CrdGenError(ApiError):
    """A model cannot be expressed as a structural CRD schema."""


class InvalidObjectError(ApiError):
    """An object does not match its kind (wrong apiVersion/kind or invalid spec/status)."""
