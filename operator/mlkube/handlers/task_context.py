"""The context a long-lived background task starts in: the operator's, without the event that
started it.

`loop.create_task` copies the current contextvars, and inside a handler those hold Kopf's cause
of the event (its body, patch, diff and memo). A resync loop started by an endpoint's first
event kept that event's whole body alive for as long as the endpoint lived: 2,000 bodies at
1,000 endpoints (docs/benchmarks/operator-scale.md, "Eleventh session"). Everything else
(Kopf's event queue for `kopf.event`, its settings) is kept, so ticks still post Events.
"""

from __future__ import annotations

import contextvars
from typing import Final

# Kopf's per-handler variables (kopf/_core/actions/execution.py, reactor/subhandling.py),
# matched by name: a renamed one is kept (a memory cost, not a fault).
PER_EVENT: Final = frozenset({
    "cause_var", "handler_var", "subrefs_var", "sublifecycle_var", "subsettings_var",
    "subregistry_var", "subexecuted_var",
})  # fmt: skip


def detached() -> contextvars.Context:
    """A copy of the current context without the variables of the event being handled."""
    current = contextvars.copy_context()
    if not any(var.name in PER_EVENT for var in current):
        return current
    fresh = contextvars.Context()
    for var, value in current.items():
        if var.name not in PER_EVENT:
            fresh.run(var.set, value)
    return fresh
