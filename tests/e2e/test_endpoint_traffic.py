"""The router of the sample `credit` endpoint, running in real pods, reached through the
endpoint's Service: the deployment-targeting header picks the deployment, a traffic update is
loaded by the running routers without restarting a model pod (and without a failed request
while a client keeps sending), and key auth refuses requests without the endpoint's key.

The tests run in file order and change the endpoint: targeting, then the split, then auth."""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlkube.builders.names import deployment_name, keys_secret_name
from mlkube.contract import API_VERSION, HEADER_DEPLOYMENT, ROUTER_KEYS_FILE
from mlkube.k8s import Kube
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
REQUEST = (REPO / "examples" / "models" / "credit-risk" / "3" / "sample-request.json").read_bytes()
EP, NS = "credit", "default"


def infer(ip: str, headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    """(HTTP status, deployment that answered); never raises on an HTTP error status."""
    req = urllib.request.Request(
        f"http://{ip}/v2/models/credit-risk/infer",
        data=REQUEST,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
            assert body["outputs"], body
            return resp.status, resp.headers.get(HEADER_DEPLOYMENT)
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, None


def status(ip: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status, or 0 when the connection failed (e.g. a router replica going away)."""
    try:
        return infer(ip, headers)[0]
    except OSError:
        return 0


def model_pod_uids(kube: Kube) -> dict[str, str]:
    """uid -> deployment name of every pod of the endpoint's model Deployments."""
    uids: dict[str, str] = {}
    for dep in ("blue", "green"):
        deploy = kube.get("apps/v1", "Deployment", deployment_name(EP, dep), NS)
        assert deploy is not None
        labels = deploy["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        for pod in kube.list("v1", "Pod", NS, label_selector=selector):
            uids[pod["metadata"]["uid"]] = dep
    return uids


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), {})


def traffic_loaded(kube: Kube) -> dict[str, Any] | None:
    """The endpoint once its routers confirmed the current generation's split."""
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, NS) or {}
    cond = condition(obj, "TrafficApplied")
    current = cond.get("observedGeneration") == obj["metadata"]["generation"]
    ok = cond.get("status") == "True" and cond.get("reason") == "Loaded"
    return obj if ok and current else None


def test_header_targets_one_deployment_through_the_service(credit_endpoint: str) -> None:
    for dep in ("blue", "green"):
        with ThreadPoolExecutor(8) as pool:
            answers = collections.Counter(
                pool.map(infer, [credit_endpoint] * 100, [{HEADER_DEPLOYMENT: dep}] * 100)
            )
        print(f"\nheader {HEADER_DEPLOYMENT}: {dep} -> {dict(answers)}")
        assert answers == {(200, dep): 100}


def test_traffic_update_keeps_model_pods_and_loses_no_request(
    credit_endpoint: str, kube: Kube
) -> None:
    wait_for(lambda: traffic_loaded(kube), timeout=60, interval=1, what="70/30 split Loaded")
    before = model_pod_uids(kube)
    assert sorted(before.values()) == ["blue", "blue", "green"], before
    results: collections.Counter[tuple[int, str | None]] = collections.Counter()
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                results[infer(credit_endpoint)] += 1
            except OSError as exc:  # connection refused/reset: a failed request too
                errors.append(repr(exc))

    workers = [threading.Thread(target=client) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(2)  # traffic flowing before the change
        kube.patch(
            API_VERSION, "OnlineEndpoint", EP, {"spec": {"traffic": {"blue": 20, "green": 80}}}, NS
        )
        started = time.monotonic()
        wait_for(lambda: traffic_loaded(kube), timeout=120, interval=0.5, what="20/80 Loaded")
        loaded_after = time.monotonic() - started
        time.sleep(2)  # and after it
    finally:
        stop.set()
        for w in workers:
            w.join()
    during = sum(results.values())
    failed = sum(n for (code, _), n in results.items() if code != 200) + len(errors)
    print(
        f"\nduring the change: {during} requests, {failed} failed, Loaded after {loaded_after:.1f}s"
    )
    assert failed == 0, (dict(results), errors[:3])
    assert during > 50
    assert model_pod_uids(kube) == before, "a traffic update restarted model pods"

    with ThreadPoolExecutor(8) as pool:
        counts = collections.Counter(pool.map(lambda _: infer(credit_endpoint), range(1000)))
    print(f"split after the update: {dict(counts)}")
    assert counts[(200, "blue")] + counts[(200, "green")] == 1000
    assert abs(counts[(200, "green")] / 1000 - 0.80) <= 0.04
    applied = kube.get(API_VERSION, "OnlineEndpoint", EP, NS) or {}
    assert applied["status"]["traffic"] == {"blue": 20, "green": 80}


def test_key_auth_refuses_missing_and_wrong_keys(credit_endpoint: str, kube: Kube) -> None:
    kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": {"auth": {"mode": "key"}}}, NS)
    secret = wait_for(
        lambda: kube.get("v1", "Secret", keys_secret_name(EP), NS),
        timeout=60,
        interval=0.5,
        what="the endpoint's keys Secret",
    )
    keys = base64.b64decode(secret["data"][ROUTER_KEYS_FILE]).decode().split()
    assert keys
    # Turning auth on rolls the routers out (the Secret is mounted); until every new replica
    # serves, a request may reach one that is going away: wait for 20 refusals in a row.
    wait_for(
        lambda: traffic_loaded(kube) and all(status(credit_endpoint) == 401 for _ in range(20)),
        timeout=180,
        interval=1,
        what="every router replica refusing keyless requests",
    )
    codes = collections.Counter(
        [infer(credit_endpoint)[0] for _ in range(20)]
        + [infer(credit_endpoint, {"Authorization": "Bearer not-the-key"})[0] for _ in range(20)]
        + [infer(credit_endpoint, {"api-key": "x" + keys[0]})[0] for _ in range(20)]
    )
    good = collections.Counter(
        [infer(credit_endpoint, {"Authorization": f"Bearer {keys[0]}"})[0] for _ in range(20)]
        + [infer(credit_endpoint, {"api-key": keys[0]})[0] for _ in range(20)]
    )
    print(f"\nwithout/wrong key: {dict(codes)}; with the Secret's key: {dict(good)}")
    assert codes == {401: 60}
    assert good == {200: 40}
