"""Controllers: the I/O half of each kind's reconcile, behind the `Kube` protocol.

Each function reads the cluster, calls the pure builders/reconcile code and writes the result;
it returns what Kopf should do (Events, retries) instead of calling Kopf, so the handlers in
`mlkube.handlers` stay a few lines each and the controllers run against an in-memory fake in
unit tests. A new kind copies this shape: `controllers/<kind>.py` + a thin handler module.
"""
