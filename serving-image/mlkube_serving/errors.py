"""Errors of the model server: the data plane's HTTP errors plus the server's own cases.

Every class carries the HTTP status it maps to (the hierarchy lives in the private HTTP core,
`mlkube_serving._http.errors`, shared with the router and the drift sidecar): anything a client
did wrong is a 4xx with a reason, anything the server could not do is a 5xx, and
`render_error` is the single place that turns an error into the `{"error": "..."}` body.
"""

from __future__ import annotations

from mlkube_serving._http.errors import (
    BadRequest,
    ClientDisconnected,
    HttpError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    render_error,
)

__all__ = [
    "ClientDisconnected",
    "InferenceError",
    "InvalidRequest",
    "MethodNotAllowed",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotReady",
    "PayloadTooLarge",
    "RequestTimeout",
    "RouteNotFound",
    "ServingError",
    "TooManyRequests",
    "render_error",
]

ServingError = HttpError  # every serving error is a data-plane HTTP error


class InvalidRequest(BadRequest):
    """The request body or its tensors are malformed (bad JSON, shape, datatype)."""


class ModelNotFound(NotFound):
    """Unknown model name or version."""


class RouteNotFound(NotFound):
    """No endpoint at this path."""


class ModelNotReady(ServiceUnavailable):
    """The model is still loading or the server is shutting down."""


class RequestTimeout(HttpError):
    """The request did not finish within the configured timeout."""

    status = 504


class ModelLoadError(HttpError):
    """The model artifact could not be found, read or initialised."""

    status = 500


class InferenceError(HttpError):
    """The model failed on an input that passed validation (a server-side fault)."""

    status = 500
