"""Line ownership of byte ranges (Hadoop's rule): every line read by exactly one range."""

from __future__ import annotations

import io
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube_serving.batch.lines import header_line, owned_span, read_owned

_line = st.text(alphabet="ab,1", min_size=0, max_size=7)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_line, min_size=0, max_size=30),
    trailing=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
)
def test_ranges_partition_the_lines(lines: list[str], trailing: bool, cuts: list[int]) -> None:
    text = "\n".join(lines) + ("\n" if trailing and lines else "")
    data = text.encode()
    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    pieces = [read_owned(io.BytesIO(data), start, end) for start, end in itertools.pairwise(bounds)]
    assert b"".join(pieces) == data  # in order, nothing lost, nothing twice
    offset = 0
    for piece in pieces:  # only whole lines: a piece ends at a newline or at the end of file
        offset += len(piece)
        assert not piece or piece.endswith(b"\n") or offset == len(data)


def test_range_inside_one_line_owns_nothing() -> None:
    data = b"a,b\n" + b"x" * 100 + b"\n1,2\n"
    assert owned_span(io.BytesIO(data), 10, 50) == (0, 0)
    assert read_owned(io.BytesIO(data), 0, 10) == b"a,b\n" + b"x" * 100 + b"\n"


def test_header_line() -> None:
    assert header_line(io.BytesIO(b"a,b\n1,2\n")) == b"a,b\n"
    assert header_line(io.BytesIO(b"a,b")) == b"a,b"
