"""The only module that talks to the Kubernetes API (DESIGN.md §5.6)."""

from mlkube.k8s.client import Kube, kubeconfig_context
from mlkube.k8s.errors import ApiError, ApiUnreachable

__all__ = ["ApiError", "ApiUnreachable", "Kube", "kubeconfig_context"]
