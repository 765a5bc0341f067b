"""B9: the operator reads baselines and summaries only up to a byte cap, with a clear error."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mlkube.controllers import drift_poll
from mlkube.controllers.drift_poll import BaselineError, read_profile_dir
from mlkube.storage.bounded import TooLarge, read_file_bounded, read_stream_bounded


def test_stream_within_the_cap_is_read_whole() -> None:
    assert read_stream_bounded(io.BytesIO(b"abcd"), 4, "x") == b"abcd"


def test_stream_past_the_cap_stops_one_byte_over() -> None:
    class Endless:
        served = 0

        def read(self, size: int = -1) -> bytes:
            self.served += size
            return b"x" * size

    stream = Endless()
    with pytest.raises(TooLarge, match=r"the drift summary is larger than the 0.5 MiB"):
        read_stream_bounded(stream, 512 * 1024, "the drift summary")
    assert stream.served == 512 * 1024 + 1  # never more than the cap plus one byte


def test_file_past_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b"x" * 11)
    assert read_file_bounded(path, 11) == b"x" * 11
    with pytest.raises(TooLarge, match=r"p\.json is larger than"):
        read_file_bounded(path, 10)


def test_oversized_baseline_profile_is_a_clear_baseline_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = {"formatVersion": 1, "windowSize": 10, "features": [], "pad": "x" * 2048}
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    monkeypatch.setattr(drift_poll, "MAX_PROFILE_BYTES", 1024)
    with pytest.raises(BaselineError, match="baseline profile is larger than the"):
        read_profile_dir(str(tmp_path))


def test_baseline_cache_is_bounded_in_bytes_not_only_in_profiles() -> None:
    """64 cached profiles of up to 16 MiB each was the bound; their total JSON size counts."""
    from mlkube.controllers.drift_poll import BaselineCache

    calls: list[str] = []

    def loader(uri: str, digest: str | None) -> dict[str, str]:
        calls.append(uri)
        return {"pad": "x" * 1000}

    cache = BaselineCache(loader, size=64, max_bytes=2500)  # two ~1 KB profiles fit
    for uri in ("a", "b", "c", "a"):
        cache.get(uri, None)
    assert calls == ["a", "b", "c", "a"]  # "a" was evicted by bytes when "c" came in
    cache.get("c", None)
    assert calls == ["a", "b", "c", "a"]  # "c" stayed
    big = BaselineCache(lambda u, d: {"pad": "x" * 5000}, max_bytes=10)
    assert big.get("huge", None)["pad"]  # the newest profile always stays usable
