"""Fixtures for the outbox process tests (helpers in outbox_harness.py, put on sys.path here since
pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from outbox_harness import Deliverer, Receiver  # noqa: E402


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Any]:
    """Factories for receivers and deliverers; all are stopped after the test."""
    started: list[Receiver | Deliverer] = []

    class Factory:
        def receiver(self, name: str = "receiver", key: str = "") -> Receiver:
            started.append(Receiver(tmp_path, name, key))
            return started[-1]  # type: ignore[return-value]

        def deliverer(
            self, url: str, *args: str, name: str = "deliverer", db: str = "outbox.db"
        ) -> Deliverer:
            started.append(Deliverer(tmp_path, tmp_path / db, url, *args, name=name))
            return started[-1]  # type: ignore[return-value]

    yield Factory()
    for proc in reversed(started):
        proc.stop()
