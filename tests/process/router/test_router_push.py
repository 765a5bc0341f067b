"""The operator's signed config push through a real router process (docs/rollouts.md §6).

A valid push is served within milliseconds while the mounted file still holds the old split; a
bad signature is 403, a replayed or older revision 409; a file older than the pushed revision
(a late kubelet swap) is ignored, a newer one applied; without a key pushes are refused and
the file path works as before; the operator's own push code (`controllers.router_push`, with
the key read from the push Secret) is accepted by the router.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import requests
from router_harness import V2_PATH, Router, Upstream, base_config, fire, served_by, wait_until

from mlkube.builders.endpoint_router_push import build_push_secret
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import router_push
from mlkube.controllers.router_push import RouterConfigPlan
from support.fake_kube import FakeKube

KEY = b"k3y-for-credit-router-pushes"
OWNER = EndpointRef("credit", "ns", "uid-1")


def key_file(tmp_path: Path, key: bytes = KEY) -> Path:
    path = tmp_path / "push-key"
    path.write_bytes(key + b"\n")  # a trailing newline, as `kubectl create secret` may leave
    return path


def sign(body: bytes, key: bytes = KEY) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def push(router: Router, body: bytes, signature: str | None) -> requests.Response:
    headers = {"x-mlkube-signature": signature} if signature is not None else {}
    return requests.put(router.url + "/-/config", data=body, headers=headers, timeout=5)


def state(router: Router) -> dict[str, Any]:
    return dict(requests.get(router.url + "/-/config", timeout=5).json())


def doc(upstreams: dict[str, Upstream], revision: int, traffic: dict[str, int]) -> bytes:
    return orjson.dumps(base_config(upstreams, traffic=traffic, revision=revision))


def served(router: Router, count: int = 60) -> Counter[str]:
    return Counter(served_by(r) for r in asyncio.run(fire(router.url + V2_PATH, count)))


def test_a_signed_push_is_served_at_once_while_the_file_still_holds_the_old_split(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    old = doc(fresh_upstreams, 5, {"blue": 100})
    router = start_router(old, push_key_file=key_file(tmp_path))
    assert state(router)["revision"] == 5
    new = doc(fresh_upstreams, 6, {"green": 100})

    start = time.perf_counter()
    answer = push(router, new, sign(new))
    answered = time.perf_counter() - start
    first = asyncio.run(fire(router.url + V2_PATH, 1, concurrency=1))
    serving = time.perf_counter() - start
    print(f"\npush answered in {answered * 1000:.1f} ms, first request on the new split "
          f"after {serving * 1000:.1f} ms")  # fmt: skip

    assert answer.status_code == 200, answer.text
    digest = "sha256:" + hashlib.sha256(new).hexdigest()
    assert answer.json() == {"loaded": True, "revision": 6, "hash": digest}
    assert served_by(first[0]) == "green"
    assert answered < 0.5  # milliseconds in practice; generous on a shared 2-core machine
    assert served(router) == {"green": 60}
    assert state(router)["hash"] == digest  # what the operator's traffic check compares
    assert Path(router.config_dir.path("config.json")).read_bytes() == old  # no file change
    assert router.metric("mlkube_router_config_pushes_total", result="ok") == 1
    assert router.metric("mlkube_router_config_revision") == 6


def test_a_bad_or_missing_signature_is_403_and_changes_nothing(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    router = start_router(doc(fresh_upstreams, 5, {"blue": 100}), push_key_file=key_file(tmp_path))
    new = doc(fresh_upstreams, 6, {"green": 100})
    tampered = doc(fresh_upstreams, 6, {"red": 100})
    for body, signature in (
        (new, sign(new, b"another endpoint's key")),
        (new, None),
        (new, "sha256=" + "0" * 64),
        (tampered, sign(new)),  # a valid signature of other bytes
    ):
        answer = push(router, body, signature)
        assert answer.status_code == 403, answer.text
        assert "signature" in answer.json()["error"]
        assert answer.json()["revision"] == 5
    assert served(router) == {"blue": 60}
    assert router.metric("mlkube_router_config_pushes_total", result="forbidden") == 4
    assert "router config push refused (403)" in router.log()


def test_a_replayed_or_older_revision_is_409(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    router = start_router(doc(fresh_upstreams, 5, {"blue": 100}), push_key_file=key_file(tmp_path))
    six = doc(fresh_upstreams, 6, {"green": 100})
    assert push(router, six, sign(six)).status_code == 200
    replay = push(router, six, sign(six))
    assert replay.status_code == 409
    assert "revision 6 is not newer than the served revision 6" in replay.json()["error"]
    older = doc(fresh_upstreams, 4, {"red": 100})
    assert push(router, older, sign(older)).status_code == 409
    broken = b'{"version": 1, "revision": 9, "endpoint": "credit", "trafic": {}}'
    invalid = push(router, broken, sign(broken))
    assert invalid.status_code == 400 and "trafic" in invalid.json()["error"]
    assert served(router) == {"green": 60}
    assert router.metric("mlkube_router_config_pushes_total", result="conflict") == 2


def test_a_file_older_than_the_pushed_revision_is_ignored_a_newer_one_applied(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    router = start_router(doc(fresh_upstreams, 5, {"blue": 100}), push_key_file=key_file(tmp_path))
    seven = doc(fresh_upstreams, 7, {"green": 100})
    assert push(router, seven, sign(seven)).status_code == 200
    # The kubelet swaps in the file of revision 6 late (the push of 7 already arrived).
    router.config_dir.write({"config.json": doc(fresh_upstreams, 6, {"red": 100})})
    wait_until(lambda: router.metric("mlkube_router_config_reloads_total", result="stale") == 1)
    assert served(router) == {"green": 60}
    assert state(router)["revision"] == 7 and "error" not in state(router)
    # The same bytes as the push arriving by file change nothing; a newer file is applied.
    router.config_dir.write({"config.json": seven})
    router.config_dir.write({"config.json": doc(fresh_upstreams, 8, {"red": 100})})
    wait_until(lambda: state(router)["revision"] == 8)
    assert served(router) == {"red": 60}


def test_without_a_key_pushes_are_refused_and_the_file_still_drives_the_router(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"blue": 100}))  # no revision
    new = doc(fresh_upstreams, 6, {"green": 100})
    answer = push(router, new, sign(new))
    assert answer.status_code == 403
    assert "not enabled" in answer.json()["error"]
    assert state(router)["revision"] == 0
    router.update(base_config(fresh_upstreams, traffic={"green": 100}))
    wait_until(lambda: served(router, 10) == {"green": 10})


def test_with_several_workers_a_push_reaches_every_worker(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    router = start_router(
        doc(fresh_upstreams, 5, {"blue": 100}), workers=2, push_key_file=key_file(tmp_path)
    )
    new = doc(fresh_upstreams, 6, {"green": 100})
    assert push(router, new, sign(new)).status_code == 200
    # The worker that took it shares it; the other picks it up on its next poll (~1 s).
    # 100 answers from one worker alone can look done: wait for 200 in a row, twice.
    wait_until(lambda: served(router, 200) == {"green": 200}, timeout=5)
    assert served(router, 200) == {"green": 200}


def test_the_operators_push_is_accepted_and_measured(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    """controllers.router_push signs with the key of the push Secret the builders make."""
    fake = FakeKube()
    fake.put(build_push_secret(OWNER, KEY.decode()))
    router = start_router(doc(fresh_upstreams, 5, {"blue": 100}), push_key_file=key_file(tmp_path))
    config = OperatorConfig(pod_networks=("127.0.0.0/8",))
    samples = []
    for revision in range(6, 26):
        text = json.dumps(
            base_config(fresh_upstreams, traffic={"green": 100}, revision=revision), indent=2
        )
        plan = RouterConfigPlan(text, "sha256:" + hashlib.sha256(text.encode()).hexdigest(),
                                revision, True)  # fmt: skip
        start = time.perf_counter()
        taken = router_push.push_config(fake, OWNER, plan, ["127.0.0.1"], config, router.port)
        samples.append(time.perf_counter() - start)
        assert taken["127.0.0.1"].hash == plan.hash
    samples.sort()
    print(f"\noperator push (sign + PUT + applied), 20 pushes: median "
          f"{samples[10] * 1000:.1f} ms, max {samples[-1] * 1000:.1f} ms")  # fmt: skip
    assert state(router)["hash"] == plan.hash
    assert served(router) == {"green": 60}
    assert samples[10] < 0.25
    unwritten = RouterConfigPlan(text, plan.hash, 99, written=False)
    assert router_push.push_config(fake, OWNER, unwritten, ["127.0.0.1"], config, router.port) == {}


def test_a_config_turning_key_auth_on_is_not_served_by_a_replica_without_the_keys(
    fresh_upstreams: dict[str, Upstream], start_router: Any, tmp_path: Path
) -> None:
    # Turning auth on rolls the routers out; until then the old replicas (no keys Secret
    # mounted) get the new config by push and by file. Serving it would refuse every key,
    # valid ones included: they keep the previous config, the new replicas serve it.
    router = start_router(doc(fresh_upstreams, 5, {"blue": 100}), push_key_file=key_file(tmp_path))
    auth = {"mode": "key", "keysFile": str(tmp_path / "keys" / "keys")}  # not mounted here
    six = orjson.dumps(
        base_config(fresh_upstreams, traffic={"blue": 100}, revision=6) | {"auth": auth}
    )
    answer = push(router, six, sign(six))
    assert answer.status_code == 409, answer.text
    assert "keys Secret" in answer.json()["error"]
    router.config_dir.write({"config.json": six})
    wait_until(
        lambda: router.metric("mlkube_router_config_reloads_total", result="unservable") == 1
    )
    assert state(router)["revision"] == 5 and "error" not in state(router)
    assert served(router) == {"blue": 60}  # no key needed: the previous config is served
    # The same config on a replica that mounts the keys is served, with key auth on.
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "keys").write_text("the-key\n")
    seven = orjson.dumps(
        base_config(fresh_upstreams, traffic={"blue": 100}, revision=7) | {"auth": auth}
    )
    assert push(router, seven, sign(seven)).status_code == 200
    refused = requests.post(router.url + V2_PATH, json={"inputs": []}, timeout=5)
    assert refused.status_code == 401
