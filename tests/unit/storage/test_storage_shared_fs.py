"""The shared object-store client: one per (store, credentials), rebuilt after rotation/TTL."""

from collections.abc import Iterator

import pytest
from fsspec import AbstractFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from mlkube.storage import shared_fs
from mlkube.storage.locations import open_filesystem, resolve


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    shared_fs.clear()
    yield
    shared_fs.clear()


def builder(built: list[AbstractFileSystem]):  # type: ignore[no-untyped-def]
    def build() -> AbstractFileSystem:
        fs = MemoryFileSystem(skip_instance_cache=True)
        built.append(fs)
        return fs

    return build


def test_same_store_and_credentials_share_one_client() -> None:
    built: list[AbstractFileSystem] = []
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}
    key = shared_fs.cache_key("s3", "http://127.0.0.1:9000", 30.0, env)
    first = shared_fs.shared(key, builder(built), now=lambda: 0.0)
    second = shared_fs.shared(key, builder(built), now=lambda: 10.0)
    assert first is second and len(built) == 1


def test_rotated_credentials_get_a_new_client_and_the_key_hides_them() -> None:
    old = shared_fs.cache_key("s3", "e", 30.0, {"AWS_SECRET_ACCESS_KEY": "old-secret"})
    new = shared_fs.cache_key("s3", "e", 30.0, {"AWS_SECRET_ACCESS_KEY": "new-secret"})
    assert old != new
    assert not any("secret" in part for part in old)
    built: list[AbstractFileSystem] = []
    assert shared_fs.shared(old, builder(built)) is not shared_fs.shared(new, builder(built))


def test_other_endpoint_or_timeout_is_another_client() -> None:
    base = shared_fs.cache_key("s3", "e1", 30.0, {})
    assert base != shared_fs.cache_key("s3", "e2", 30.0, {})
    assert base != shared_fs.cache_key("s3", "e1", 60.0, {})


def test_an_entry_expires_after_the_ttl() -> None:
    built: list[AbstractFileSystem] = []
    key = shared_fs.cache_key("s3", "e", None, {})
    first = shared_fs.shared(key, builder(built), now=lambda: 0.0)
    later = shared_fs.shared(key, builder(built), now=lambda: shared_fs.TTL_SECONDS)
    assert later is not first and len(built) == 2


def test_the_cache_is_bounded() -> None:
    built: list[AbstractFileSystem] = []
    for i in range(shared_fs.MAX_ENTRIES + 5):
        key = shared_fs.cache_key("s3", f"e{i}", None, {})
        shared_fs.shared(key, builder(built), now=lambda i=i: float(i) / 1000)  # type: ignore[misc]
    assert len(shared_fs._entries) == shared_fs.MAX_ENTRIES
    assert shared_fs.cache_key("s3", "e0", None, {}) not in shared_fs._entries  # oldest out


def test_open_filesystem_reuses_s3_only_when_asked() -> None:
    location = resolve("s3://bucket/model")
    env = {"MLKUBE_S3_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "k"}
    shared_one = open_filesystem(location, env, reuse=True)
    assert open_filesystem(location, env, reuse=True) is shared_one
    assert open_filesystem(location, env) is not shared_one
    rotated = {**env, "AWS_ACCESS_KEY_ID": "k2"}
    assert open_filesystem(location, rotated, reuse=True) is not shared_one


def test_an_idle_client_is_dropped_and_a_used_one_kept() -> None:
    built: list[AbstractFileSystem] = []
    busy = shared_fs.cache_key("s3", "busy", None, {})
    idle = shared_fs.cache_key("s3", "idle", None, {})
    shared_fs.shared(busy, builder(built), now=lambda: 0.0)
    shared_fs.shared(idle, builder(built), now=lambda: 0.0)
    shared_fs.shared(busy, builder(built), now=lambda: shared_fs.IDLE_SECONDS - 1)
    assert shared_fs.expire(now=lambda: shared_fs.IDLE_SECONDS + 1) == 1
    assert busy in shared_fs._entries and idle not in shared_fs._entries
    assert shared_fs.expire(now=lambda: 2 * shared_fs.IDLE_SECONDS) == 0
