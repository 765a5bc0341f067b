"""`mlkube pipeline`'s pure parts: -p parsing, the client-side Pipeline check, the run it
creates, the DAG view (80 columns), the per-step progress lines and the --wait loop (fake
clock, no cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from mlkube.cli.errors import CliError
from mlkube.cli.main import build_parser
from mlkube.cli.pipeline_dagview import flow_lines, render_dag
from mlkube.cli.pipeline_progress import (
    StepTracker,
    WaitTimeout,
    failure_lines,
    step_line,
    wait_for_run,
)
from mlkube.cli.pipeline_runview import render_run, render_runs
from mlkube.cli.pipeline_view import (
    build_run,
    check_run_parameters,
    parse_parameters,
    read_manifests,
    render_pipeline,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LOOP = {"train": (), "evaluate": ("train",), "register": ("evaluate", "train"),
        "deploy": ("register",)}  # fmt: skip


def step(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3.11", "command": ["python", "-c", "pass"], **extra}


def pipeline_yaml(steps: str) -> str:
    return f"""
apiVersion: mlkube.dev/v1alpha1
kind: Pipeline
metadata: {{name: p}}
spec:
  parameters: [{{name: lr, type: number, default: "0.1"}}, {{name: data}}]
  steps: {steps}
"""


def test_parse_parameters_takes_name_value_and_refuses_the_rest() -> None:
    assert parse_parameters(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(CliError, match="expected NAME=VALUE"):
        parse_parameters(["novalue"])


def test_a_cycle_is_refused_before_the_server_with_the_cycle_named() -> None:
    steps = ('[{name: a, image: i, command: [x], dependsOn: [b]},'
             ' {name: b, image: i, command: [x], dependsOn: [a]}]')  # fmt: skip
    with pytest.raises(CliError, match=r"Pipeline p: .*dependency cycle: a -> b -> a"):
        read_manifests(pipeline_yaml(steps), "ns")


def test_unknown_placeholder_and_wrong_kind_are_refused() -> None:
    steps = "[{name: a, image: i, command: [x], args: ['{{parameters.nope}}']}]"
    with pytest.raises(CliError, match=r"unknown template placeholders \{\{parameters.nope\}\}"):
        read_manifests(pipeline_yaml(steps), "ns")
    with pytest.raises(CliError, match="expected kind Pipeline or PipelineRun"):
        read_manifests("apiVersion: mlkube.dev/v1alpha1\nkind: Model\nmetadata: {name: m}\n", "n")


def test_a_valid_pipeline_lands_in_the_namespace_given() -> None:
    docs = read_manifests(pipeline_yaml("[{name: a, image: i, command: [x]}]"), "team")
    assert docs[0]["metadata"] == {"name": "p", "namespace": "team"}


def test_run_parameters_are_checked_against_the_pipeline() -> None:
    obj = {"metadata": {"name": "p"}, "spec": {
        "parameters": [{"name": "lr", "type": "number", "default": "0.1"}, {"name": "data"}],
        "steps": [step("a")]}}  # fmt: skip
    check_run_parameters(obj, {"data": "s3://x"})
    with pytest.raises(CliError) as err:
        check_run_parameters(obj, {"lr": "fast", "nope": "1"})
    assert "unknown parameter nope" in str(err.value)
    assert "parameter data is required" in str(err.value)
    assert "parameter lr: 'fast' is not a number" in str(err.value)


def test_build_run_and_resume_bodies() -> None:
    run = build_run("credit-retrain", "ns", parameters={"lr": "0.2"}, cache_policy="ForceRerun")
    assert run["metadata"] == {"namespace": "ns", "generateName": "credit-retrain-"}
    assert run["spec"] == {"pipeline": "credit-retrain", "parameters": {"lr": "0.2"},
                           "cachePolicy": "ForceRerun"}  # fmt: skip
    resumed = build_run("p", "ns", parameters={}, name="r2", resume_from="r1",
                        rerun_steps=["train", "train", "score"])  # fmt: skip
    assert resumed["spec"] == {"pipeline": "p", "resumeFrom": "r1",
                               "rerunSteps": ["train", "score"]}  # fmt: skip
    with pytest.raises(CliError, match=r"rerunSteps needs spec\.resumeFrom"):
        build_run("p", "ns", parameters={}, rerun_steps=["a"])


def test_dag_view_of_the_loop_has_levels_and_dependencies() -> None:
    assert render_dag(LOOP) == [
        "DAG (4 steps, 4 levels):",
        "  train → evaluate → register → deploy",
        "   1  train",
        "   2  evaluate  ← train",
        "   3  register  ← evaluate, train",
        "   4  deploy    ← register",
    ]


def test_dag_view_groups_a_level_and_shows_phases() -> None:
    graph = {"a": (), "b": (), "c": ("a", "b")}
    lines = render_dag(graph, {"a": "Succeeded", "b": "Running", "c": "Pending"})
    assert lines[1] == "  {a, b} → c"
    assert lines[2:] == ["   1  a  Succeeded", "   1  b  Running", "   2  c  Pending    ← a, b"]


def test_dag_view_fits_80_columns_for_a_long_chain() -> None:
    names = [f"step-number-{i:02d}" for i in range(12)]
    graph = {n: ((names[i - 1],) if i else ()) for i, n in enumerate(names)}
    graph["wide"] = tuple(names)
    lines = render_dag(graph)
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    flow = flow_lines([[n] for n in names], 78)
    assert len(flow) > 1 and flow[1].lstrip().startswith("→")
    assert lines[-1].endswith("…")  # wide's dependency list is cut, not wrapped


def test_dag_view_says_why_there_is_none() -> None:
    assert render_dag({"a": ("b",), "b": ("a",)}) == [
        "(no DAG view: dependency cycle: a -> b -> a)"
    ]


def st(name: str, phase: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "phase": phase, **extra}


def test_progress_prints_each_step_change_once_in_dag_order() -> None:
    tracker = StepTracker(["train", "evaluate"])
    assert tracker.changes({"phase": "Pending"}) == []
    miss = {"hit": False, "reason": "no entry"}
    running = {
        "phase": "Running",
        "progress": "0/2",
        "steps": [st("evaluate", "Pending"), st("train", "Running", attempts=1, cache=miss)],
    }
    assert tracker.changes(running) == [
        "run Running (0/2 steps)",
        "train      Running    attempt 1  cache miss (no entry)",
    ]
    assert tracker.changes(running) == []  # nothing changed: nothing printed
    done = {"phase": "Succeeded", "progress": "2/2", "steps": [
        st("train", "Succeeded", attempts=1, cache={"hit": False, "reason": "no entry"},
           startTime="2026-11-30T09:00:00Z", completionTime="2026-11-30T09:00:12.5Z"),
        st("evaluate", "Succeeded", cache={"hit": True, "sourceRun": "r0", "reason": "hit"},
           startTime="2026-11-30T09:00:13Z", completionTime="2026-11-30T09:00:13Z")]}  # fmt: skip
    assert tracker.changes(done) == [
        "train      Succeeded  attempt 1  cache miss (no entry)  12.5s",
        "evaluate   Succeeded  cache hit (run r0)  0.0s",
        "run Succeeded (2/2 steps)",
    ]


def test_progress_shows_retries_and_the_failure_message() -> None:
    tracker = StepTracker()
    tracker.changes({"phase": "Running", "steps": [st("a", "Running", attempts=1)]})
    again = tracker.changes({"phase": "Running", "steps": [st("a", "Running", attempts=2)]})
    assert again == ["a          Running    attempt 2"]
    failed = st("a", "Failed", attempts=2, message="main exited 3\nTraceback ...")
    assert step_line(failed, 4) == "a     Failed     attempt 2: main exited 3"


def run_obj(phase: str | None, steps: Sequence[dict[str, Any]] = (), **status: Any) -> dict:
    meta = {"name": "r1", "namespace": "ns", "creationTimestamp": "2026-11-30T08:59:00Z"}
    return {
        "metadata": meta,
        "spec": {"pipeline": "p"},
        "status": {"phase": phase, "steps": list(steps), **status},
    }


def test_wait_returns_the_finished_run_and_times_out_with_a_hint() -> None:
    states = iter([run_obj("Pending"), run_obj("Running"), run_obj("Succeeded")])
    seen: list[Any] = []
    assert wait_for_run(lambda: next(states), seen.append, None, sleep=lambda _: None)[
        "status"]["phase"] == "Succeeded"  # fmt: skip
    assert [s["phase"] for s in seen] == ["Pending", "Running", "Succeeded"]
    clock = iter(range(100))
    with pytest.raises(WaitTimeout, match="still Running after 5s; it keeps running"):
        wait_for_run(lambda: run_obj("Running"), lambda s: None, 5, clock=lambda: next(clock),
                     sleep=lambda _: None)  # fmt: skip
    with pytest.raises(CliError, match="deleted while waiting"):
        wait_for_run(lambda: None, lambda s: None, None)


def test_failure_lines_name_the_failing_step() -> None:
    run = run_obj("Failed", [st("a", "Succeeded"), st("b", "Failed", message="auc 0.5 < 0.8")],
                  message="step b failed")  # fmt: skip
    assert failure_lines(run) == ["PipelineRun r1 Failed: step b failed",
                                  "  step b Failed: auc 0.5 < 0.8"]  # fmt: skip


def test_runs_show_has_steps_in_dag_order_outputs_digests_models_and_dag() -> None:
    digest = "sha256:" + "ab" * 32
    run = run_obj("Succeeded", [
        st("register", "Succeeded", startTime="2026-11-30T09:00:10Z",
           completionTime="2026-11-30T09:00:11Z"),
        st("train", "Succeeded", attempts=2, cache={"hit": False, "reason": "no entry"},
           outputs=[{"name": "model", "type": "artifact", "uri": "s3://b/m", "digest": digest,
                     "size": 10}, {"name": "lr", "type": "parameter", "value": "0.1"}],
           metrics={"auc": 0.91}),
    ], progress="2/2", producedModels=["credit-v5"], startTime="2026-11-30T09:00:00Z",
        completionTime="2026-11-30T09:00:11Z")  # fmt: skip
    text = render_run(run, NOW, {"train": (), "register": ("train",)})
    rows = [line for line in text.splitlines() if line.startswith(("train ", "register "))]
    assert rows[0].split() == ["train", "Succeeded", "2", "cache", "miss", "(no", "entry)", "-"]
    assert rows[1].split()[:2] == ["register", "Succeeded"] and rows[1].endswith("1.0s")
    for want in ("    model: s3://b/m", f"      {digest}, 10 bytes", "    lr = 0.1",
                 "    metrics: auc=0.91", "Produced models: credit-v5", "Trigger:     manual",
                 "  train → register", "   2  register  Succeeded  ← train",
                 "Started:     2026-11-30T09:00:00Z   duration 11.0s"):  # fmt: skip
        assert want in text.splitlines(), (want, text)


def test_runs_list_and_pipeline_show() -> None:
    table = render_runs([run_obj("Running", progress="1/3")], NOW, namespaces=False)
    assert table.splitlines()[1].split() == ["r1", "p", "Running", "1/3", "manual", "-", "1m"]
    obj = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {
        "parameters": [{"name": "lr", "type": "number", "default": "0.1"}],
        "steps": [step("train", retry={"limit": 2}), step("score", dependsOn=["train"])],
        "triggers": [{"name": "drift", "onDrift": {"endpoint": "credit", "cooldown": "1h"}}]},
        "status": {"triggers": [{"name": "drift", "lastFired": "2026-11-30T08:00:00Z",
                                 "lastRun": "p-drift-1", "firedToday": 1,
                                 "message": "cooldown until 09:00"}]}}  # fmt: skip
    text = render_pipeline(obj, NOW).splitlines()
    assert "  lr (number) = 0.1" in text
    assert "  train: python:3.11 (retry 2)" in text
    assert "  drift: onDrift endpoint credit, cooldown 1h, max 3/day" in text
    assert "    last fired 2026-11-30T08:00:00Z (p-drift-1), 1 today" in text
    assert "    cooldown until 09:00" in text
    assert "  train → score" in text


def test_the_parser_knows_every_verb() -> None:
    parser = build_parser()
    args = parser.parse_args(["pipeline", "run", "p", "-p", "a=1", "-p", "b=2", "--wait"])
    assert args.param == ["a=1", "b=2"] and args.wait == -1.0
    args = parser.parse_args(["pipeline", "runs", "resume", "r1", "--rerun", "train"])
    assert args.rerun == ["train"]
    args = parser.parse_args(["pipeline", "runs", "logs", "r1", "--step", "train", "-f"])
    assert args.follow and args.step == "train"
    args = parser.parse_args(["pipeline", "run-local", "-f", "p.yaml", "--cache-dir", "/c"])
    assert args.file == "p.yaml" and args.pipeline is None
