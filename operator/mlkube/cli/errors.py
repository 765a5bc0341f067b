"""The CLI's one user-facing error: `main` prints it as `error: <message>` and exits 1.

`describe` also turns the API client's errors into that one line, so no verb prints a
urllib3 traceback when the API server is down or the kubeconfig points at the wrong place.
"""

from __future__ import annotations

import sys


class CliError(Exception):
    """A failure the user can act on (bad input, object exists, API refused)."""


def describe(exc: BaseException) -> str | None:
    """The one-line message for an error the user can act on; None for a bug (traceback)."""
    # mlkube.k8s is imported lazily by the verbs (fast --help): if it is not loaded, no
    # API error can have been raised.
    errors = sys.modules.get("mlkube.k8s.errors")
    unreachable = getattr(errors, "ApiUnreachable", None)
    api_error = getattr(errors, "ApiError", None)
    if unreachable is not None:
        # "cannot get Model x: cannot reach ..." says the same twice: the root cause wins.
        for cause in (exc, exc.__cause__):
            if isinstance(cause, unreachable):
                return str(cause)
    if isinstance(exc, CliError):
        return str(exc)
    if api_error is not None and isinstance(exc, api_error):
        return f"the API server refused the request: {exc}"
    return None
