"""Drop Kopf's "Handler '...' succeeded." line for watch-event handlers (`@kopf.on.event`).

Those handlers run on every event of every watched object: at 1,000 endpoints, ~80,000 such
lines while converging (pods, Deployments, five handlers per endpoint event), each formatted
and written by the operator's only event-loop thread. Their failures are still logged, and
the success lines of reconcile handlers (create/update/resume) stay.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

import kopf

_SUCCEEDED: Final = re.compile(r"^Handler '([^']+)' succeeded\.$")


class WatchSuccessFilter(logging.Filter):
    def __init__(self, handler_ids: Iterable[str]) -> None:
        super().__init__()
        self.ids = frozenset(handler_ids)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        found = _SUCCEEDED.match(record.msg)
        return found is None or found.group(1) not in self.ids


def watch_handler_ids(registry: kopf.OperatorRegistry | None = None) -> set[str]:
    """Ids of the registered `@kopf.on.event` handlers (Kopf keeps them in a private
    registry; if its layout changes, nothing is filtered)."""
    registry = registry or kopf.get_default_registry()
    try:
        return {str(h.id) for h in registry._watching.get_all_handlers()}
    except AttributeError:
        return set()


def quiet_watch_successes(logger_name: str = "kopf.objects") -> WatchSuccessFilter:
    found = WatchSuccessFilter(watch_handler_ids())
    logging.getLogger(logger_name).addFilter(found)
    return found
