"""The API client's error, in a module of its own: controllers catch it without importing the
client (and with it the `kubernetes` package), and in-memory fakes raise the same class."""

from __future__ import annotations


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` and `reason` come from its Status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}: {message}")


class ApiUnreachable(ApiError):
    """No answer at all (refused, DNS, TLS, timeout): one line for users, a retry for handlers."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(0, "Unreachable", reason)
        self.server = server
        self.args = (f"cannot reach the API server at {server}: {reason}",)
