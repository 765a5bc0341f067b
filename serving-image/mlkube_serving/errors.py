"""Errors of the model server, each carrying the HTTP status it maps to.

One hierarchy so the HTTP adapters never guess: anything a client did wrong is a 4xx with a
reason, anything the server could not do is a 5xx, and `render_error` is the single place that
turns an error into the `{"error": "..."}` body every protocol returns.
"""

from __future__ import annotations

import orjson


class ServingError(Exception):
    """Base error of the serving runtime; `status` is the HTTP status code it maps to."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidRequest(ServingError):
    """The request body or its tensors are malformed (bad JSON, shape, datatype)."""

    status = 400


class ModelNotFound(ServingError):
    """Unknown model name or version."""

    status = 404


class RouteNotFound(ServingError):
    """No endpoint at this path."""

    status = 404


class MethodNotAllowed(ServingError):
    """The path exists but not for this HTTP method."""

    status = 405


class PayloadTooLarge(ServingError):
    """The body exceeds the configured maximum size."""

    status = 413


class ClientDisconnected(ServingError):
    """The client went away before its body arrived: nothing to run, nobody to answer."""

    status = 499  # nginx's "client closed request", so metrics tell it apart from a 400


class TooManyRequests(ServingError):
    """The worker already holds its maximum number of in-flight requests."""

    status = 429


class ModelNotReady(ServingError):
    """The model is still loading or the server is shutting down."""

    status = 503


class RequestTimeout(ServingError):
    """The request did not finish within the configured timeout."""

    status = 504


class ModelLoadError(ServingError):
    """The model artifact could not be found, read or initialised."""

    status = 500


class InferenceError(ServingError):
    """The model failed on an input that passed validation (a server-side fault)."""

    status = 500


def render_error(exc: ServingError) -> tuple[int, bytes]:
    """Return the HTTP status and JSON body for an error."""
    return exc.status, orjson.dumps({"error": exc.message})
