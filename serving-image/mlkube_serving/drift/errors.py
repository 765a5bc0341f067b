"""Errors of the drift component: one hierarchy so the CLI and the sidecar map them in one place."""

from __future__ import annotations


class DriftError(Exception):
    """Base error of the drift engine, profile builder and sidecar."""


class ProfileError(DriftError):
    """Training data or a profile file is unusable (unreadable, wrong version, inconsistent)."""


class PayloadError(DriftError):
    """A samples payload does not follow the wire format."""
