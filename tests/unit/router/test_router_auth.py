"""Key auth: header parsing, constant-time key check, reload on Secret rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlkube_serving.router.auth import KeyStore, extract_key, parse_keys
from mlkube_serving.router.errors import Unauthorized


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keys_file_ignores_blanks_and_comments() -> None:
    assert parse_keys("# rotated 2024\nalpha\n\n  beta  \n") == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    [
        (b"Bearer abc", None, b"abc"),
        (b"bearer   abc ", None, b"abc"),
        (b"Basic abc", b"k2", b"k2"),
        (None, b" k2 ", b"k2"),
        (b"Bearer ", None, None),
        (None, None, None),
    ],
)
def test_extract_key(
    authorization: bytes | None, api_key: bytes | None, expected: bytes | None
) -> None:
    assert extract_key(authorization, api_key) == expected


def write_secret(root: Path, generation: str, content: str) -> None:
    """Lay out a Secret volume like the kubelet: keys -> ..data/keys, ..data -> ..<gen>."""
    version = root / f"..{generation}"
    version.mkdir()
    (version / "keys").write_text(content)
    if not (root / "keys").is_symlink():
        (root / "keys").symlink_to("..data/keys")
    (root / "..tmp").symlink_to(version.name)
    os.replace(root / "..tmp", root / "..data")


def test_accepts_listed_keys_and_refuses_others(tmp_path: Path) -> None:
    write_secret(tmp_path, "1", "alpha\nbeta\n")
    store = KeyStore(str(tmp_path / "keys"))
    store.authenticate(b"Bearer alpha", None)
    store.authenticate(None, b"beta")
    with pytest.raises(Unauthorized, match="invalid key") as info:
        store.authenticate(b"Bearer gamma", None)
    assert info.value.status == 401
    with pytest.raises(Unauthorized, match="missing key"):
        store.authenticate(None, None)


def test_rotation_is_seen_after_the_check_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    write_secret(tmp_path, "1", "alpha\n")
    store = KeyStore(str(tmp_path / "keys"), clock=clock, check_interval=1.0)
    store.authenticate(b"Bearer alpha", None)
    write_secret(tmp_path, "2", "beta\n")
    clock.now += 0.5  # within the interval: no stat, old keys still in force
    store.authenticate(b"Bearer alpha", None)
    clock.now += 0.6
    store.authenticate(b"Bearer beta", None)
    with pytest.raises(Unauthorized):
        store.authenticate(b"Bearer alpha", None)
    assert store.reloads == 2


def test_missing_or_empty_keys_file_fails_closed(tmp_path: Path) -> None:
    store = KeyStore(str(tmp_path / "absent"))
    # The client learns nothing about the file; the operator sees the reason (log, /readyz).
    with pytest.raises(Unauthorized, match=r"^invalid key$"):
        store.authenticate(b"Bearer anything", None)
    assert "cannot read keys file" in str(store.load_error)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n  # indented comment\n")
    empty_store = KeyStore(str(empty))
    with pytest.raises(Unauthorized, match=r"^invalid key$"):
        empty_store.authenticate(b"Bearer anything", None)
    assert "holds no keys" in str(empty_store.load_error)
    with pytest.raises(Unauthorized):
        empty_store.authenticate(b"Bearer # indented comment", None)
