"""Schedule times: cron parsing, next/previous fire times in IANA zones across DST, missed
windows, job names, uri templates, concurrency and history decisions."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.batch import STRICT_CRON_PATTERN, URI_TEMPLATE_PATTERN
from mlkube.reconcile.batch_schedule import (
    ScheduleError,
    Timing,
    minutes_since_epoch,
    plan_schedule,
    scheduled_job_name,
)
from mlkube.reconcile.batch_schedule_jobs import (
    ScheduledJob,
    check_uri_template,
    concurrency_decision,
    history_deletions,
    render_uri,
)
from mlkube.reconcile.cron import CronError, parse_cron

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def fires(cron: str, zone: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    timing = Timing.parse(cron, zone)
    out: list[dt.datetime] = []
    t: dt.datetime | None = start
    while len(out) < count:
        assert t is not None
        t = timing.next_after(t)
        assert t is not None
        out.append(t)
    return out


def test_parse_fields_names_steps_and_macros() -> None:
    cron = parse_cron("*/15 9-17 * JAN,jul MON-FRI")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == set(range(9, 18))
    assert cron.months == {1, 7}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert parse_cron("5/20 * * * *").minutes == {5, 25, 45}
    assert parse_cron("@hourly") == parse_cron("0 * * * *")
    assert parse_cron("@daily") == parse_cron("@midnight") == parse_cron("0 0 * * *")


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * * *", "4 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * FOO *", "month"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("@every 5m", "fields"),
    ],
)
def test_parse_errors_name_the_field(expression: str, words: str) -> None:
    with pytest.raises(CronError, match=words):
        parse_cron(expression)


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # 1st of the month OR a Monday (Vixie cron, Kubernetes CronJob).
    got = fires("0 0 1 * MON", "UTC", utc(2026, 6, 1, 0, 0), 3)
    assert got == [utc(2026, 6, 8), utc(2026, 6, 15), utc(2026, 6, 22)]
    assert fires("0 0 1 * *", "UTC", utc(2026, 6, 1), 1) == [utc(2026, 7, 1)]


def test_never_matching_cron_gives_none() -> None:
    timing = Timing.parse("0 0 30 2 *", "UTC")
    assert timing.next_after(utc(2026, 1, 1)) is None
    assert timing.last_at_or_before(utc(2026, 1, 1)) is None


def test_leap_day() -> None:
    assert fires("0 12 29 2 *", "UTC", utc(2026, 1, 1), 2) == [
        utc(2028, 2, 29, 12),
        utc(2032, 2, 29, 12),
    ]


def test_unknown_zone_and_bad_cron() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        Timing.parse("* * * * *", "Mars/Olympus")
    with pytest.raises(ScheduleError, match="invalid cron"):
        Timing.parse("a b c d e", "UTC")


# --- DST ------------------------------------------------------------------------------------
# Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
# America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.


def test_berlin_spring_forward_skips_the_missing_time() -> None:
    daily = fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12), 3)
    # 28th 02:30 CET = 01:30Z; the 29th has no 02:30; 30th 02:30 CEST = 00:30Z.
    assert daily == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]


def test_berlin_fall_back_fires_the_repeated_time_once() -> None:
    daily = fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 2)
    # 25th 02:30 occurs at 00:30Z (CEST) and 01:30Z (CET): the first only.
    assert daily == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    quarter = fires("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 45), 6)
    assert quarter == [
        utc(2026, 10, 25, 0, 0),  # 02:00 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST; the CET repeat of 02:00 and 02:30 is skipped
        utc(2026, 10, 25, 2, 0),  # 03:00 CET
        utc(2026, 10, 25, 2, 30),
        utc(2026, 10, 25, 3, 0),
        utc(2026, 10, 25, 3, 30),
    ]


def test_new_york_transitions() -> None:
    spring = fires("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), 2)
    assert spring == [utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)]  # no 02:30 on the 8th
    fall = fires("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), 2)
    assert fall == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]  # EDT once, then EST
    hourly = fires("0 * * * *", "America/New_York", utc(2026, 11, 1, 3, 30), 4)
    # 00:00 EDT=04Z, 01:00 EDT=05Z, (01:00 EST=06Z skipped), 02:00 EST=07Z, 03:00 EST=08Z
    assert hourly == [
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 8),
    ]


def test_previous_inside_the_repeated_hour() -> None:
    timing = Timing.parse("*/10 * * * *", "Europe/Berlin")
    # 01:35Z is 02:35 CET (the second 02:xx): the latest fire is 02:50 CEST = 00:50Z.
    assert timing.last_at_or_before(utc(2026, 10, 25, 1, 35)) == utc(2026, 10, 25, 0, 50)
    assert timing.next_after(utc(2026, 10, 25, 1, 35)) == utc(2026, 10, 25, 2, 0)


ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
CRONS = st.sampled_from(
    ["* * * * *", "*/7 * * * *", "30 2 * * *", "0 * * * *", "15 1-3 * * SUN", "0 0 1 * *"]
)
INSTANTS = st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(cron=CRONS, zone=ZONES, start=INSTANTS)
def test_next_and_previous_agree(cron: str, zone: str, start: dt.datetime) -> None:
    timing = Timing.parse(cron, zone)
    nxt = timing.next_after(start)
    assert nxt is not None and nxt > start
    assert timing.last_at_or_before(nxt) == nxt
    # Nothing fires strictly between: the latest at or before just under `nxt` is <= start.
    before = timing.last_at_or_before(nxt - dt.timedelta(microseconds=1))
    assert before is None or before <= start
    # Every fire time is an existing local wall time matching the cron, at minute precision.
    local = nxt.astimezone(timing.zone)
    assert local.second == 0 and local.minute in timing.cron.minutes
    assert local.hour in timing.cron.hours and timing.cron.day_matches(local.date())
    # ... and the first occurrence of it (fold 0).
    assert local.replace(fold=0).astimezone(UTC) == nxt


@settings(max_examples=100, deadline=None)
@given(zone=ZONES, start=INSTANTS)
def test_every_minute_fires_once_per_existing_local_minute(zone: str, start: dt.datetime) -> None:
    times = fires("* * * * *", zone, start, 200)
    walls = [t.astimezone(dt.timezone(dt.timedelta(0))).replace(tzinfo=None) for t in times]
    assert walls == sorted(set(walls))
    local = [t.astimezone(Timing.parse("* * * * *", zone).zone).replace(tzinfo=None) for t in times]
    assert len(set(local)) == len(local)  # a repeated wall time fires once


# --- missed windows ---------------------------------------------------------------------------


def hourly() -> Timing:
    return Timing.parse("0 * * * *", "UTC")


def test_new_schedule_fires_its_latest_time_within_the_deadline() -> None:
    plan = plan_schedule(
        hourly(), now=utc(2026, 5, 1, 10, 20), cursor=None, deadline_seconds=3600, suspended=False
    )
    assert plan.fire == utc(2026, 5, 1, 10) and plan.missed == 0
    assert plan.next_time == utc(2026, 5, 1, 11)
    late = plan_schedule(
        hourly(), now=utc(2026, 5, 1, 10, 20), cursor=None, deadline_seconds=600, suspended=False
    )
    assert late.fire is None and late.missed == 0  # nothing existed to miss


def test_outage_fires_only_the_latest_and_counts_the_rest() -> None:
    plan = plan_schedule(
        hourly(),
        now=utc(2026, 5, 1, 10, 5),
        cursor=utc(2026, 5, 1, 6),
        deadline_seconds=3600,
        suspended=False,
    )
    assert plan.fire == utc(2026, 5, 1, 10)
    assert plan.missed == 4  # 06:00, 07:00, 08:00, 09:00
    past = plan_schedule(
        hourly(),
        now=utc(2026, 5, 1, 10, 5),
        cursor=utc(2026, 5, 1, 6),
        deadline_seconds=60,
        suspended=False,
    )
    assert past.fire is None and past.missed == 5


def test_nothing_due_before_the_cursor_and_suspended_counts() -> None:
    idle = plan_schedule(
        hourly(),
        now=utc(2026, 5, 1, 10, 5),
        cursor=utc(2026, 5, 1, 11),
        deadline_seconds=3600,
        suspended=False,
    )
    assert idle.fire is None and idle.missed == 0 and idle.next_time == utc(2026, 5, 1, 11)
    suspended = plan_schedule(
        hourly(),
        now=utc(2026, 5, 1, 10, 5),
        cursor=utc(2026, 5, 1, 9),
        deadline_seconds=3600,
        suspended=True,
    )
    assert suspended.fire is None and suspended.missed == 2


def test_wake_latency_is_tolerated_with_a_zero_deadline() -> None:
    plan = plan_schedule(
        hourly(),
        now=utc(2026, 5, 1, 10, 0, 3),
        cursor=utc(2026, 5, 1, 10),
        deadline_seconds=0,
        suspended=False,
    )
    assert plan.fire == utc(2026, 5, 1, 10)


# --- names and templates --------------------------------------------------------------------


def test_job_names_are_deterministic_and_bounded() -> None:
    t = utc(2026, 5, 1, 10)
    minutes = minutes_since_epoch(t)
    assert minutes == int(t.timestamp()) // 60 == 29_627_160
    assert scheduled_job_name("credit", "nightly", t) == f"credit-nightly-{minutes}"
    long = scheduled_job_name("e" * 60, "s" * 50, t)
    assert len(long) == 63 and long.endswith(f"-{minutes}")
    other = scheduled_job_name("e" * 60, "s" * 49 + "t", t)
    assert other != long and len(other) == 63


def test_templates() -> None:
    berlin = Timing.parse("* * * * *", "Europe/Berlin").zone
    t = utc(2026, 5, 1, 22, 30)  # already May 2nd in Berlin
    uri = "s3://data/{scheduledTime:%Y/%m/%d}/x-{scheduledTime}.csv"
    assert render_uri(uri, t, berlin) == "s3://data/2026/05/02/x-2026-05-01T22:30:00Z.csv"
    assert render_uri("s3://b/{{raw}}/%d", t, berlin) == "s3://b/{raw}/%d"
    for bad, words in [
        ("s3://b/{date}", "'{date}'"),
        ("s3://b/{scheduledTime:}", "scheduledTime"),
        ("s3://b/{scheduledTime:%c}", "%c"),
        ("s3://b/{scheduledTime", "'{'"),
        ("s3://b/x}", "'}'"),
    ]:
        with pytest.raises(ScheduleError, match=words):
            check_uri_template(bad)


# --- concurrency and history ----------------------------------------------------------------


def job(name: str, hour: int, phase: str | None, cancel: bool = False) -> ScheduledJob:
    return ScheduledJob(name, f"uid-{name}", utc(2026, 5, 1, hour), "", phase, cancel)


def test_concurrency_policies() -> None:
    jobs = [job("a", 1, "Succeeded"), job("b", 2, "Running"), job("c", 3, None, cancel=True)]
    assert concurrency_decision("Allow", jobs).action == "create"
    forbid = concurrency_decision("Forbid", jobs)
    assert forbid.action == "skip" and "b, c" in forbid.reason
    replace = concurrency_decision("Replace", jobs)
    assert replace.action == "create" and replace.cancel == ("b",)  # c is cancelling already
    done = [job("a", 1, "Failed"), job("b", 2, "Cancelled")]
    assert concurrency_decision("Forbid", done).action == "create"


def test_history_deletes_the_oldest_finished() -> None:
    jobs = [
        job("s1", 1, "Succeeded"),
        job("f1", 2, "Failed"),
        job("s2", 3, "Succeeded"),
        job("c1", 4, "Cancelled"),
        job("s3", 5, "Succeeded"),
        job("r", 6, "Running"),
    ]
    assert [j.name for j in history_deletions(jobs, 2, 1)] == ["s1", "f1"]
    assert [j.name for j in history_deletions(jobs, 0, 0)] == ["s1", "s2", "s3", "f1", "c1"]
    assert history_deletions(jobs, 3, 5) == []


TEMPLATE_TEXT = st.text(alphabet="ab/{}:%YmcdT-", max_size=30) | st.sampled_from(
    ["{scheduledTime}", "x{scheduledTime:%Y/%m}y", "{{scheduledTime}}", "{scheduledTime:%%}"]
)


@settings(max_examples=400, deadline=None)
@given(text=TEMPLATE_TEXT)
def test_admission_pattern_agrees_with_the_renderer(text: str) -> None:
    """The CEL/pydantic pattern accepts exactly the templates the operator can render."""
    try:
        check_uri_template(text)
        renders = True
    except ScheduleError:
        renders = False
    assert bool(re.fullmatch(URI_TEMPLATE_PATTERN, text)) == renders


@settings(max_examples=200, deadline=None)
@given(
    cron=CRONS,
    zone=ZONES,
    start=INSTANTS,
    gaps=st.lists(st.integers(min_value=1, max_value=6 * 3600), min_size=1, max_size=30),
    deadline=st.sampled_from([0, 60, 3600]),
)
def test_every_time_after_the_first_pass_fires_or_is_missed_exactly_once(
    cron: str, zone: str, start: dt.datetime, gaps: list[int], deadline: int
) -> None:
    """Passes at arbitrary instants, the cursor carried as the status carries it: no time fires
    twice, fired times are on time, and fired + missed account for every time in between."""
    timing = Timing.parse(cron, zone)
    first = plan_schedule(
        timing, now=start, cursor=None, deadline_seconds=deadline, suspended=False
    )
    cursor, now = first.next_time, start
    fired: list[dt.datetime] = []
    missed = 0
    for gap in gaps:
        now += dt.timedelta(seconds=gap)
        plan = plan_schedule(
            timing, now=now, cursor=cursor, deadline_seconds=deadline, suspended=False
        )
        if plan.fire is not None:
            assert now - plan.fire <= dt.timedelta(seconds=max(deadline, 10))
            fired.append(plan.fire)
        missed += plan.missed
        cursor = plan.next_time
    assert fired == sorted(set(fired))
    assert first.fire is None or not fired or fired[0] > first.fire
    assert first.next_time is not None
    total = timing.count_between(first.next_time, now + dt.timedelta(microseconds=1))
    assert len(fired) + missed == total


@settings(max_examples=300, deadline=None)
@given(text=st.from_regex(STRICT_CRON_PATTERN, fullmatch=True))
def test_admitted_crons_parse(text: str) -> None:
    """What admission (the CEL rule, the same pattern in pydantic) lets through, the operator
    can run; only reversed ranges are left to it (shown as InvalidSchedule). Drawn from the
    pattern itself: random text almost never matches it, so every example is checked."""
    assert re.fullmatch(STRICT_CRON_PATTERN, text)
    try:
        parse_cron(text)
    except CronError as err:
        assert "backwards" in str(err), text


@pytest.mark.parametrize(
    "cron", ["* * * * *", "*/15 9-17 * JAN,jul MON-FRI", "5/20 * * * *", "@Daily", "0 0 1 1 7"]
)
def test_admission_accepts_what_the_parser_runs(cron: str) -> None:
    assert re.fullmatch(STRICT_CRON_PATTERN, cron)
    parse_cron(cron)


@pytest.mark.parametrize(
    "cron", ["60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "*/0 * * * *", "0 0 * * 8"]
)
def test_admission_refuses_out_of_range_fields(cron: str) -> None:
    assert not re.fullmatch(STRICT_CRON_PATTERN, cron)
