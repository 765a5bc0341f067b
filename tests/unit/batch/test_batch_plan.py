"""The batch planner: exact coverage, stable order, identical bytes, balanced shards."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.batch import MiniBatchSize, parse_mini_batch_size
from mlkube.builders.batch_plan import (
    MAX_INDEXES,
    InputFile,
    Plan,
    PlanError,
    Unit,
    build_plan,
    index_count,
    index_of,
    parse_plan,
    plan_digest,
    resolve_format,
    serialize_plan,
    shard,
)

FILES = MiniBatchSize(3, "files")
_segment = st.text(alphabet="abcxyzé0-", min_size=1, max_size=6)
_names = st.lists(_segment, min_size=1, max_size=3).map("/".join)


@st.composite
def listings(draw: st.DrawFn, kind: str = "files") -> list[InputFile]:
    paths = draw(st.lists(_names, unique=True, max_size=40))
    out = []
    for path in paths:
        size = draw(st.integers(0, 10_000))
        if kind == "parquet":
            groups = tuple(draw(st.lists(st.integers(0, 5000), max_size=6)))
            out.append(InputFile(path + ".parquet", size, row_groups=groups))
        elif kind == "csv":
            width = draw(st.floats(1, 200, allow_nan=False))
            out.append(
                InputFile(path + ".csv", size, bytes_per_row=width, splittable=draw(st.booleans()))
            )
        else:
            out.append(InputFile(path, size))
    return out


def _units(plan: Plan) -> list[Unit]:
    return [u for mb in plan.mini_batches for u in mb.units]


@settings(max_examples=150, deadline=None)
@given(listings(), st.integers(1, 12), st.randoms(use_true_random=False))
def test_files_mode_every_file_once_in_path_order(
    listing: list[InputFile], count: int, rnd: random.Random
) -> None:
    plan = build_plan(listing, MiniBatchSize(count, "files"))
    expected = sorted((f.path for f in listing), key=str.encode)
    assert [u.path for u in _units(plan)] == expected
    sizes = [len(mb.units) for mb in plan.mini_batches]
    assert all(s == count for s in sizes[:-1]) and (not sizes or 1 <= sizes[-1] <= count)
    assert plan.items == len(listing) and not plan.items_estimated
    shuffled = listing[:]
    rnd.shuffle(shuffled)
    assert serialize_plan(build_plan(shuffled, MiniBatchSize(count, "files"))) == serialize_plan(
        plan
    )


@settings(max_examples=150, deadline=None)
@given(listings("parquet"), st.integers(1, 8000))
def test_parquet_rows_pack_whole_row_groups(listing: list[InputFile], count: int) -> None:
    plan = build_plan(listing, MiniBatchSize(count, "rows"))
    expected = [
        (f.path, g, rows)
        for f in sorted(listing, key=lambda f: f.path.encode())
        for g, rows in enumerate(f.row_groups)
        if rows
    ]
    assert [(u.path, u.row_group, u.rows) for u in _units(plan)] == expected
    for mb in plan.mini_batches:
        # At most `count` rows unless one row group alone is larger (never split).
        assert mb.items <= count or len(mb.units) == 1
    for first, second in zip(plan.mini_batches, plan.mini_batches[1:], strict=False):
        assert first.items + (second.units[0].rows or 0) > count  # greedy: nothing fit
    assert plan.items == sum(r for *_, r in expected) and not plan.items_estimated


@settings(max_examples=150, deadline=None)
@given(listings("csv"), st.integers(1, 500))
def test_csv_ranges_tile_each_file(listing: list[InputFile], count: int) -> None:
    plan = build_plan(listing, MiniBatchSize(count, "rows"))
    for file in listing:
        ranges = [(u.start, u.end) for u in _units(plan) if u.path == file.path]
        if file.size == 0:
            assert ranges == []
            continue
        assert ranges[0][0] == 0 and ranges[-1][1] == file.size
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(ranges))
        if not file.splittable:
            assert len(ranges) == 1
        rows = sum(u.rows or 0 for u in _units(plan) if u.path == file.path)
        assert rows == round(file.size / (file.bytes_per_row or 1))
    assert plan.items_estimated or not _units(plan)


def _owned_lines(data: bytes, start: int, end: int) -> list[int]:
    """The worker's rule (docs §2): a range owns the lines whose preceding newline is in it."""
    if start == 0:
        pos = 0
    else:
        newline = data.find(b"\n", start)
        if newline < 0:
            return []
        pos = newline + 1
    owned = []
    while pos < len(data) and pos <= end:
        owned.append(pos)
        newline = data.find(b"\n", pos)
        if newline < 0:
            break
        pos = newline + 1
    return owned


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=40),
    st.integers(1, 10),
    st.floats(1, 40, allow_nan=False),
)
def test_line_aligned_ranges_own_every_line_once(
    lines: list[bytes], count: int, width: float
) -> None:
    data = b"\n".join(lines) + b"\n"
    file = InputFile("a.jsonl", len(data), bytes_per_row=width)
    plan = build_plan([file], MiniBatchSize(count, "rows"))
    owned = [p for u in _units(plan) for p in _owned_lines(data, u.start, u.end)]
    starts = [0] + [i + 1 for i, b in enumerate(data[:-1]) if b == ord("\n")]
    assert owned == starts


