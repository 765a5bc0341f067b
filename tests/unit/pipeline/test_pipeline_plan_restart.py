"""The planner driven by a simulated controller that crashes at random points (property).

Each pass reads the persisted status and the Jobs, plans, then creates Jobs one by one and
writes the status last, as the controller does; a crash drops the rest of the pass (the Jobs
made so far stay, the status write is lost). Whatever the DAG, failures and crash points:
no attempt's Job is ever created twice, at most `parallelism` Jobs run at once, a step starts
only after its dependencies succeeded, the same observation always gives the same plan, and
the run ends in the phase its failures call for.
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
            assert all(self.status.get(d, {}).get("phase") in ("Succeeded", "Skipped")
                       for d in graph[start.step])  # fmt: skip
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
