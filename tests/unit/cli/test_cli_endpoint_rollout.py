"""`mlkube endpoint rollout`: the request each verb builds (and refuses), and the rollout view
of `rollout status` and `endpoint show` (every line within 80 columns).

Against the real API server: tests/integration/test_rollout_cli.py.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mlkube.api.rollout_status import RolloutAction, RolloutRequest, parse_rollout_request
from mlkube.cli import endpoint_rollout as commands
from mlkube.cli import endpoint_rollout_view as view
from mlkube.cli.endpoint_view import render_details
from mlkube.cli.errors import CliError
from mlkube.cli.main import build_parser
from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST
from support.fake_kube import FakeKube
from support.rollouts import aborted_status, endpoint, rollout_status

NOW = datetime(2026, 11, 30, 12, 0, 35, tzinfo=UTC)
Obj = dict[str, Any]


def _obj(rollout: Obj | None = None, annotation: str | None = None, **status: Any) -> Obj:
    obj = endpoint("credit", "risk")
    obj["metadata"]["resourceVersion"] = "42"
    if annotation is not None:
        obj["metadata"]["annotations"] = {ANNOTATION_ROLLOUT_REQUEST: annotation}
    obj["status"] = {"traffic": {"blue": 90, "green": 10}, **status}
    if rollout is not None:
        obj["status"]["rollout"] = rollout
    return obj


def _fits(text: str) -> list[str]:
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > view.WIDTH]
    assert not too_wide, too_wide
    return lines


@pytest.mark.parametrize(
    ("action", "phase"),
    [
        ("promote", "Paused"),
        ("promote", "Progressing"),
        ("promote-full", "Progressing"),
        ("abort", "Progressing"),
        ("abort", "Paused"),
        ("retry", "Aborted"),
        ("promote-full", "Aborted"),
        ("promote-full", "Paused"),
    ],
)
def test_requests_carry_the_running_revision(action: RolloutAction, phase: str) -> None:
    obj = _obj(rollout_status(phase=phase))
    request = view.build_request(obj, action, "id-1")
    assert (request.action, request.id) == (action, "id-1")
    assert request.revision == rollout_status()["revision"]
    patch = view.request_patch(obj, request)
    assert patch["metadata"]["resourceVersion"] == "42"
    written = patch["metadata"]["annotations"][ANNOTATION_ROLLOUT_REQUEST]
    assert json.loads(written) == {"action": action, "id": "id-1", "revision": request.revision}
    assert parse_rollout_request(written) == request


@pytest.mark.parametrize(
    ("obj", "action", "message"),
    [
        ({**_obj(), "spec": {"traffic": {"blue": 100}}}, "promote", "declares no rollout"),
        (_obj(), "abort", "no rollout has started yet"),
        (_obj(rollout_status(phase="Promoted")), "promote", "nothing to promote: the rollo"),
        (_obj(rollout_status(phase="Aborted")), "promote", "`retry` starts it again"),
        (_obj(rollout_status(phase="Promoted")), "promote-full", "nothing to promote"),
        (_obj(rollout_status(phase="Paused")), "retry", "`promote` continues a Paused one"),
        (_obj(rollout_status(reason="WaitingForCandidate")), "promote", "waits for the candidate"),
        (_obj(rollout_status(phase="Aborted")), "abort", "nothing to abort"),
        (_obj(rollout_status(phase="Progressing")), "retry", "nothing to retry"),
        (_obj(rollout_status(phase="Promoted")), "retry", "nothing to retry"),
    ],
)  # fmt: skip
def test_requests_that_cannot_apply_say_why(obj: Obj, action: RolloutAction, message: str) -> None:
    with pytest.raises(CliError, match=message):
        view.build_request(obj, action, "id-1")


def test_pending_request_until_the_operator_records_its_id() -> None:
    request = view.build_request(_obj(rollout_status()), "abort", "id-7").to_annotation()
    assert view.pending_request(_obj(rollout_status(), annotation=request)) == "abort"
    handled = rollout_status(lastRequest="id-7")
    assert view.pending_request(_obj(handled, annotation=request)) is None
    assert view.pending_request(_obj(rollout_status(), annotation="garbage")) is None
    assert view.pending_request(_obj(rollout_status())) is None


def test_status_of_a_progressing_rollout() -> None:
    lines = _fits(view.render_status(_obj(rollout_status()), NOW))
    text = "\n".join(lines)
    assert lines[0] == "Endpoint:   risk/credit"
    assert "Rollout:    Progressing (StepAnalysis), started 35s ago, step started 25s ago" in lines
    assert "Step:       2/6 analysis errors, p99" in lines
    assert "Candidate:  green: 10% live, 0% mirrored (stable blue)" in lines
    assert "Traffic:    spec wants green=100, running blue=90 green=10" in lines
    assert "  errors  Running  2 measured: 2 ok" in lines
    assert "    success when result <= 0.01; failure when result > 0.05" in lines
    assert "    12:00:30  Successful   0.002  n=790" in lines
    assert "    next measurement in 5s" in lines
    assert "  p99  Running  1 measured: 1 no data" in lines
    assert "    12:00:20  NoData       -  n=12  (12 samples < minSampleCount 50)" in lines
    assert "  errors (background)  Running  1 measured: 1 ok" in lines
    assert "Aborted" not in text and "Request" not in text


def test_status_of_an_aborted_rollout_names_the_metric_and_the_stall() -> None:
    obj = _obj(aborted_status(scaledDown=True), traffic={"blue": 100})
    lines = _fits(view.render_status(obj, NOW))
    assert "Rollout:    Aborted (AnalysisFailed), started 35s ago, finished 0s ago" in lines
    assert "Candidate:  green: 0% live, 0% mirrored, scaled to 0 replicas (stable blue)" in lines
    assert "Traffic:    spec wants green=100, running blue=100" in lines
    assert "Aborted:    metric errors measured 0.12, condition result <= 0.01" in lines
    # The long message wraps under its label.
    start = lines.index(next(line for line in lines if line.startswith("Message:")))
    assert lines[start + 1].startswith(" " * view.LABEL + "spec wants") or "spec wants" in (
        lines[start] + lines[start + 1]
    )
    assert "  errors  Failed  3 measured: 2 ok, 1 failed" in lines
    assert "    12:00:40  Failed       0.12  n=800" in lines
    assert not any("next measurement" in line for line in lines[start:][:12])
    # A metric that ended without a value (a condition that does not compile, no data).
    invalid = {"metric": "errors", "condition": "result >", "message": "... does not compile"}
    obj = _obj(aborted_status(abort=invalid), traffic={"blue": 100})
    assert "Aborted:    metric errors, condition result >: no value (see Message)" in _fits(
        view.render_status(obj, NOW)
    )


def test_status_of_ratio_metrics_shows_both_sides_and_mirror() -> None:
    status = rollout_status(weight=0, mirror=50, stepIndex=2)
    status["metrics"] = [
        {"name": "p99", "phase": "Successful", "condition": "result <= 1.2", "count": 1,
         "successful": 1, "measurements": [
             {"at": "2026-11-30T12:00:20Z", "phase": "Successful", "value": 1.0512345,
              "candidate": 0.21, "stable": 0.19977, "samples": 400}]},
    ]  # fmt: skip
    obj = _obj(status, mirror={"green": 50})
    obj["spec"]["mirror"] = {}
    lines = _fits(view.render_status(obj, NOW))
    assert "Step:       3/6 setMirror 50" in lines
    assert "Candidate:  green: 0% live, 50% mirrored (stable blue)" in lines
    flat = " ".join(" ".join(lines).split())
    assert "spec wants green=100 mirror (none), running blue=90 green=10 mirror green=50" in flat
    assert "    12:00:20  Successful   1.051 (candidate 0.21, stable 0.1998)  n=400" in lines


def test_long_conditions_and_messages_wrap_within_80_columns() -> None:
    condition = " && ".join(f"result < {i}.5" for i in range(60))
    status = rollout_status(reason="Inconclusive", phase="Paused", message="x " * 300)
    status["metrics"][0].update(condition=condition, message="waiting " * 40)
    status["metrics"][0]["measurements"][0]["message"] = "y" * 200
    lines = _fits(view.render_status(_obj(status), NOW))
    assert any(line.startswith("Message:    x x") for line in lines)
    assert sum("result <" in line for line in lines) > 5


def test_promoted_and_unstarted_rollouts() -> None:
    done = rollout_status(phase="Promoted", reason="Promoted", stepIndex=6, weight=100,
                          finishedAt="2026-11-30T12:00:30Z", metrics=[])  # fmt: skip
    lines = _fits(view.render_status(_obj(done, traffic={"green": 100}), NOW))
    assert "Step:       6/6 done" in lines
    assert "Traffic:    spec wants green=100, running green=100" in lines
    assert not any(line.startswith("Metrics") for line in lines)
    assert view.is_finished(_obj(done)) and not view.is_finished(_obj(rollout_status()))
    fresh = _fits(view.render_status(_obj(), NOW))
    assert fresh[1:] == [
        "Rollout:    not started (is the operator running?)",
        "Plan:       green over blue, 6 steps",
    ]
    with pytest.raises(CliError, match="declares no rollout"):
        view.render_status({**_obj(), "spec": {"traffic": {"blue": 100}}}, NOW)


def test_a_rollout_taken_out_of_the_spec_still_shows_its_last_status() -> None:
    obj = _obj(rollout_status(phase="Promoted", weight=100, metrics=[]))
    del obj["spec"]["rollout"]
    lines = _fits(view.render_status(obj, NOW))
    assert "Candidate:  100% live, 0% mirrored (spec.rollout removed)" in lines
    assert "Step:       2/6" in lines


def test_a_pending_request_shows() -> None:
    annotation = view.build_request(_obj(rollout_status()), "promote", "x").to_annotation()
    lines = view.render_status(_obj(rollout_status(), annotation=annotation), NOW).splitlines()
    assert "Request:    promote (not handled yet)" in lines


def test_endpoint_show_has_the_rollout_section() -> None:
    obj = _obj(rollout_status())
    text = render_details(obj, NOW)
    assert "Rollout:    Progressing (StepAnalysis)" in text
    assert "  errors (background)  Running  1 measured: 1 ok" in text
    plain = {**obj, "spec": {"traffic": {"blue": 100}}, "status": {}}
    assert "Rollout" not in render_details(plain, NOW)


def test_watch_key_ignores_time_but_not_state() -> None:
    obj = _obj(rollout_status())
    assert view.watch_key(obj) == view.watch_key(_obj(rollout_status()))
    assert view.watch_key(obj) != view.watch_key(_obj(rollout_status(weight=50)))


def test_parser() -> None:
    parser = build_parser()
    args = parser.parse_args(["endpoint", "rollout", "promote", "credit", "--full", "-n", "r"])
    assert (args.rollout_action, args.full, args.name, args.namespace) == (
        "promote", True, "credit", "r",
    )  # fmt: skip
    args = parser.parse_args(["endpoint", "rollout", "status", "credit", "--watch"])
    assert (args.watch, args.interval) == (True, 2.0)
    for verb in ("abort", "retry"):
        assert parser.parse_args(["endpoint", "rollout", verb, "x"]).rollout_action == verb
    with pytest.raises(SystemExit):
        parser.parse_args(["endpoint", "rollout", "abort", "x", "--full"])


# -- the commands' I/O, on the in-memory API ---------------------------------------------------

KEY = ("mlkube.dev/v1alpha1", "OnlineEndpoint", "risk", "credit")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    kube = FakeKube()
    obj = endpoint("credit", "risk")
    obj["status"] = {"traffic": {"blue": 90, "green": 10}, "rollout": rollout_status()}
    kube.put(obj)
    monkeypatch.setattr(commands, "connect", lambda args: (kube, "risk"))
    return kube


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["endpoint", "rollout", *argv])


def _set_status(kube: FakeKube, **rollout: Any) -> None:
    kube.mutate(KEY, lambda o: o["status"]["rollout"].update(rollout))


def _written(kube: FakeKube) -> RolloutRequest:
    annotations = kube.objects[KEY]["metadata"]["annotations"]
    return parse_rollout_request(annotations[ANNOTATION_ROLLOUT_REQUEST])


def test_request_command_writes_the_annotation(
    fake: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    assert commands.rollout_request(_args("abort", "credit")) == 0
    request = _written(fake)
    assert (request.action, request.revision) == ("abort", rollout_status()["revision"])
    assert fake.writes == [("patch", KEY)]
    assert f"rollout abort requested (request {request.id}" in capsys.readouterr().out


def test_request_command_refuses_to_race_a_concurrent_change(fake: FakeKube) -> None:
    # Someone writes between our read and our patch: the resourceVersion guard makes it a 409.
    def race(verb: str, key: Any) -> None:
        if verb == "patch" and not fake.written():
            fake.before.clear()
            _set_status(fake, revision="sha256:" + "cd" * 32)

    fake.before.append(race)
    with pytest.raises(CliError, match="changed while the request was written"):
        commands.rollout_request(_args("promote", "credit"))
    assert "annotations" not in fake.objects[KEY]["metadata"]


def test_request_command_retries_over_the_operators_status_writes(
    fake: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    # The operator writes a measurement between our read and our patch: same rollout revision,
    # so the request is still the one asked for and is written on a fresh read.
    def measure(verb: str, key: Any) -> None:
        if verb == "patch" and not fake.written():
            fake.before.clear()
            _set_status(fake, weight=20)

    fake.before.append(measure)
    assert commands.rollout_request(_args("promote", "credit")) == 0
    request = _written(fake)
    assert (request.action, request.revision) == ("promote", rollout_status()["revision"])
    assert fake.objects[KEY]["status"]["rollout"]["weight"] == 20  # the operator's write stays
    assert f"request {request.id}" in capsys.readouterr().out


def test_wait_until_the_operator_handled_the_request(
    fake: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    naps: list[float] = []

    def operator_acts(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            _set_status(fake, lastRequest=_written(fake).id, phase="Aborted", reason="ManualAbort")

    code = commands.rollout_request(_args("abort", "credit", "--wait"), sleep=operator_acts)
    assert code == 0 and len(naps) == 2
    assert "credit: handled: the rollout is Aborted (ManualAbort)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda kube: _set_status(kube, revision="sha256:" + "ef" * 32), "moved to revision"),
        (lambda kube: kube.mutate(KEY, lambda o: o["metadata"]["annotations"].update(
            {ANNOTATION_ROLLOUT_REQUEST: '{"action":"abort","id":"other","revision":"r"}'})),
         "replaced by another request"),
    ],
)  # fmt: skip
def test_wait_stops_when_the_request_can_no_longer_run(
    fake: FakeKube, change: Callable[[FakeKube], None], message: str
) -> None:
    with pytest.raises(CliError, match=message):
        commands.rollout_request(_args("promote", "credit", "--wait"), sleep=lambda _: change(fake))


def test_wait_times_out_with_the_request_left_in_place(fake: FakeKube) -> None:
    _set_status(fake, phase="Aborted", reason="AnalysisFailed")
    with pytest.raises(CliError, match="not handled after 0s"):
        commands.rollout_request(_args("retry", "credit", "--wait", "--timeout", "0"))
    assert _written(fake).action == "retry"


def test_watch_prints_each_change_and_exits_1_on_abort(
    fake: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    states = iter([{"weight": 10}, {"weight": 50, "stepIndex": 4}, {"weight": 50},
                   {"phase": "Aborted", "weight": 0}])  # fmt: skip

    def tick(_: float) -> None:
        _set_status(fake, **next(states))

    code = commands.rollout_status(
        _args("status", "credit", "--watch"), sleep=tick, clock=lambda: NOW
    )
    views = capsys.readouterr().out.split("\n--- ")
    assert code == 1
    assert len(views) == 3  # the first view, the move to step 5, the abort (no-ops not printed)
    assert "Step:       5/6 setWeight 50" in views[1]
    assert views[2].startswith("12:00:35\n") and "Rollout:    Aborted" in views[2]


def test_endpoint_show_watch_is_a_live_view_until_the_rollout_ends(
    fake: FakeKube, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    states = iter([{"weight": 50, "stepIndex": 4}, {"phase": "Promoted", "weight": 100}])
    monkeypatch.setattr(commands.time, "sleep", lambda _: _set_status(fake, **next(states)))
    args = build_parser().parse_args(["endpoint", "show", "credit", "--watch"])
    assert args.func(args) == 0
    views = capsys.readouterr().out.split("\n--- ")
    assert len(views) == 3 and all("Rollout:" in v for v in views)
    assert "Step:       5/6 setWeight 50" in views[1] and "Promoted" in views[2]
