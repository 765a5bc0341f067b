"""Errors of the router: the data plane's HTTP errors plus the router's own cases.

The classes come from the private HTTP core (`mlkube_serving._http.errors`), so the router,
the model server and the drift sidecar answer every refusal with the same `{"error": ...}`
body rendered in one place.
"""

from __future__ import annotations

from mlkube_serving._http.errors import (
    HttpError,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnreachable,
    render_error,
)
from mlkube_serving._http.errors import NotFound as _NotFound
from mlkube_serving._http.errors import Unauthorized as _Unauthorized

__all__ = [
    "ConfigError",
    "NoTraffic",
    "PayloadTooLarge",
    "RouterError",
    "Unauthorized",
    "UnknownDeployment",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamTooLarge",
    "UpstreamUnreachable",
    "render_error",
]

RouterError = HttpError  # every router error is a data-plane HTTP error


class ConfigError(ServiceUnavailable):
    """The router configuration file is missing, unreadable or does not match the schema."""


class Unauthorized(_Unauthorized):
    """Key auth is on and the request carries no key or a wrong one."""


class UnknownDeployment(_NotFound):
    """A targeting header names a deployment the endpoint does not have."""


class NoTraffic(ServiceUnavailable):
    """No deployment receives live traffic (all weights are zero)."""
