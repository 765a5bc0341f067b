"""mlkube: model management for any Kubernetes cluster.

Kept import-light: the serving image and the operator both import this package, and the
operator must never pull in data-plane libraries.
"""

__version__ = "0.1.0"
