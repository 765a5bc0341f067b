"""The memo behind batch progress reads and pipeline input digests: a value is returned only
at the fingerprint it was recorded at, and the least recently used name goes first."""

from __future__ import annotations

from mlkube.controllers.memo import FingerprintMemo


def test_a_changed_fingerprint_is_a_miss() -> None:
    memo = FingerprintMemo[str](4)
    memo.put("a", (1, "etag1"), "sha256:1")
    assert memo.get("a", (1, "etag1")) == "sha256:1"
    assert memo.get("a", (1, "etag2")) is None
    assert memo.get("b", (1, "etag1")) is None


def test_the_least_recently_used_name_is_dropped_first() -> None:
    memo = FingerprintMemo[bytes](2)
    memo.put("a", 1, b"A")
    memo.put("b", 1, b"B")
    assert memo.get("a", 1) == b"A"  # a is now the most recently used
    memo.put("c", 1, b"C")
    assert (memo.get("a", 1), memo.get("b", 1), memo.get("c", 1)) == (b"A", None, b"C")
    memo.clear()
    assert memo.get("a", 1) is None