def test_plan_bytes_round_trip_and_digest() -> None:
    listing = [InputFile("b.csv", 100, bytes_per_row=10.0), InputFile("a/x.parquet", 9, (4, 0, 7))]
    plan = build_plan(listing, parse_mini_batch_size("8rows"), input_uri="s3://d/in/")
    data = serialize_plan(plan)
    assert parse_plan(data) == plan
    assert serialize_plan(parse_plan(data)) == data
    assert plan_digest(data) == plan_digest(
        serialize_plan(build_plan(listing[::-1], plan.mini_batch_size, input_uri="s3://d/in/"))
    )
    other = build_plan(listing, plan.mini_batch_size, input_uri="s3://d/other/")
    assert plan_digest(serialize_plan(other)) != plan_digest(data)
    assert data.startswith(
        b'{"inputFormat":"auto","inputUri":"s3://d/in/","items":21,"itemsEstimated":true,'
    )
    assert [
        [(u.path, u.row_group, u.start, u.end) for u in mb.units] for mb in plan.mini_batches
    ] == [
        [("a/x.parquet", 0, 0, 9)],
        [("a/x.parquet", 2, 0, 9)],
        [("b.csv", None, 0, 50)],
        [("b.csv", None, 50, 100)],
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "unreadable plan"),
        (b'{"version": 2}', "version"),
        (
            b'{"version":1,"miniBatchSize":{"count":1,"unit":"files"},"inputFormat":"auto",'
            b'"inputUri":"","itemsEstimated":false,"miniBatches":[{"id":1,"units":[]}]}',
            "ids",
        ),
    ],
)
def test_parse_plan_rejects(data: bytes, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plan(data)


@pytest.mark.parametrize(
    ("listing", "size", "fmt", "message"),
    [
        ([InputFile("a", 1), InputFile("a", 2)], FILES, "auto", "twice"),
        ([InputFile("a.bin", 1)], MiniBatchSize(5, "rows"), "auto", "needs csv, parquet or jsonl"),
        ([InputFile("a.csv", 10)], MiniBatchSize(5, "rows"), "auto", "no row width"),
        ([InputFile("a", 1)], MiniBatchSize(5, "rows"), "xml", "unknown input format"),
    ],
)
def test_bad_inputs_fail_with_a_reason(
    listing: list[InputFile], size: MiniBatchSize, fmt: str, message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        build_plan(listing, size, fmt)


def test_formats_and_hidden_files() -> None:
    assert [resolve_format(p, "auto") for p in ("x.CSV", "d/y.ndjson", "z.pq", "w", ".csv")] == [
        "csv",
        "jsonl",
        "parquet",
        "files",
        "files",
    ]
    assert resolve_format("x.csv", "files") == "files"
    plan = build_plan(
        [
            InputFile("_SUCCESS", 0),
            InputFile("out/_mlkube/plan.json", 5),
            InputFile("d/.x", 1),
            InputFile("d/a", 1),
        ],
        FILES,
    )
    assert [u.path for u in _units(plan)] == ["d/a"]


def test_empty_input_is_an_empty_plan() -> None:
    plan = build_plan([], FILES)
    assert plan.mini_batches == () and plan.items == 0
    assert index_count(0, 4) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 300))
def test_shards_cover_contiguously_and_balance(total: int, instances: int) -> None:
    indexes = index_count(total, instances)
    assert indexes <= min(MAX_INDEXES, 4 * instances) and (indexes > 0) == (total > 0)
    ranges = [shard(i, total, indexes) for i in range(indexes)]
    assert [p for r in ranges for p in r] == list(range(total))
    if ranges:
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
        assert min(map(len, ranges)) >= 1
    for i, r in enumerate(ranges):
        for p in (r.start, r.stop - 1):
            assert index_of(p, total, indexes) == i


def test_shard_and_index_of_bounds() -> None:
    assert shard(0, 10, 3) == range(0, 4) and shard(2, 10, 3) == range(7, 10)
    with pytest.raises(PlanError):
        shard(3, 10, 3)
    with pytest.raises(PlanError):
        index_of(10, 10, 3)
