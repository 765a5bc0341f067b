"""One error hierarchy for the data plane: every error carries the HTTP status it maps to.

`render_error` is the single place that turns an error into the `{"error": "..."}` body the
model server, the router and the drift sidecar all answer with, so a client sees one shape
whichever component refused it. Components subclass these for their own cases.
"""

from __future__ import annotations

import orjson


class HttpError(Exception):
    """Base of every data-plane error; `status` is the HTTP status code it maps to."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(HttpError):
    status = 400


class Unauthorized(HttpError):
    status = 401


class Forbidden(HttpError):
    status = 403


class NotFound(HttpError):
    status = 404


class MethodNotAllowed(HttpError):
    status = 405


class PayloadTooLarge(HttpError):
    """A body exceeds its byte cap (it is not buffered any further)."""

    status = 413


class TooManyRequests(HttpError):
    status = 429


class ClientDisconnected(HttpError):
    """The client went away before its body arrived: nothing to run, nobody to answer."""

    status = 499  # nginx's "client closed request", so metrics tell it apart from a 400


class ServiceUnavailable(HttpError):
    """Not ready, or a byte budget is spent right now: retrying later may succeed."""

    status = 503


class UpstreamError(HttpError):
    """An upstream answered with something that is not HTTP, or dropped the connection."""

    status = 502


class UpstreamUnreachable(UpstreamError):
    """No connection could be opened: nothing was sent, so another upstream may be tried."""

    status = 503


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the deadline."""

    status = 504


class UpstreamTooLarge(UpstreamError):
    """The upstream's response exceeds the byte cap; it was cut off, not buffered."""

    status = 502


def render_error(exc: HttpError) -> tuple[int, bytes]:
    """Return the HTTP status and JSON body for an error."""
    return exc.status, orjson.dumps({"error": exc.message})
