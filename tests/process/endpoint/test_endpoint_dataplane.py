"""The endpoint's data plane as real processes, started from exactly what the builders produce:
two model servers and a shadow behind the router (70/30 split, 20% mirror, key auth), over HTTP
on loopback. Split accuracy, mirroring, header targeting, auth and a dead upstream."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import HEADER_AZUREML_DEPLOYMENT, HEADER_DEPLOYMENT
from mlkube.localrun.plan import plan_local
from mlkube.localrun.runner import LocalEndpoint
from mlkube.storage import compute_digest
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
KEY = "test-key-0123456789"
REQUESTS = 10_000


def model(version: str) -> ModelFacts:
    uri = (REPO / "examples" / "models" / "credit-risk" / version).as_uri()
    return ModelFacts(name=f"credit-risk-v{version}", model_name="credit-risk", version=version,
                      framework="onnx", uri=uri, digest=compute_digest(uri).digest)  # fmt: skip


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    spec = OnlineEndpointSpec.model_validate({
        "deployments": [{"name": "blue", "model": "credit-risk-v3"},
                        {"name": "green", "model": "credit-risk-v4"},
                        {"name": "shadow", "model": "credit-risk-v4"}],
        "traffic": {"blue": 70, "green": 30, "shadow": 0},
        "mirror": {"shadow": 20},
        "auth": {"mode": "key"},
    })  # fmt: skip
    models = {m.name: m for m in (model("3"), model("4"))}
    children = build_endpoint_children(EndpointRef("credit", "ns", "uid-1"), spec, models,
                                       OperatorConfig(), keys=[KEY])  # fmt: skip
    local = LocalEndpoint(plan_local(children), tmp_path_factory.mktemp("endpoint"))
    with local:
        yield local


REQUEST = json.loads((REPO / "examples/models/credit-risk/3/sample-request.json").read_text())
PATH = "/v2/models/credit-risk/infer"


async def fire(url: str, count: int, headers: dict[str, str]) -> list[tuple[int, str, Any]]:
    """`count` requests over 16 keep-alive connections: (status, answering deployment, body)."""
    results: list[tuple[int, str, Any]] = []
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(count))

        async def worker() -> None:
            for _ in queue:
                async with session.post(url + PATH, json=REQUEST, headers=headers) as resp:
                    body = await resp.json(content_type=None)
                    results.append((resp.status, resp.headers.get(HEADER_DEPLOYMENT, ""), body))

        await asyncio.gather(*(worker() for _ in range(16)))
    return results


def metric(url: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_split_and_mirror_follow_the_built_configuration(endpoint: LocalEndpoint) -> None:
    results = asyncio.run(fire(endpoint.url, REQUESTS, AUTH))
    assert {status for status, _, _ in results} == {200}
    counts = Counter(dep for _, dep, _ in results)
    assert set(counts) == {"blue", "green"}  # shadow takes no live traffic
    blue_share = counts["blue"] / REQUESTS
    print(
        f"\nsplit over {REQUESTS} requests: blue {blue_share:.4f} (target 0.70), "
        f"green {counts['green'] / REQUESTS:.4f} (target 0.30)"
    )
    assert abs(blue_share - 0.70) <= 0.02
    # Mirrored copies are fire-and-forget: wait until the shadow has seen them all.
    mirrored = wait_for(
        lambda: (n := metric(endpoint.router_metrics_url, "mlkube_router_requests_total",
                             deployment="shadow", kind="mirror")) >= 1 and
        n == metric(endpoint.router_metrics_url, "mlkube_router_requests_total",
                    deployment="shadow", kind="mirror") and n,
        what="mirrored requests to settle")  # fmt: skip
    shadow_seen = metric(endpoint.server_metrics_url("shadow"), "mlkube_requests_total",
                         status="200")  # fmt: skip
    print(
        f"mirror: {mirrored:.0f} mirrored ({mirrored / REQUESTS:.4f}, target 0.20), "
        f"shadow server answered {shadow_seen:.0f}"
    )
    assert abs(mirrored / REQUESTS - 0.20) <= 0.02
    assert shadow_seen == pytest.approx(mirrored, abs=2)
    # Live answers are the models' real predictions.
    blue_body = next(body for _, dep, body in results if dep == "blue")
    assert blue_body["outputs"][0]["name"] == "label"


def test_header_targets_one_deployment_without_mirroring(endpoint: LocalEndpoint) -> None:
    before = metric(endpoint.router_metrics_url, "mlkube_router_requests_total",
                    deployment="shadow", kind="mirror")  # fmt: skip
    for header in (HEADER_DEPLOYMENT, HEADER_AZUREML_DEPLOYMENT):
        results = asyncio.run(fire(endpoint.url, 300, {**AUTH, header: "green"}))
        assert Counter((s, d) for s, d, _ in results) == {(200, "green"): 300}
    after = metric(endpoint.router_metrics_url, "mlkube_router_requests_total",
                   deployment="shadow", kind="mirror")  # fmt: skip
    assert after == before
    unknown = asyncio.run(fire(endpoint.url, 1, {**AUTH, HEADER_DEPLOYMENT: "purple"}))
    assert unknown[0][0] == 404 and "blue" in json.dumps(unknown[0][2])


def test_key_auth_is_enforced(endpoint: LocalEndpoint) -> None:
    assert asyncio.run(fire(endpoint.url, 1, {}))[0][0] == 401
    wrong = asyncio.run(fire(endpoint.url, 1, {"Authorization": "Bearer nope"}))[0]
    assert wrong[0] == 401 and "error" in wrong[2]


def test_a_dead_upstream_gives_503_with_a_reason(endpoint: LocalEndpoint) -> None:
    endpoint.stop_process("green")
    targeted = asyncio.run(fire(endpoint.url, 1, {**AUTH, HEADER_DEPLOYMENT: "green"}))[0]
    assert targeted[0] == 503
    assert "green" in targeted[2]["error"]
    # Untargeted traffic fails over to the live deployment that still answers.
    results = asyncio.run(fire(endpoint.url, 200, AUTH))
    assert Counter((s, d) for s, d, _ in results) == {(200, "blue"): 200}
