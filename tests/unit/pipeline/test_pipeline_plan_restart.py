"""The planner driven by a simulated controller that crashes at random points (property).

Each pass reads the persisted status and the Jobs, plans, then creates Jobs one by one and
writes the status last, as the controller does; a crash drops the rest of the pass (the Jobs
made so far stay, the status write is lost). Whatever the DAG, failures and crash points:
no attempt's Job is ever created twice, at most `parallelism` Jobs run at once, a step starts
only after its dependencies succeeded, the same observation always gives the same plan (and a
plan carried out leaves nothing to mark), and the run ends in the phase its failures call for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.pipeline import PipelineSpec
from mlkube.reconcile.pipeline_plan import JobAttempt, RunPlan, next_actions
from support.pipeline_specs import container, pipeline

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
LIMIT = 2  # retries per step: attempts 1..3


@dataclass
class World:
    spec: PipelineSpec
    fails: set[tuple[str, int]]  # attempts that fail
    lengths: dict[str, int]  # ticks a step's Jobs run
    now: dt.datetime = T0
    ticks: int = 0
    born: dict[str, int] = field(default_factory=dict)  # Job → tick it was created
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, JobAttempt] = field(default_factory=dict)
    created: set[tuple[str, int]] = field(default_factory=set)
    phase: str = "Pending"

    def observe(self) -> RunPlan:
        args = (self.spec, {"steps": [{"name": n, **s} for n, s in self.status.items()]})
        plan = next_actions(*args, list(self.jobs.values()), self.now, parameters={})
        assert plan == next_actions(*args, list(self.jobs.values()), self.now, parameters={})
        return plan

    def carry_out(self, plan: RunPlan, crash_after: int | None) -> None:
        graph = {s.name: s.dependencies() for s in self.spec.steps}
        for done, start in enumerate(plan.start):
            if crash_after is not None and done >= crash_after:
                return  # the operator died: the status write below never happens
            assert (start.step, start.attempt) not in self.created, "an attempt started twice"
            # (the plan's own phases: a dependency may be skipped in this very pass)
            assert all(plan.phases[d] in ("Succeeded", "Skipped") for d in graph[start.step])
            self.created.add((start.step, start.attempt))
            name = f"{start.step}-a{start.attempt}"
            self.jobs[name] = JobAttempt(start.step, start.attempt, name, "Active")
            self.born[name] = self.ticks
        active = sum(1 for j in self.jobs.values() if j.state == "Active")
        assert active <= self.spec.parallelism
        if crash_after is not None and crash_after == len(plan.start):
            return  # died after the creates, before the status write
        for name in plan.delete_jobs:
            self.jobs.pop(name, None)
        new = {n: dict(s) for n, s in self.status.items()}
        for start in plan.start:
            new[start.step] = {"phase": "Running", "attempts": start.attempt,
                               "job": f"{start.step}-a{start.attempt}"}  # fmt: skip
        for name in plan.running:
            new.setdefault(name, {})["phase"] = "Running"
        for name in plan.complete:
            new.setdefault(name, {})["phase"] = "Succeeded"
        for retry in plan.retry:
            new[retry.step] = {
                "phase": "Pending",
                "attempts": retry.attempt - 1,
                "nextAttemptTime": retry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        for marks, phase in ((plan.skip, "Skipped"), (plan.fail, "Failed"),
                             (plan.cancel, "Cancelled")):  # fmt: skip
            for name in marks:
                new.setdefault(name, {})["phase"] = phase
        self.status, self.phase = new, plan.phase

    def tick(self, seconds: int) -> None:
        """Time moves on; running Jobs that have run their length finish (as scripted)."""
        self.now += dt.timedelta(seconds=seconds)
        self.ticks += 1
        for name, job in list(self.jobs.items()):
            if job.state == "Active" and self.ticks - self.born[name] >= self.lengths[job.step]:
                failed = (job.step, job.attempt) in self.fails
                state = "Failed" if failed else "Complete"
                self.jobs[name] = JobAttempt(job.step, job.attempt, name, state, "", self.now)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, list[int | None], list[int]]:
    size = draw(st.integers(1, 7))
    names = [f"s{i}" for i in range(size)]
    steps = [
        container(
            names[i],
            *[names[j] for j in range(i) if draw(st.booleans())],
            retry={"limit": LIMIT, "backoff": {"duration": "10s", "maxDuration": "1m"}},
        )
        for i in range(size)
    ]
    spec = pipeline(*steps, parallelism=draw(st.integers(1, 3)), failFast=draw(st.booleans()))
    fails = draw(st.sets(st.tuples(st.sampled_from(names), st.integers(1, LIMIT + 1))))
    lengths = {n: draw(st.integers(1, 3)) for n in names}
    crashes = draw(st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=80, max_size=80))
    ticks = draw(st.lists(st.integers(0, 90), min_size=80, max_size=80))
    return World(spec, fails, lengths), crashes, ticks


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_crashes_never_start_an_attempt_twice_and_the_run_ends_right(
    scenario: tuple[World, list[int | None], list[int]],
) -> None:
    world, crashes, ticks = scenario
    for crash, seconds in zip(crashes, ticks, strict=True):
        world.carry_out(world.observe(), crash)
        if crash is None:
            # A plan is a fixpoint: once carried out, the same observation marks nothing new.
            again = world.observe()
            assert not again.skip and not again.fail and not again.cancel
        if world.phase in ("Succeeded", "Failed", "Cancelled"):
            break
        world.tick(seconds)
    else:
        # Crashes can eat passes; finish without them (time enough for every backoff).
        for _ in range(100):
            world.carry_out(world.observe(), None)
            if world.phase in ("Succeeded", "Failed", "Cancelled"):
                break
            world.tick(60)
    assert world.phase in ("Succeeded", "Failed")
    doomed = {n for n in (s.name for s in world.spec.steps)
              if all((n, a) in world.fails for a in range(1, LIMIT + 2))}  # fmt: skip
    ran_out = {n for n, s in world.status.items() if s.get("phase") == "Failed"}
    assert ran_out <= doomed
    if doomed & {n for n, _ in world.created}:
        assert world.phase == "Failed"
    if not doomed:
        assert world.phase == "Succeeded"
        assert all(s.get("phase") == "Succeeded" for s in world.status.values())
        assert len(world.status) == len(world.spec.steps)
    for name in (s.name for s in world.spec.steps):
        assert len([a for n, a in world.created if n == name]) <= LIMIT + 1


@st.composite
def gated_dags(draw: st.DrawFn) -> tuple[PipelineSpec, dict[str, set[str]], set[str]]:
    """Steps that consume (inputs.fromStep) or only order after (dependsOn) earlier ones, some
    with a `when` that is false."""
    size = draw(st.integers(1, 8))
    names = [f"s{i}" for i in range(size)]
    consumed: dict[str, set[str]] = {}
    gated = {n for n in names if draw(st.booleans())}
    steps = []
    for i, name in enumerate(names):
        links = {names[j]: draw(st.sampled_from(["none", "order", "consume"])) for j in range(i)}
        consumed[name] = {d for d, how in links.items() if how == "consume"}
        step = container(name, *[d for d, how in links.items() if how == "order"],
                         outputs=[{"name": "out"}])  # fmt: skip
        step["inputs"] = [{"name": f"in{k}", "fromStep": {"step": d, "output": "out"}}
                          for k, d in enumerate(sorted(consumed[name]))]  # fmt: skip
        if name in gated:
            step["when"] = "parameters.go"
        steps.append(step)
    return pipeline(*steps, parallelism=draw(st.integers(1, 3))), consumed, gated


@settings(max_examples=100, deadline=None)
@given(gated_dags())
def test_when_skips_exactly_the_gated_steps_and_their_consumers(
    case: tuple[PipelineSpec, dict[str, set[str]], set[str]],
) -> None:
    spec, consumed, gated = case
    expected: dict[str, str] = {}
    for step in spec.steps:  # an independent oracle, in declaration (= dependency) order
        skipped = step.name in gated or any(expected[d] == "Skipped" for d in consumed[step.name])
        expected[step.name] = "Skipped" if skipped else "Succeeded"
    world = World(spec, set(), {s.name: 1 for s in spec.steps})
    for _ in range(40):
        plan = next_actions(
            spec, {"steps": [{"name": n, **s} for n, s in world.status.items()]},
            list(world.jobs.values()), world.now, parameters={"go": False},
        )  # fmt: skip
        world.carry_out(plan, None)
        if world.phase in ("Succeeded", "Failed", "Cancelled"):
            break
        world.tick(5)
    assert world.phase == "Succeeded"
    assert {n: s["phase"] for n, s in world.status.items()} == expected
