"""The cache store against a real file:// store: entries, re-verification by listing
fingerprint (full digest only when the listing changed), and uri input digests memoised in
the process and in the store."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline_cache as cache
from mlkube.controllers import pipeline_store as store
from mlkube.storage.transfer import compute_digest

NS = "ml"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def cfg() -> OperatorConfig:
    return OperatorConfig(allow_file_artifacts=True)


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full digest the operator computes (reads every byte)."""
    seen: list[str] = []
    real = store.digest

    def counting(uri: str, namespace: str, config: OperatorConfig) -> str:
        seen.append(uri)
        return real(uri, namespace, config)

    monkeypatch.setattr(store, "digest", counting)
    return seen


def _output(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    uri = folder.as_uri()
    return {"name": "model", "type": "artifact", "uri": uri, "digest": compute_digest(uri).digest}


def test_a_recorded_entry_is_a_hit_verified_by_one_listing(
    tmp_path: Path, cfg: OperatorConfig, digests: list[str]
) -> None:
    root, out, key = (tmp_path / "s").as_uri(), _output(tmp_path), "sha256:" + "a" * 64
    cache.record(root, NS, key, run="r1", step="train", outputs=[out], metrics={"auc": 0.9},
                 max_age_seconds=3600, now=NOW, config=cfg)  # fmt: skip
    found = cache.lookup(root, NS, key, max_age_seconds=3600, max_age_text="1h", now=NOW,
                         config=cfg)  # fmt: skip
    assert found.hit and found.reason == "hit" and found.entry is not None
    assert found.entry["sourceRun"] == "r1" and found.entry["metrics"] == {"auc": 0.9}
    assert digests == []  # the listing matched: no byte was read
    later = NOW + datetime.timedelta(hours=2)
    expired = cache.lookup(root, NS, key, max_age_seconds=3600, max_age_text="1h", now=later,
                           config=cfg)  # fmt: skip
    assert not expired.hit and expired.reason == "expired (maxAge 1h)"
    missing = cache.lookup(root, NS, "sha256:" + "b" * 64, max_age_seconds=3600,
                           max_age_text="1h", now=NOW, config=cfg)  # fmt: skip
    assert missing.reason == "no entry"


def test_a_touched_output_is_digested_and_a_rewritten_one_misses(
    tmp_path: Path, cfg: OperatorConfig, digests: list[str]
) -> None:
    root, out, key = (tmp_path / "s").as_uri(), _output(tmp_path), "sha256:" + "a" * 64
    cache.record(root, NS, key, run="r1", step="train", outputs=[out], metrics={},
                 max_age_seconds=3600, now=NOW, config=cfg)  # fmt: skip
    path = Path(out["uri"].removeprefix("file://")) / "model.bin"
    os.utime(path, (1, 1))  # same bytes, new listing: read once, still a hit
    again = cache.lookup(root, NS, key, max_age_seconds=3600, max_age_text="1h", now=NOW,
                         config=cfg)  # fmt: skip
    assert again.hit and len(digests) == 1
    path.write_bytes(b"WEIGHTS")  # same size, other bytes
    changed = cache.lookup(root, NS, key, max_age_seconds=3600, max_age_text="1h", now=NOW,
                           config=cfg)  # fmt: skip
    assert not changed.hit and changed.reason == "output model digest changed"


def test_input_digests_are_memoised_by_listing_in_the_process_and_the_store(
    tmp_path: Path, cfg: OperatorConfig, digests: list[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    root = (tmp_path / "s").as_uri()
    first = cache.input_digest(root, NS, data.as_uri(), cfg)
    assert first == compute_digest(data.as_uri()).digest and len(digests) == 1
    assert cache.input_digest(root, NS, data.as_uri(), cfg) == first and len(digests) == 1
    store.DigestMemo.clear()  # a restarted operator: the store's memo answers
    assert cache.input_digest(root, NS, data.as_uri(), cfg) == first and len(digests) == 1
    (data / "a.csv").write_text("x\n2\n")
    second = cache.input_digest(root, NS, data.as_uri(), cfg)
    assert second != first and len(digests) == 2
    with pytest.raises(store.StoreUnreadable, match="does not exist"):
        cache.input_digest(root, NS, (tmp_path / "nope").as_uri(), cfg)
