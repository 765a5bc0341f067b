"""Judging a config push (pure): signature, parse, revision order; the push key file."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson

from mlkube_serving.router.config import parse_config_bytes
from mlkube_serving.router.push import PushKey, is_stale, judge_push, signature

KEY = b"push-key"


def body(revision: int, traffic: dict[str, int] | None = None) -> bytes:
    return orjson.dumps({
        "version": 1, "revision": revision, "endpoint": "credit",
        "deployments": {"blue": {"url": "http://blue"}, "green": {"url": "http://green"}},
        "traffic": traffic or {"blue": 100},
    })  # fmt: skip


def test_signature_is_hmac_sha256_of_the_body() -> None:
    raw = body(1)
    assert signature(KEY, raw) == "sha256=" + hmac.new(KEY, raw, hashlib.sha256).hexdigest()


def test_judgements() -> None:
    served = parse_config_bytes(body(5))
    new = body(6, {"green": 100})
    ok = judge_push(KEY, signature(KEY, new).encode(), new, served)
    assert (ok.status, ok.result) == (200, "ok")
    assert ok.config is not None and dict(ok.config.traffic) == {"green": 100}
    assert ok.body == {"loaded": True, "revision": 6, "hash": ok.config.source_hash}
    assert ok.config.source_hash == "sha256:" + hashlib.sha256(new).hexdigest()
    # A router with nothing loaded takes any valid push.
    assert judge_push(KEY, signature(KEY, new).encode(), new, None).status == 200

    no_key = judge_push(None, signature(KEY, new).encode(), new, served)
    assert (no_key.status, no_key.config) == (403, None)
    assert "not enabled" in no_key.body["error"]
    for presented in (None, b"", signature(b"other", new).encode(), b"sha256=00"):
        bad = judge_push(KEY, presented, new, served)
        assert (bad.status, bad.result, bad.config) == (403, "forbidden", None)
        assert bad.body["revision"] == 5 and bad.body["hash"] == served.source_hash
    for revision in (5, 4, 0):
        old = body(revision, {"green": 100})
        conflict = judge_push(KEY, signature(KEY, old).encode(), old, served)
        assert (conflict.status, conflict.result, conflict.config) == (409, "conflict", None)
    junk = b'{"version": 1}'
    invalid = judge_push(KEY, signature(KEY, junk).encode(), junk, served)
    assert (invalid.status, invalid.result) == (400, "invalid")
    not_json = b"{"
    assert judge_push(KEY, signature(KEY, not_json).encode(), not_json, served).status == 400


def test_a_file_is_stale_only_when_older_than_what_is_served() -> None:
    served = parse_config_bytes(body(5))
    assert is_stale(parse_config_bytes(body(4)), served)
    assert not is_stale(parse_config_bytes(body(5)), served)
    assert not is_stale(parse_config_bytes(body(6)), served)
    assert not is_stale(parse_config_bytes(body(0)), None)


def test_push_key_file_is_reread_when_it_changes_and_an_empty_one_is_no_key(
    tmp_path: Path,
) -> None:
    now = [0.0]
    path = tmp_path / "key"
    key = PushKey(str(path), clock=lambda: now[0], check_interval=1.0)
    assert key.current() is None  # no file yet
    path.write_bytes(b"first\n")
    assert key.current() is None  # checked at most once a second
    now[0] += 1.0
    assert key.current() == b"first"
    path.write_bytes(b"second-key")
    now[0] += 1.0
    assert key.current() == b"second-key"
    path.write_bytes(b"  \n")
    now[0] += 1.0
    assert key.current() is None
