"""Helpers of the CRD validation tests: a chart sample placed in the test's namespace, and a
call the API server must refuse with 422 (its message returned for the test to check)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlkube.api.samples import build_samples
from mlkube.k8s import ApiError


def sample(file: str, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(build_samples()[file][0])
    obj["metadata"]["namespace"] = namespace
    return obj


def rejected(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)
    assert info.value.status == 422, info.value
    return str(info.value)
