"""mlkube data plane: model server, router, drift sidecar, storage initializer."""

__version__ = "0.1.0"
