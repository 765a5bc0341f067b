"""The operator's log keeps failures and reconcile outcomes, not one line per watch event."""

from __future__ import annotations

import logging

import pytest

from mlkube.handlers import log_noise
from mlkube.handlers import main as _registered  # noqa: F401  (registers every handler)


def test_every_on_event_handler_is_known_and_reconcile_handlers_are_not() -> None:
    ids = log_noise.watch_handler_ids()
    assert {"child_pod_changed", "child_deployment_changed", "endpoint_lifecycle"} <= ids
    assert "reconcile_endpoint" not in ids and "reconcile_model" not in ids


def test_only_watch_handler_successes_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.log_noise")
    logger.addFilter(log_noise.WatchSuccessFilter({"child_pod_changed"}))
    with caplog.at_level(logging.DEBUG, logger="test.log_noise"):
        logger.info("Handler 'child_pod_changed' succeeded.")
        logger.info("Handler 'reconcile_endpoint' succeeded.")
        logger.warning("Handler 'child_pod_changed' succeeded.")  # not INFO: kept
        logger.error("Handler 'child_pod_changed' failed temporarily: boom")
        logger.debug("Handler 'child_pod_changed' succeeded.")  # debug level: kept
    assert [r.getMessage() for r in caplog.records] == [
        "Handler 'reconcile_endpoint' succeeded.",
        "Handler 'child_pod_changed' succeeded.",
        "Handler 'child_pod_changed' failed temporarily: boom",
        "Handler 'child_pod_changed' succeeded.",
    ]
