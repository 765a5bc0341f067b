"""When the endpoint's watch events start the rollout loop (handlers/endpoint_rollout.py): a
new revision, a running rollout, a pending scale-down, a request not yet handled; not for an
endpoint without a rollout or whose rollout is done."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST
from mlkube.handlers.endpoint_rollout import wants_loop
from mlkube.reconcile.rollout_plan import revision
from support.rollout_ticks import spec

SPEC = spec().model_dump(mode="json", by_alias=True, exclude_none=True)
REVISION = revision(spec())


def body(
    rollout: dict[str, Any] | None, request: str | None = None, plan: bool = True
) -> kopf.Body:
    annotations = {ANNOTATION_ROLLOUT_REQUEST: request} if request else {}
    status = {"traffic": {"blue": 100}, **({"rollout": rollout} if rollout else {})}
    endpoint_spec = SPEC if plan else {k: v for k, v in SPEC.items() if k != "rollout"}
    raw = {"metadata": {"name": "credit", "annotations": annotations},
           "spec": endpoint_spec, "status": status}  # fmt: skip
    return kopf.Body(raw)  # type: ignore[arg-type]


def state(phase: str, **fields: Any) -> dict[str, Any]:
    return {"revision": REVISION, "phase": phase, **fields}


@pytest.mark.parametrize(
    ("rollout", "wanted"),
    [
        (None, True),  # a new rollout (or a first deploy) to start
        (state("Promoted", revision="sha256:old"), True),  # a new revision
        (state("Progressing"), True),
        (state("Paused"), True),
        (state("Aborted"), True),  # the candidate still waits for its scale-down
        (state("Aborted", scaledDown=True), False),
        (state("Promoted"), False),
    ],
)
def test_the_loop_runs_while_the_rollout_has_something_to_do(
    rollout: dict[str, Any] | None, wanted: bool
) -> None:
    assert wants_loop(body(rollout)) is wanted


def test_a_request_not_yet_handled_starts_it_and_a_handled_one_does_not() -> None:
    request = json.dumps({"action": "retry", "id": "r1", "revision": REVISION})
    done = state("Aborted", scaledDown=True)
    assert wants_loop(body(done, request)) is True
    assert wants_loop(body({**done, "lastRequest": "r1"}, request)) is False
    assert wants_loop(body(done, "not json")) is False  # a malformed request is ignored


def test_no_rollout_no_loop() -> None:
    assert wants_loop(body(None, plan=False)) is False
