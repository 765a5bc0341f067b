"""Why serving pods are not Ready, read from their statuses (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.builders.pod_problems import MAX_DETAIL, first_problem, pod_problem

TAMPER_LOG = (
    "Traceback (most recent call last):\n  ...\n"
    "error: digest mismatch for s3://models/credit/model.onnx: expected sha256:aa, got sha256:bb\n"
)


def pod(
    name: str = "p",
    init: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "status": dict(status)}
    if init is not None:
        body["status"]["initContainerStatuses"] = init
    if containers is not None:
        body["status"]["containerStatuses"] = containers
    return body


def terminated(code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "message": message, "reason": reason}}


def test_a_refusing_initializer_names_its_exit_code_and_last_log_line() -> None:
    first = pod(init=[{"name": "storage-initializer", "restartCount": 0,
                       "state": terminated(3, TAMPER_LOG)}])  # fmt: skip
    problem = pod_problem(first)
    assert problem is not None
    assert problem.message == (
        "init container storage-initializer exited 3: error: digest mismatch for "
        "s3://models/credit/model.onnx: expected sha256:aa, got sha256:bb"
    )
    assert not problem.fatal  # one failure may be a blip
    looping = pod(init=[{"name": "storage-initializer", "restartCount": 2,
                         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                         "lastState": terminated(3, TAMPER_LOG)}])  # fmt: skip
    problem = pod_problem(looping)
    assert problem is not None and problem.fatal
    expected = "init container storage-initializer CrashLoopBackOff (exited 3"
    assert problem.message.startswith(expected)
    assert "digest mismatch" in problem.message


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        ({"reason": "ErrImageNeverPull", "message": "image not present with pull policy Never"},
         "container server ErrImageNeverPull (image not present with pull policy Never)"),
        ({"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""},
         "container server ImagePullBackOff (Back-off pulling image \"x\")"),
        ({"reason": "CreateContainerConfigError", "message": "secret \"s\" not found"},
         "container server CreateContainerConfigError (secret \"s\" not found)"),
    ],
)  # fmt: skip
def test_waiting_reasons_that_never_fix_themselves_are_fatal(
    waiting: dict[str, str], expected: str
) -> None:
    problem = pod_problem(pod(containers=[{"name": "server", "state": {"waiting": waiting}}]))
    assert problem is not None and problem.fatal
    assert problem.message == expected


def test_starting_pods_and_a_clean_exit_are_no_problem() -> None:
    starting = pod(
        init=[{"name": "storage-initializer", "state": terminated(0, '{"digest": "x"}')}],
        containers=[{"name": "server", "state": {"waiting": {"reason": "ContainerCreating"}}}],
    )
    assert pod_problem(starting) is None
    running = pod(containers=[{"name": "server", "state": {"running": {}}, "restartCount": 1,
                               "lastState": terminated(137, reason="OOMKilled")}])  # fmt: skip
    assert pod_problem(running) is None  # running again: readiness decides
    going = pod(init=[{"name": "i", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_problem(going) is None  # an old replica on its way out


def test_unschedulable_pods_are_a_reason_to_wait() -> None:
    pending = pod(phase="Pending", conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/2 nodes are available: 2 Insufficient memory."}])  # fmt: skip
    problem = pod_problem(pending)
    assert problem is not None and not problem.fatal
    assert problem.message == "pod not scheduled: 0/2 nodes are available: 2 Insufficient memory."


def test_long_messages_are_cut_and_fatal_problems_come_first() -> None:
    long = pod("a", init=[{"name": "i", "restartCount": 0, "state": terminated(1, "x" * 5000)}])
    problem = pod_problem(long)
    assert problem is not None and len(problem.message) < MAX_DETAIL + 40
    fatal = pod("b", containers=[{"name": "s", "state": {"waiting": {"reason": "ErrImagePull"}}}])
    chosen = first_problem([long, fatal, pod("c")])
    assert chosen is not None and chosen.fatal and "ErrImagePull" in chosen.message
    assert first_problem([pod("c")]) is None


def test_a_scoring_script_missing_a_module_names_it() -> None:
    """The server writes its load error as the termination message (mlkube_serving/
    termination.py); a crash-looping server shows it with the module's name."""
    message = (
        "model load failed: importing /mnt/models/score.py failed: "
        "ModuleNotFoundError(\"No module named 'lightgbm'\")"
    )
    crashing = pod(containers=[{
        "name": "server", "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
        "lastState": terminated(3, message),
    }])  # fmt: skip
    problem = pod_problem(crashing)
    assert problem is not None and problem.fatal
    assert problem.message == f"container server CrashLoopBackOff (exited 3: {message})"
    assert "No module named 'lightgbm'" in problem.message
