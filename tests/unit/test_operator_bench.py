"""`make bench-operator`'s pure parts: the workload is valid for the operator's own API models,
the floor applies what the builders build (a key Secret where auth is on), the traffic watcher
recognises the router config the builders render before and after the change, readiness needs
the current generation, /proc readings parse, settle timing ignores watches, and the table and
growth print what the figures say."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench" / "operator"
sys.path.insert(0, str(BENCH))

import audit_counts  # noqa: E402  (bench/operator's modules import each other as siblings)
import floor  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
import watchers  # noqa: E402
import workload  # noqa: E402

from mlkube.api.endpoint import OnlineEndpointSpec  # noqa: E402
from mlkube.api.model import ModelSpec  # noqa: E402
from mlkube.builders.model_facts import ModelFacts  # noqa: E402
from mlkube.builders.operator_config import parse_operator_config  # noqa: E402
from mlkube.devcluster.audit import Request  # noqa: E402

URI = "s3://mlkube/bench/credit-risk/3/model"


def created(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the API server returns it from create (uid and generation)."""
    meta = {**obj["metadata"], "uid": "0c0ffee0-0000-4000-8000-000000000001", "generation": 1}
    return {**obj, "metadata": meta}


def facts(i: int) -> ModelFacts:
    spec = workload.model(i, URI)["spec"]
    return ModelFacts(name=workload.model_name(i), model_name=spec["modelName"],
                      version=spec["version"], framework=spec["framework"], uri=URI,
                      digest="sha256:" + "a" * 64, size=560)  # fmt: skip


def test_every_tenth_endpoint_has_key_auth_and_a_mirror_and_all_specs_validate() -> None:
    for i in range(20):
        ModelSpec.model_validate(workload.model(i, URI)["spec"])
        spec = OnlineEndpointSpec.model_validate(workload.endpoint(i)["spec"])
        assert [d.model for d in spec.deployments] == [workload.model_name(i)] * 2
        assert (spec.auth.mode == "key") == (i % 10 == 0)
        assert bool(spec.mirror) == (i % 10 == 0)
        patched = {**workload.endpoint(i)["spec"], **workload.traffic_patch(i)["spec"]}
        changed = OnlineEndpointSpec.model_validate(patched)
        assert (changed.traffic, changed.mirror) != (spec.traffic, spec.mirror)
    assert workload.index_of(workload.endpoint_name(123)) == 123


def router_configmap(children: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        c for c in children if c["kind"] == "ConfigMap" and "router" in c["metadata"]["name"]
    )


def test_floor_applies_the_builders_children_and_the_watcher_reads_their_routing() -> None:
    config = parse_operator_config(os.environ)
    for i in (0, 1):  # with and without keys and mirror
        built = floor.children(created(workload.endpoint(i)), facts(i), config)
        kinds = [c["kind"] for c in built]
        assert kinds.count("Deployment") == 3  # blue, green, router
        assert any(c["kind"] == "Secret" and "keys" in c["metadata"]["name"] for c in built) == (
            i == 0
        )
        cm = router_configmap(built)
        assert watchers.configmap_routing(cm) == watchers.routing_key(workload.routing(i))
        patched = created(workload.endpoint(i))
        patched["spec"] = {**patched["spec"], **workload.traffic_patch(i)["spec"]}
        cm = router_configmap(floor.children(patched, facts(i), config))
        assert watchers.configmap_routing(cm) == watchers.routing_key(
            workload.routing(i, changed=True)
        )
        assert watchers.owner_endpoint(built[0]) == workload.endpoint_name(i)


def test_an_endpoint_is_ready_only_for_its_current_generation() -> None:
    ready = {"type": "Ready", "status": "True"}
    obj = {
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 1, "conditions": [ready]},
    }
    assert watchers.endpoint_state(obj) == "Created"
    obj["status"]["observedGeneration"] = 2
    assert watchers.model_state({"status": {"conditions": [ready]}}) == "Ready"
    assert watchers.endpoint_state(obj) == "Ready"
    obj["status"]["conditions"] = [{**ready, "status": "False"}]
    assert watchers.endpoint_state(obj) == "Created"
    assert watchers.model_state(obj) == "Created"


def test_proc_readings_parse_this_process() -> None:
    pid = os.getpid()
    assert procstat.rss_mib(pid) > 1
    assert procstat.cpu_seconds(pid) > 0
    # A command with spaces and parentheses does not shift the fields.
    stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 100 20 3 4 20 0"
    assert procstat.parse_cpu_ticks(stat) == 100 + 20 + 3 + 4
    assert procstat.parse_rss_kib("Name:\tx\nVmRSS:\t  2048 kB\n") == 2048


def request(verb: str, at: str, resource: str = "deployments") -> Request:
    return Request("op", verb, resource, "bench", "x", 200, at)


def test_settling_ignores_watches_and_writes_are_listed() -> None:
    seen = [request("get", "2026-11-30T10:00:01.5Z"), request("watch", "2026-11-30T10:00:09Z"),
            request("patch", "2026-11-30T10:00:02Z", "configmaps")]  # fmt: skip
    last = audit_counts.last_request_at(seen)
    assert last == audit_counts.epoch("2026-11-30T10:00:02Z")
    assert (
        audit_counts.epoch("2026-11-30T10:00:02Z") - audit_counts.epoch("2026-11-30T10:00:01.5Z")
        == 0.5
    )
    assert audit_counts.describe_writes(seen) == ["patch configmaps bench/x 200"]
    assert audit_counts.summary(seen) == {"get deployments": 1, "watch deployments": 1,
                                          "patch configmaps": 1}  # fmt: skip


def test_table_prints_the_ratio_and_growth_is_the_slope_between_the_two_largest_n() -> None:
    small = report.Result(100, ready_s=10.0, floor_s=5.0, peak_rss_mib=100.0)
    mid = report.Result(300, ready_s=30.0, floor_s=10.0, peak_rss_mib=120.0)
    big = report.Result(1000, ready_s=100.0, floor_s=40.0, peak_rss_mib=190.0)
    mid.converge_requests = {"get models": 600, "patch onlineendpoints/status": 300}
    text = report.table([small, mid, big])
    assert "| mlkube / floor | 2.00x | 3.00x | 2.50x |" in text
    assert "| operator requests to converge | 0 | 900 | 0 |" in text
    assert "|   writes per endpoint | 0.0 | 1.0 | 0.0 |" in text
    growth = report.growth([big, small, mid])
    assert "N=300 → N=1000" in growth
    assert "all Ready (ms per endpoint): 100.00" in growth  # (100 - 30) s / 700
    assert "peak RSS (KiB per endpoint): 102.40" in growth  # 70 MiB / 700
    assert report.percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert report.percentile([3.0, 1.0, 2.0, 4.0], 99) == 4.0
