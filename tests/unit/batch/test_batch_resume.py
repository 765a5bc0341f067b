"""Resume: never rerun a verified part, always rerun what is missing, failed or foreign."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.batch import MiniBatchSize
from mlkube.builders.batch_plan import InputFile, Plan, PlanError, build_plan, index_count
from mlkube.builders.batch_resume import (
    PartKey,
    PartRecord,
    compress,
    digest_settings,
    expand,
    parse_work,
    resume_work,
    serialize_work,
)

KEY = PartKey("sha256:" + "a" * 64, "sha256:" + "b" * 64, digest_settings({"miniBatchSize": 2}))


def _plan(files: int) -> Plan:
    return build_plan([InputFile(f"f{i:05d}", 1) for i in range(files)], MiniBatchSize(2, "files"))


def _record(mb: int, **changes: object) -> PartRecord:
    fields: dict[str, object] = {
        "mini_batch": mb,
        "plan_digest": KEY.plan_digest,
        "model_digest": KEY.model_digest,
        "settings_digest": KEY.settings_digest,
        "failed": 0,
        "content_verified": True,
    }
    fields.update(changes)
    return PartRecord(**fields)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 300),
    st.sets(st.integers(0, 400)),
    st.sets(st.integers(0, 400)),
    st.integers(1, 50),
)
def test_resume_never_reruns_a_verified_part(
    files: int, verified: set[int], broken: set[int], instances: int
) -> None:
    plan = _plan(files)
    records = [_record(mb) for mb in verified] + [
        _record(mb, content_verified=False) for mb in broken - verified
    ]
    work = resume_work(plan, KEY, records)
    ids = set(range(len(plan.mini_batches)))
    assert not set(work.remaining) & verified
    assert set(work.remaining) == ids - verified  # missing and broken parts rerun
    assert list(work.remaining) == sorted(work.remaining)
    assert work.reused == len(ids & verified)
    indexes = index_count(len(work.remaining), instances)
    split = [work.for_index(i, indexes) for i in range(indexes)]
    assert [mb for part in split for mb in part] == list(work.remaining)
    assert parse_work(serialize_work(work)) == work


@pytest.mark.parametrize(
    "change",
    [
        {"failed": 1},
        {"content_verified": False},
        {"plan_digest": "sha256:" + "c" * 64},
        {"model_digest": "sha256:" + "c" * 64},
        {"settings_digest": digest_settings({"miniBatchSize": 3})},
    ],
)
def test_parts_that_do_not_match_rerun(change: dict[str, object]) -> None:
    work = resume_work(_plan(6), KEY, [_record(0), _record(1, **change)])
    assert work.remaining == (1, 2) and work.reused == 1
    # Only a good part of this plan kept out by the model or settings digest is "invalidated"
    # (the PartsInvalidated Event); failed, broken or foreign parts are ordinary reruns.
    digest_only = "model_digest" in change or "settings_digest" in change
    assert work.invalidated == (1 if digest_only else 0)
    assert parse_work(serialize_work(work)) == work


def test_another_model_invalidates_every_part_and_the_count_is_kept() -> None:
    other = PartKey(KEY.plan_digest, "sha256:" + "d" * 64, KEY.settings_digest)
    work = resume_work(_plan(6), other, [_record(0), _record(1), _record(2, failed=1)])
    assert (work.remaining, work.reused, work.invalidated) == ((0, 1, 2), 0, 2)
    assert b'"invalidated":2' in serialize_work(work)
    # Without invalidated parts the work list is byte-for-byte what it was before the field.
    assert b"invalidated" not in serialize_work(resume_work(_plan(6), KEY, [_record(0)]))


def test_records_outside_the_plan_are_ignored() -> None:
    work = resume_work(_plan(4), KEY, [_record(0), _record(7)])
    assert work.remaining == (1,) and work.reused == 1


def test_fresh_job_runs_everything_and_work_stays_small() -> None:
    work = resume_work(_plan(200_000), KEY, [_record(0), _record(2), _record(4)])
    assert len(work.remaining) == 100_000 - 3
    assert len(serialize_work(work)) < 300
    assert compress([1, 2, 3, 7, 9, 10]) == [[1, 4], [7, 8], [9, 11]]


def test_settings_digest_is_order_independent() -> None:
    assert digest_settings({"a": 1, "b": [1, 2]}) == digest_settings({"b": [1, 2], "a": 1})
    assert digest_settings({"a": 1}) != digest_settings({"a": 2})


@pytest.mark.parametrize("runs", [[[3, 5], [4, 6]], [[5, 5]], [[5, 3]]])
def test_expand_rejects_overlapping_or_empty_runs(runs: list[list[int]]) -> None:
    with pytest.raises(PlanError):
        expand(runs)


def test_parse_work_rejects_garbage() -> None:
    with pytest.raises(PlanError, match="unreadable work list"):
        parse_work(b'{"planDigest": "x"}')
