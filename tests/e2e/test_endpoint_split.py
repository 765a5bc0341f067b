"""The sample `credit` endpoint, reconciled by the operator and served by real pods: two
deployments at 70/30 whose models the storage initializers download from the node's S3 store.
2,000 inferences through the endpoint's Service (kube-proxy's DNAT, from this machine) split
within 3 points of the configured weights, and none fails."""

from __future__ import annotations

import collections
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlkube.contract import HEADER_DEPLOYMENT

REPO = Path(__file__).resolve().parents[2]
REQUEST = (REPO / "examples" / "models" / "credit-risk" / "3" / "sample-request.json").read_bytes()


def _infer(ip: str) -> str | None:
    req = urllib.request.Request(
        f"http://{ip}/v2/models/credit-risk/infer",
        data=REQUEST,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
        assert resp.status == 200 and body["outputs"], body
        return resp.headers.get(HEADER_DEPLOYMENT)


def test_traffic_splits_70_30_through_the_service(credit_endpoint: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        counts = collections.Counter(pool.map(lambda _: _infer(credit_endpoint), range(2000)))
    print(f"\nsplit through Service {credit_endpoint}: {dict(counts)}")
    assert set(counts) == {"blue", "green"}
    assert abs(counts["blue"] / 2000 - 0.70) <= 0.03
    assert abs(counts["green"] / 2000 - 0.30) <= 0.03
