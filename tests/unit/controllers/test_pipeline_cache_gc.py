"""The step cache GC against a real file:// store: expired entries (by their own maxAge) go,
young ones, foreign files and the input digest memos stay; passes are bounded, resume after
the last name, and an entry read once is not read again while its listing is unchanged."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline_cache_gc as gc
from mlkube.controllers import pipeline_store

NS = "ml"
NOW = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
CONFIG = OperatorConfig(allow_file_artifacts=True)


def entry(root: Path, name: str, *, age: dt.timedelta, max_age: float | None) -> Path:
    doc: dict[str, object] = {
        "key": f"sha256:{name}",
        "created": (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if max_age is not None:
        doc["maxAgeSeconds"] = max_age
    path = root / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path]:
    root = tmp_path / "store" / NS / "_mlkube" / "pipeline-cache"
    (root / "inputs").mkdir(parents=True)
    return (tmp_path / "store").as_uri(), root


def test_expired_entries_go_and_the_rest_stays(store: tuple[str, Path]) -> None:
    uri, root = store
    old = entry(root, "a" * 8, age=dt.timedelta(hours=2), max_age=3600)
    young = entry(root, "b" * 8, age=dt.timedelta(hours=2), max_age=3 * 3600)
    default_kept = entry(root, "c" * 8, age=dt.timedelta(days=29), max_age=None)
    default_gone = entry(root, "d" * 8, age=dt.timedelta(days=31), max_age=None)
    (root / "inputs" / "memo.json").write_text("{}")
    (root / "README").write_text("not an entry")
    done = gc.CacheCollector().collect(uri, NS, CONFIG, NOW)
    assert done.error is None
    assert sorted(Path(u.removeprefix("file://")).name for u in done.deleted) == [
        old.name,
        default_gone.name,
    ]
    assert (
        young.exists() and default_kept.exists() and not old.exists() and not default_gone.exists()
    )
    assert (root / "inputs" / "memo.json").exists() and (root / "README").exists()


def test_passes_are_bounded_and_resume_after_the_cursor(
    store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, root = store
    monkeypatch.setattr(gc, "MAX_READS", 3)
    for i in range(7):
        entry(root, f"{i:08d}", age=dt.timedelta(days=2), max_age=3600)
    collector = gc.CacheCollector()
    assert len(collector.collect(uri, NS, CONFIG, NOW).deleted) == 3
    assert len(collector.collect(uri, NS, CONFIG, NOW).deleted) == 3
    assert len(collector.collect(uri, NS, CONFIG, NOW).deleted) == 1
    assert list(root.glob("*.json")) == []


def test_an_unchanged_entry_is_not_read_again(
    store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, root = store
    entry(root, "e" * 8, age=dt.timedelta(hours=1), max_age=7200)
    reads: list[str] = []
    real = pipeline_store.read_json
    monkeypatch.setattr(pipeline_store, "read_json", lambda u, *a: reads.append(u) or real(u, *a))
    collector = gc.CacheCollector()
    collector.collect(uri, NS, CONFIG, NOW)
    collector.collect(uri, NS, CONFIG, NOW)
    assert len(reads) == 1
    # Read once, its expiry is known: it goes when due without another read.
    done = collector.collect(uri, NS, CONFIG, NOW + dt.timedelta(hours=1))
    assert len(done.deleted) == 1 and len(reads) == 1


def test_one_pass_per_interval_and_store_errors_are_reported(store: tuple[str, Path]) -> None:
    uri, _ = store
    collector = gc.CacheCollector()
    assert collector.claim(uri, NS, NOW)
    assert not collector.claim(uri, NS, NOW + gc.INTERVAL / 2)
    assert collector.claim(uri, "other", NOW)
    assert collector.claim(uri, NS, NOW + gc.INTERVAL)
    refused = collector.collect(uri, NS, OperatorConfig(allow_file_artifacts=False), NOW)
    assert refused.error and refused.deleted == []
