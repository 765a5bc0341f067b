"""Fixtures for the API tests: the generated CRDs of every registered kind."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.crdgen import KindDescriptor, build_crd
from mlkube.api.kinds import KINDS


@pytest.fixture(scope="session")
def crds() -> dict[str, dict[str, Any]]:
    return {kind.kind: build_crd(kind) for kind in KINDS}


@pytest.fixture(params=KINDS, ids=lambda kind: kind.kind)
def kind(request: pytest.FixtureRequest) -> KindDescriptor:
    descriptor: KindDescriptor = request.param
    return descriptor
