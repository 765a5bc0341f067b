"""The running split: spec without a rollout, a step's weight or mirror around startTraffic,
promoted, aborted (and scaled down after the delay); hypothesis: live traffic always sums to
100 and the candidate never gets live and mirrored traffic at once."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.rollout_status import RolloutStatus
from mlkube.reconcile.rollout_split import RunningSplit, running_split, start_traffic
from support.rollout_ticks import T0, at, spec


def status(phase: str = "Progressing", **fields: object) -> RolloutStatus:
    base: dict[str, object] = {
        "revision": "sha256:x",
        "phase": phase,
        "startTraffic": {"blue": 100},
    }
    base.update(fields)
    return RolloutStatus.model_validate(base)


def test_no_rollout_runs_the_spec() -> None:
    endpoint = spec(traffic={"green": 60, "blue": 40})
    assert running_split(endpoint, None, T0) == RunningSplit({"green": 60, "blue": 40}, {})
    plain = endpoint.model_copy(update={"rollout": None})
    assert running_split(plain, status(weight=10), T0).traffic == {"green": 60, "blue": 40}


def test_weight_scales_the_start_traffic_around_the_candidate() -> None:
    endpoint = spec(deployments=[{"name": "red", "model": "m"}])
    three = status(weight=10, startTraffic={"blue": 67, "red": 33})
    assert running_split(endpoint, three, T0) == RunningSplit(
        {"blue": 60, "red": 30, "green": 10}, {}
    )
    assert running_split(endpoint, status(weight=0), T0).traffic == {"blue": 100, "green": 0}


def test_mirror_step_gives_the_candidate_no_live_traffic() -> None:
    split = running_split(spec(), status(weight=0, mirror=50), T0)
    assert split == RunningSplit({"blue": 100, "green": 0}, {"green": 50})
    both = running_split(spec(), status(weight=10, mirror=50), T0)  # a damaged status
    assert both.mirror == {} and both.traffic["green"] == 10


def test_promoted_runs_the_spec() -> None:
    endpoint = spec(traffic={"green": 100}, mirror={"blue": 20})
    assert running_split(endpoint, status("Promoted", weight=100), T0) == RunningSplit(
        {"green": 100}, {"blue": 20}
    )


def test_aborted_runs_start_traffic_then_scales_the_candidate_down() -> None:
    aborted = status("Aborted", finishedAt="2026-11-30T12:00:00.000Z", mirror=0)
    endpoint = spec(mirror={"blue": 0})
    kept = running_split(endpoint, aborted, at(599))
    assert kept == RunningSplit({"blue": 100, "green": 0}, {}, {})
    assert running_split(endpoint, aborted, at(600)).replicas == {"green": 0}
    down = aborted.model_copy(update={"scaled_down": True})
    assert running_split(endpoint, down, T0).replicas == {"green": 0}


def test_start_traffic_gives_the_candidate_weight_to_the_stable() -> None:
    endpoint = spec(deployments=[{"name": "red", "model": "m"}])
    assert start_traffic(endpoint, {"blue": 50, "green": 30, "red": 20}) == {"blue": 80, "red": 20}
    assert start_traffic(endpoint, {"green": 100}) == {"blue": 100}
    assert start_traffic(endpoint, {"gone": 70, "red": 30}) == {"blue": 70, "red": 30}
    assert start_traffic(endpoint, {"blue": 90, "red": 90}) == {"blue": 100}  # damaged


NAMES = ["blue", "red", "gold", "gone"]


@settings(max_examples=300, deadline=None)
@given(
    start=st.dictionaries(st.sampled_from(NAMES), st.integers(0, 100), min_size=1),
    phase=st.sampled_from(["Progressing", "Paused", "Aborted", "Promoted"]),
    weight=st.integers(0, 100),
    mirror=st.integers(0, 100),
    seconds=st.integers(0, 3600),
)
def test_live_traffic_sums_to_100_and_the_candidate_is_never_live_and_mirrored(
    start: dict[str, int], phase: str, weight: int, mirror: int, seconds: int
) -> None:
    endpoint = spec(
        deployments=[{"name": "red", "model": "m"}, {"name": "gold", "model": "m"}],
        mirror={"red": 10},
    )
    begin = start_traffic(endpoint, start)
    assert sum(begin.values()) == 100
    rollout = status(
        phase, startTraffic=begin, weight=weight, mirror=mirror,
        finishedAt="2026-11-30T12:00:00Z",
    )  # fmt: skip
    split = running_split(endpoint, rollout, T0 + dt.timedelta(seconds=seconds))
    assert sum(split.traffic.values()) == 100
    assert set(split.traffic) <= {"blue", "red", "gold", "green"}
    assert not (split.traffic.get("green", 0) > 0 and split.mirror.get("green", 0) > 0)
    assert all(split.traffic.get(k, 0) == 0 for k in split.mirror)  # nobody live and mirrored
    if phase in ("Progressing", "Paused"):
        assert split.traffic["green"] == weight
    if phase == "Aborted":
        assert split.traffic.get("green", 0) == 0 and "green" not in split.mirror
