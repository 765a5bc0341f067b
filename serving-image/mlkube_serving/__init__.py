"""mlkube data plane: model server, router, drift sidecar, batch scorer, storage initializer."""

__version__ = "0.1.0"
