"""The only module that talks to the Kubernetes API (DESIGN.md §5.6)."""

from mlkube.k8s.client import Kube
from mlkube.k8s.errors import ApiError, ApiUnreachable

__all__ = ["ApiError", "ApiUnreachable", "Kube"]
