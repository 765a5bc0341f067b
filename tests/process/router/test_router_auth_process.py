"""Key auth through a real router: 401s with reasons, both headers, Secret rotation."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import requests
from router_harness import V2_PATH, KubeFileDir, Upstream, base_config, fire, wait_until


def status_with(router_url: str, headers: dict[str, str]) -> tuple[int, str]:
    result = asyncio.run(fire(router_url + V2_PATH, 1, headers=headers))[0]
    reason = orjson.loads(result.body).get("error", "") if result.status != 200 else ""
    return result.status, reason


def test_key_auth_enforced_and_rotation_picked_up(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    secret = KubeFileDir(tmp_path / "secret")
    secret.write({"keys": b"# primary\nkey-one\n\nkey-two\n"})
    doc = base_config(fresh_upstreams, auth={"mode": "key", "keysFile": secret.path("keys")})
    router = start_router(doc)

    status, reason = status_with(router.url, {})
    assert status == 401 and "missing key" in reason
    status, reason = status_with(router.url, {"Authorization": "Bearer nope"})
    assert status == 401 and reason == "invalid key"
    assert status_with(router.url, {"Authorization": "Bearer key-one"})[0] == 200
    assert status_with(router.url, {"api-key": "key-two"})[0] == 200
    ok = asyncio.run(fire(router.url + V2_PATH, 200, headers={"Authorization": "Bearer key-two"}))
    assert Counter(r.status for r in ok) == {200: 200}
    # The key is the router's business: upstreams never see it.
    assert sum(up.stats()["auth_headers"] for up in fresh_upstreams.values()) == 0

    secret.write({"keys": b"key-three\n"})  # Secret rotated: the kubelet swaps ..data
    wait_until(
        lambda: status_with(router.url, {"Authorization": "Bearer key-three"})[0] == 200,
        timeout=5,
    )
    assert status_with(router.url, {"Authorization": "Bearer key-one"})[0] == 401
    assert status_with(router.url, {"api-key": "key-two"})[0] == 401
    # Health endpoints stay open for the kubelet's probes.
    assert requests.get(router.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(router.url + "/readyz", timeout=5).status_code == 200
