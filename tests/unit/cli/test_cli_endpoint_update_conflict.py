"""`mlkube endpoint update` retries a 409 when only the operator's writes (status, Kopf's
annotations) moved the resourceVersion, and refuses when the spec itself changed."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest

from mlkube.cli import endpoint as cli
from mlkube.cli.errors import CliError
from mlkube.k8s import ApiError

SPEC = {"deployments": [{"name": "blue"}, {"name": "green"}], "traffic": {"blue": 70, "green": 30}}


class Racing:
    """An endpoint whose resourceVersion moves `moves` times between a read and a patch."""

    def __init__(self, moves: int, spec_change: bool = False) -> None:
        self.obj: dict[str, Any] = {"metadata": {"name": "credit", "resourceVersion": "1"},
                                    "spec": copy.deepcopy(SPEC)}  # fmt: skip
        self.moves = moves
        self.spec_change = spec_change
        self.patches: list[dict[str, Any]] = []

    def get(self, *_: Any, **__: Any) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def patch(self, _v: str, _k: str, _n: str, body: dict[str, Any], _ns: str) -> None:
        self.patches.append(body)
        if self.moves:
            self.moves -= 1
            self.obj["metadata"]["resourceVersion"] = str(
                int(self.obj["metadata"]["resourceVersion"]) + 1
            )
            if self.spec_change:
                self.obj["spec"]["traffic"] = {"blue": 100}
            raise ApiError(409, "Conflict", "the object has been modified")
        assert body["metadata"]["resourceVersion"] == self.obj["metadata"]["resourceVersion"]


def run(monkeypatch: pytest.MonkeyPatch, kube: Racing) -> int:
    monkeypatch.setattr(cli, "connect", lambda args: (kube, "ml"))
    monkeypatch.setattr(cli, "get_endpoint", lambda k, ns, name: k.get())
    args = argparse.Namespace(name="credit", traffic="blue=40,green=60", mirror=None)
    return cli.update_endpoint(args)


def test_status_writes_in_between_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = Racing(moves=2)
    assert run(monkeypatch, kube) == 0
    assert [p["metadata"]["resourceVersion"] for p in kube.patches] == ["1", "2", "3"]
    assert all(p["spec"] == kube.patches[0]["spec"] for p in kube.patches)


def test_a_spec_change_in_between_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = Racing(moves=1, spec_change=True)
    with pytest.raises(CliError, match="409 Conflict"):
        run(monkeypatch, kube)
    assert len(kube.patches) == 1
