"""Errors of the controllers layer: one hierarchy, so a handler catches `ControllerError` once.

API failures stay `ApiError` (from the client); these are the controllers' own verdicts.
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every error a controller raises on its own account; worth a later retry."""


class EndpointSyncError(ControllerError):
    """The endpoint reconcile could not finish (e.g. a Model kept conflicting)."""


class DriftPollError(ControllerError):
    """Base of the drift poller's own errors."""


class BaselineError(DriftPollError):
    """The baseline profile could not be fetched, verified or read."""
