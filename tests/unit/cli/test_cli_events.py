"""`mlkube events`: what a user reads (event lines, sink status, the catalogue), the argument
errors, and a whole `listen` run against the in-memory API: the sink it registers, events
printed once (a redelivery is marked, not counted), and the sink deleted on the way out."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from mlkube.cli.errors import CliError
from mlkube.cli.events_listen import Listener, Options, status_notes
from mlkube.cli.events_receiver import parse_request
from mlkube.cli.events_sink import LABEL_LISTENER, build_sink, check_types, sink_name
from mlkube.cli.events_view import render_catalogue, render_event, render_sink, render_sinks
from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.events import catalogue as c
from mlkube.events.encode import encode
from mlkube.events.occurrence import Occurrence
from support.event_objects import all_occurrences
from support.fake_kube import DEFAULT_KINDS, FakeKube

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def first(occurrences: list[Occurrence], event_type: c.EventType) -> Occurrence:
    return next(o for o in occurrences if o.type == event_type.type)


def line_of(occurrence: Occurrence, mode: str = "binary") -> str:
    message = encode(occurrence, mode=mode)  # type: ignore[arg-type]
    assert message is not None
    [event] = parse_request(message.headers, message.body)
    return render_event(event, "recv-time")


def test_an_event_line_has_time_type_subject_short_id_and_key_fields() -> None:
    registered = first(all_occurrences(), c.MODEL_REGISTERED)
    line = line_of(registered)
    assert line.startswith(f"{registered.time}  model.registered.v1  {registered.subject}  "
                           f"id={registered.id[:12]}  name=credit-risk  version=4")  # fmt: skip
    assert line.endswith(f"  framework=onnx  digest=sha256:{'4' * 12}")
    assert line == line_of(registered, "structured")  # the mode does not show


def test_key_fields_per_type() -> None:
    occurrences = all_occurrences()
    detected = [o for o in occurrences if o.type == c.DRIFT_DETECTED.type]
    drift = line_of(next(o for o in detected if o.data["driftedRatio"] is not None))
    assert "drift.detected.v1" in drift and "driftedRatio=0.5  topFeatures=income,age" in drift
    aborted = line_of(first(occurrences, c.ROLLOUT_ABORTED))
    assert "metric=" in aborted and "candidate=" in aborted
    traffic = line_of(first(occurrences, c.TRAFFIC_CHANGED))
    assert "traffic=" in traffic and "=" in traffic.split("traffic=")[1]
    for occurrence in occurrences:  # every type has a line with at least one data field
        assert len(line_of(occurrence).split("  ")) > 4, occurrence.type


def test_azureml_lines_use_azure_names() -> None:
    registered = first(all_occurrences(), c.MODEL_REGISTERED)
    message = encode(registered, format="azureml")
    assert message is not None
    [event] = parse_request(message.headers, message.body)
    line = render_event(event, "recv-time")
    assert "  ModelRegistered  models/credit-risk:4  " in line
    assert "modelName=credit-risk  modelVersion=4" in line


def test_a_duplicate_is_marked() -> None:
    registered = first(all_occurrences(), c.MODEL_REGISTERED)
    message = encode(registered)
    assert message is not None
    [event] = parse_request(message.headers, message.body)
    assert render_event(event, "t", duplicate=True).endswith(
        "(duplicate: delivered again, same id)"
    )


def test_catalogue_prints_one_line_per_type() -> None:
    lines = render_catalogue(c.CATALOGUE).splitlines()
    assert len(lines) == len(c.CATALOGUE) == 18
    assert lines[0].split()[:2] == ["dev.mlkube.model.registered.v1", "Model"]
    assert "a Model becomes Ready the first time" in lines[0]


def sink_object(**status: Any) -> dict[str, Any]:
    sink = build_sink("ops", "team-a", "http://127.0.0.1:9/", host="h", types=["dev.mlkube.*"])
    sink["metadata"]["creationTimestamp"] = "2026-11-30T11:00:00Z"
    sink["status"] = status
    return sink


def test_sink_table_and_details_show_the_delivery_record() -> None:
    failure = {"time": "2026-11-30T11:59:00Z", "status": 503, "message": "busy"}
    ready = [{"type": "Ready", "status": "False", "reason": "SinkGone", "message": "410"}]
    obj = sink_object(delivered=12, failed=1, pending=3, lastFailure=failure,
                      throttledUntil="2026-11-30T12:01:00Z", conditions=ready)  # fmt: skip
    table = render_sinks([obj, sink_object()], NOW).splitlines()
    assert table[0].split() == ["NAME", "READY", "DELIVERED", "FAILED", "PENDING",
                                "THROTTLED-UNTIL", "LAST-FAILURE", "AGE"]  # fmt: skip
    assert table[1].split() == ["ops", "False", "12", "1", "3", "2026-11-30T12:01:00Z",
                                "2026-11-30T11:59:00Z", "HTTP", "503", "60m"]  # fmt: skip
    assert table[2].split()[1:5] == ["Unknown", "-", "-", "-"]  # not yet observed
    details = render_sink(obj, NOW)
    assert "Ready:           False (SinkGone): 410" in details
    assert "Last failure:    2026-11-30T11:59:00Z HTTP 503: busy" in details
    assert "Types:           dev.mlkube.*" in details
    assert "Pending:         3" in details
    assert render_sinks([], NOW) == "No event sinks found."


def test_status_notes_say_what_changed_once() -> None:
    obj = sink_object(conditions=[{"type": "Ready", "status": "True", "reason": "Delivering"}],
                      sinkUri="http://127.0.0.1:9/")  # fmt: skip
    state, notes = status_notes((None, None, None, None), obj)
    assert notes == ["sink Ready: the operator delivers to http://127.0.0.1:9/"]
    assert status_notes(state, obj)[1] == []
    obj["status"]["lastFailure"] = {"time": "t1", "message": "connection refused"}
    state, notes = status_notes(state, obj)
    assert notes == ["delivery failed: t1 no answer: connection refused"]


def test_types_are_checked_against_the_catalogue() -> None:
    assert check_types(["dev.mlkube.rollout.*", "dev.mlkube.model.registered.v1",
                        "dev.mlkube.rollout.*"]) == ["dev.mlkube.rollout.*",
                                                     "dev.mlkube.model.registered.v1"]  # fmt: skip
    with pytest.raises(CliError, match="matches no event type"):
        check_types(["dev.mlkube.model.registerd.v1"])
    with pytest.raises(CliError, match="prefix ending in"):
        check_types(["dev.*.v1"])


def test_sink_names_are_stable_per_host_and_port() -> None:
    assert sink_name("h", 8080) == sink_name("h", 8080)
    assert len({sink_name("h", 8080), sink_name("h", 8081), sink_name("g", 8080)}) == 3
    assert len(sink_name("h", 1)) <= 63


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "listen", "--count", "0"], "--count must be at least 1"),
        (["events", "listen", "--timeout", "0"], "--timeout must be more than 0"),
        (["events", "listen", "--port", "70000"], "--port must be between"),
        (["events", "listen", "--types", "dev.mlkube.nope.v1"], "matches no event type"),
        (["events", "sinks", "show"], "needs the EventSink's name"),
        (["events", "sinks", "ops"], "invalid choice"),
        (["events", "sinks", "list", "ops"], "did you mean `events sinks show ops`"),
    ],
)
def test_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main([*argv, "--kubeconfig", "/nonexistent"])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code != 0
    assert message in capsys.readouterr().err


def test_types_verb_needs_no_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "types"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 18


def _wait_for_sink(kube: FakeKube) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = kube.list(API_VERSION, "EventSink", "team-a")
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("no EventSink registered")


def _post(uri: str, occurrence: Occurrence, mode: str) -> int:
    message = encode(occurrence, mode=mode)  # type: ignore[arg-type]
    assert message is not None
    port = int(uri.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/", body=message.body, headers=message.headers)
    status = conn.getresponse().status
    conn.close()
    return status


def test_listen_registers_a_sink_prints_events_and_removes_the_sink(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube = FakeKube(kinds={*DEFAULT_KINDS, (API_VERSION, "EventSink")})
    occurrences = all_occurrences()
    registered, step = first(occurrences, c.MODEL_REGISTERED), first(occurrences, c.ROLLOUT_STEP)
    options = Options("team-a", ["dev.mlkube.model.*", "dev.mlkube.rollout.*"], 0, "structured",
                      "cloudevents", True, 2, 20.0)  # fmt: skip
    statuses: list[int] = []

    def operator() -> None:
        sink = _wait_for_sink(kube)
        uri = sink["spec"]["uri"]
        statuses.extend(_post(uri, o, "structured") for o in (registered, registered, step))

    thread = threading.Thread(target=operator)
    thread.start()
    code = Listener(kube, options).run()  # type: ignore[arg-type]
    thread.join()
    assert code == 0 and statuses == [204, 204, 204]
    out, err = capsys.readouterr()
    printed = [json.loads(line) for line in out.splitlines()]
    assert [e["id"] for e in printed] == [registered.id, step.id]  # the redelivery not again
    assert printed[0]["data"] == dict(registered.data)
    assert "listening on http://127.0.0.1:" in err
    # The sink it registered: loopback URI, the filters and mode asked for, labelled; then gone.
    [(verb, key), *_] = kube.writes
    assert verb == "apply" and key[3].startswith("mlkube-listen-")
    assert kube.writes[-1] == ("delete", key)
    assert not kube.list(API_VERSION, "EventSink", "team-a")


def test_listen_times_out_with_a_clear_error_and_still_removes_the_sink() -> None:
    kube = FakeKube(kinds={*DEFAULT_KINDS, (API_VERSION, "EventSink")})
    options = Options("team-a", [], 0, "binary", "cloudevents", False, 1, 0.3)
    with pytest.raises(CliError, match=r"timed out after 0.3s: received 0 of 1 event"):
        Listener(kube, options).run()  # type: ignore[arg-type]
    assert [verb for verb, _ in kube.writes] == ["apply", "delete"]
    sink = build_sink("x", "team-a", "http://127.0.0.1:1/", host="h")
    assert sink["metadata"]["labels"][LABEL_LISTENER] == "true"


def test_listen_without_the_crd_says_so() -> None:
    kube = FakeKube()  # no EventSink kind served
    options = Options("team-a", [], 0, "binary", "cloudevents", False, 1, 1.0)
    with pytest.raises(CliError, match=r"the EventSink CRD \(eventsinks.mlkube.dev\) is not"):
        Listener(kube, options).run()  # type: ignore[arg-type]
