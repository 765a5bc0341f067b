"""The cache key (what is in it and what is not), the verdict's reasons, image digests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlkube.reconcile.pipeline_cache import (
    artifact_outputs,
    cache_key,
    cache_label,
    cache_precheck,
    cache_verdict,
    image_moved,
    normalize_image,
    parse_image_digests,
    resolve_image_digest,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def key_input(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "namespace": "team-a",
        "image_digest": D1,
        "command": ["python"],
        "args": ["train.py", "--C", "1.0"],
        "env": [{"name": "LEVEL", "value": "info"}],
        "inputs": {"data": D2, "code": D1},
        "outputs": [("model", "artifact"), ("metrics", "metrics")],
        "version": "",
        "parameters": {"C": "1.0"},
    }
    return {**base, **changes}


def test_the_key_is_sha256_over_canonical_json() -> None:
    body = {
        "v": 1,
        "namespace": "team-a",
        "image": D1,
        "command": ["python"],
        "args": ["train.py", "--C", "1.0"],
        "env": [{"name": "LEVEL", "value": "info"}],
        "inputs": {"code": D1, "data": D2},
        "outputs": [{"name": "metrics", "type": "metrics"}, {"name": "model", "type": "artifact"}],
        "parameters": {"C": "1.0"},
        "version": "",
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    key = cache_key(**key_input())
    assert key == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert cache_label(key) == key[7:70] and len(cache_label(key)) == 63


@pytest.mark.parametrize(
    "change",
    [
        {"namespace": "team-b"},
        {"image_digest": D2},
        {"command": ["python3"]},
        {"args": ["train.py", "--C", "2.0"]},
        {"env": [{"name": "LEVEL", "value": "debug"}]},
        {"env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        {"inputs": {"data": D1, "code": D1}},  # changed input bytes
        {"inputs": {"data": D2}},
        {"outputs": [("model", "artifact")]},
        {"outputs": [("model", "artifact"), ("metrics", "parameter")]},
        {"version": "2"},
        {"parameters": {"C": "2.0"}},
    ],
)
def test_everything_that_decides_the_outputs_changes_the_key(change: dict[str, Any]) -> None:
    assert cache_key(**key_input(**change)) != cache_key(**key_input())


def test_ignored_inputs_and_orderings_do_not_change_the_key() -> None:
    base = cache_key(**key_input())
    ignored = key_input(inputs={"data": D2, "code": D1, "log": D1}, ignored_inputs=["log"])
    assert cache_key(**ignored) == base
    reordered = key_input(
        inputs={"code": D1, "data": D2}, outputs=[("metrics", "metrics"), ("model", "artifact")]
    )
    assert cache_key(**reordered) == base
    # env order is kept: a later variable may refer to an earlier one ($(VAR)).
    two = [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}]
    assert cache_key(**key_input(env=two)) != cache_key(**key_input(env=two[::-1]))


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=5))
def test_the_key_is_a_function_of_its_input(parameters: dict[str, str]) -> None:
    first = cache_key(**key_input(parameters=parameters))
    again = cache_key(**key_input(parameters=dict(reversed(list(parameters.items())))))
    assert first == again and len(first) == 71


def entry(created: dt.datetime = NOW - DAY, **changes: Any) -> dict[str, Any]:
    return {
        "key": "sha256:k",
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sourceRun": "r1",
        "step": "train",
        "outputs": [
            {"name": "model", "type": "artifact", "uri": "s3://b/m/", "digest": D1},
            {"name": "lr", "type": "parameter", "value": "0.1"},
        ],
        "metrics": {"auc": 0.9},
        **changes,
    }


def verdict(e: dict[str, Any] | None, **kw: Any) -> tuple[bool, str]:
    args: dict[str, Any] = {"key": "sha256:k", "now": NOW, "max_age": 30 * DAY, "checks": {}}
    return cache_verdict(e, **{**args, **kw})


def test_a_verified_entry_is_a_hit() -> None:
    assert verdict(entry(), checks={"model": "ok"}) == (True, "hit")
    assert [o["name"] for o in artifact_outputs(entry())] == ["model"]


@pytest.mark.parametrize(
    ("e", "kw", "reason"),
    [
        (None, {}, "no entry"),
        (entry(key="sha256:other"), {}, "no entry"),
        (entry(NOW - 31 * DAY), {}, "expired (maxAge 30d)"),
        (entry(NOW - 2 * DAY), {"max_age": DAY, "max_age_text": "1d"}, "expired (maxAge 1d)"),
        ({**entry(), "created": "yesterday"}, {}, "expired (maxAge 30d)"),
        (entry(), {"checks": {"model": "missing"}}, "output model missing"),
        (entry(), {"checks": {"model": "changed"}}, "output model digest changed"),
        (entry(), {}, "output model not verified"),
        (entry(), {"enabled": False, "checks": {"model": "ok"}}, "disabled"),
        (entry(), {"policy": "ForceRerun", "checks": {"model": "ok"}}, "ForceRerun"),
        (
            entry(),
            {"key": None, "uncacheable": "image x is not pinned", "checks": {"model": "ok"}},
            "uncacheable: image x is not pinned",
        ),
    ],
)
def test_every_miss_says_why(e: dict[str, Any] | None, kw: dict[str, Any], reason: str) -> None:
    assert verdict(e, **kw) == (False, reason)


def test_an_output_recorded_without_digest_is_never_a_hit() -> None:
    bare = entry(outputs=[{"name": "model", "type": "artifact", "uri": "s3://b/m/"}])
    assert verdict(bare, checks={"model": "ok"}) == (
        False,
        "output model has no recorded uri and digest",
    )


def test_the_precheck_spares_the_listing_for_early_misses() -> None:
    args: dict[str, Any] = {"key": "sha256:k", "now": NOW, "max_age": 30 * DAY}
    assert cache_precheck(entry(), **args) is None
    assert cache_precheck(None, **args) == "no entry"


def test_pinned_images_use_their_digest() -> None:
    assert resolve_image_digest(f"ghcr.io/a/b:1@{D1}", {}) == (D1, "")


def test_listed_images_match_however_they_are_written() -> None:
    digests = parse_image_digests(f"python:3.11={D1}, ghcr.io/mlkube/serving:dev={D2}")
    assert resolve_image_digest("docker.io/library/python:3.11", digests) == (D1, "")
    assert resolve_image_digest("ghcr.io/mlkube/serving:dev", digests) == (D2, "")
    digest, why = resolve_image_digest("ghcr.io/mlkube/serving:latest", digests)
    assert digest is None
    assert why == (
        "image ghcr.io/mlkube/serving:latest is not pinned by digest and not in "
        "MLKUBE_IMAGE_DIGESTS"
    )


@pytest.mark.parametrize(
    ("ref", "normal"),
    [
        ("python", "docker.io/library/python:latest"),
        ("python:3.11", "docker.io/library/python:3.11"),
        ("org/app:1", "docker.io/org/app:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app:2", "localhost/app:2"),
        (f"ghcr.io/a/b:1@{D1}", f"ghcr.io/a/b@{D1}"),
    ],
)
def test_normalize_image(ref: str, normal: str) -> None:
    assert normalize_image(ref) == normal


@pytest.mark.parametrize(
    "text", ["python", "python=sha256:abc", f"={D1}", f"python=sha512:{'1' * 64}"]
)
def test_bad_image_digest_settings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="MLKUBE_IMAGE_DIGESTS"):
        parse_image_digests(text)


def test_an_empty_setting_lists_nothing() -> None:
    assert parse_image_digests("") == ()
    assert parse_image_digests(" , ") == ()


def test_the_operator_reads_the_setting_and_names_it_when_bad() -> None:
    from mlkube.builders.operator_config import OperatorConfigError, parse_operator_config

    config = parse_operator_config({"MLKUBE_IMAGE_DIGESTS": f"python:3.11={D1}"})
    assert config.image_digests == (("docker.io/library/python:3.11", D1),)
    assert resolve_image_digest("python:3.11", config.image_digests) == (D1, "")
    assert parse_operator_config({}).image_digests == ()
    with pytest.raises(OperatorConfigError, match="MLKUBE_IMAGE_DIGESTS: 'python'"):
        parse_operator_config({"MLKUBE_IMAGE_DIGESTS": "python"})


def test_image_moved_compares_repository_digests_only() -> None:
    a, e = "sha256:" + "a" * 64, "sha256:" + "e" * 64
    assert image_moved(a, f"docker.io/library/trainer@{a}") is None
    moved = image_moved(a, f"docker.io/library/trainer@{e}")
    assert moved is not None and e in moved and a in moved
    # A bare image id (config digest, containerd's answer for an imported image) proves nothing.
    assert image_moved(a, e) is None
    assert image_moved(None, f"x@{e}") is None
    assert image_moved(a, None) is None
