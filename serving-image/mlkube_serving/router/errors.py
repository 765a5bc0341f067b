"""Errors of the router, each carrying the HTTP status it maps to.

One hierarchy so the ASGI layer never guesses: `render_error` is the single place that turns
an error into the `{"error": "..."}` body the model servers also return, so clients see one
shape whether the router or a model server refused them.
"""

from __future__ import annotations

import orjson


class RouterError(Exception):
    """Base error of the router; `status` is the HTTP status code it maps to."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(RouterError):
    """The router configuration file is missing, unreadable or does not match the schema."""

    status = 503


class Unauthorized(RouterError):
    """Key auth is on and the request carries no key or a wrong one."""

    status = 401


class UnknownDeployment(RouterError):
    """A targeting header names a deployment the endpoint does not have."""

    status = 404


class NoTraffic(RouterError):
    """No deployment receives live traffic (all weights are zero)."""

    status = 503


class UpstreamError(RouterError):
    """The upstream answered with something that is not HTTP, or dropped the connection."""

    status = 502


class UpstreamUnreachable(UpstreamError):
    """No connection could be opened: nothing was sent, so another deployment may be tried."""

    status = 503


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the configured timeout."""

    status = 504


def render_error(exc: RouterError) -> tuple[int, bytes]:
    """Return the HTTP status and JSON body for an error."""
    return exc.status, orjson.dumps({"error": exc.message})


class PayloadTooLarge(RouterError):
    """The request body exceeds the router's limit (it is not buffered any further)."""

    status = 413
