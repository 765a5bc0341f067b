"""Serving process fixtures: real `python -m mlkube_serving serve` processes on loopback ports."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.serving import ServerProcess, build_forest


@pytest.fixture(scope="session")
def forest_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_forest(tmp_path_factory.mktemp("forest"))


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Seldon class that sleeps for the seconds given in its first value."""
    directory = tmp_path_factory.mktemp("slow")
    (directory / "Sleeper.py").write_text(
        textwrap.dedent(
            """
            import time

            class Sleeper:
                def predict(self, X, features_names):
                    time.sleep(float(X.flat[0]))
                    return X
            """
        )
    )
    return directory


@pytest.fixture(scope="session")
def forest_server(forest_model: Path) -> Iterator[ServerProcess]:
    """Two workers serving the forest (ONNX-accelerated) as `forest`, version 2."""
    server = ServerProcess(forest_model, name="forest", workers=2, extra_args=["--version", "2"])
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
    assert code == 0, server.output()  # graceful shutdown of the parent and both workers
