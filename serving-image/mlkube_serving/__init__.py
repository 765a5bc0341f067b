"""mlkube data plane: model server, router, drift sidecar, batch scorer, storage initializer."""
