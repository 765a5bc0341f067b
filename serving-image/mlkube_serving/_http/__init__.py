"""The data plane's private HTTP core: errors, ASGI helpers, byte budgets, the upstream client.

The model server, the router and the drift sidecar are independent components (an
import-linter contract keeps them so); what they share about HTTP lives here and only here,
so a status code, an error body or a byte cap means the same thing in all three.
"""
