"""One API client per operator process, created on first use (after Kopf's login)."""

from __future__ import annotations

import functools

from mlkube.k8s import Kube


@functools.cache
def kube() -> Kube:
    return Kube()
