"""Real registry processes for the environment build tests (tests/support/registry.py)."""

from collections.abc import Iterator

import pytest

from support.registry import TEST_PASSWORD, TEST_USER, Registry, registry_binary, running_registry


@pytest.fixture(scope="session")
def registry_bin() -> str:
    return registry_binary()


@pytest.fixture(scope="session")
def registry(registry_bin: str) -> Iterator[Registry]:
    """An anonymous registry (plain HTTP on loopback)."""
    with running_registry(binary=registry_bin) as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry(registry_bin: str) -> Iterator[Registry]:
    """A registry with htpasswd Basic auth (builder / s3cret-push)."""
    with running_registry(binary=registry_bin, username=TEST_USER, password=TEST_PASSWORD) as reg:
        yield reg
