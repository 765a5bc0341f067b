"""Run an endpoint's data plane as local processes, from the very manifests the operator applies.

`plan` turns the endpoint's children (builder output, or the live objects read back from a
cluster) into process specs; `runner` starts them on loopback: the storage initializer for each
deployment, one model server per deployment and the router, with the router's config rewritten
from cluster Service URLs to the local servers' ports. Used by `mlkube endpoint run-local` and by
the tests that prove the data plane behaves as configured.
"""
