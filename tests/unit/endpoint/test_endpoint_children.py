"""All children together: names, owner references, labels, security, and traffic isolation."""

from __future__ import annotations

from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children, child_key, endpoint_url
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import (
    EndpointRef,
    deployment_name,
    dns_name,
    keys_secret_name,
    label_value,
    owner_reference,
    router_name,
    service_name,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.apply_needed import MANIFEST_DIGEST


def _children(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> list[dict[str, Any]]:
    return build_endpoint_children(owner, spec, models, config, ["key-1"])


def test_names_and_kinds_of_the_sample(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    got = [child_key(c)[1:] for c in _children(owner, spec, models, config)]
    assert got == [
        ("ConfigMap", "credit-router-4f979dbf"),
        ("Deployment", "credit-blue-09bb84ab"),
        ("Deployment", "credit-green-2f01bca0"),
        ("Deployment", "credit-router-4f979dbf"),
        ("Service", "credit-blue-09bb84ab"),
        ("Service", "credit-green-2f01bca0"),
        ("Service", "credit"),
        ("HorizontalPodAutoscaler", "credit-green-2f01bca0"),
        ("PodDisruptionBudget", "credit-blue-09bb84ab"),
        ("PodDisruptionBudget", "credit-router-4f979dbf"),
    ]
    assert endpoint_url(owner, spec, config) == "http://credit.ml.svc.cluster.local"


def test_every_child_is_owned_labelled_and_namespaced(
    owner: EndpointRef,
    make_spec: Any,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    for spec in (
        make_spec(auth={"mode": "key"}),
        make_spec(trafficBackend="gateway-api", gateway={"parentRefs": [{"name": "gw"}]}),
    ):
        for child in _children(owner, spec, models, config):
            meta = child["metadata"]
            assert meta["namespace"] == "ml"
            assert meta["ownerReferences"] == [owner_reference(owner)]
            assert meta["ownerReferences"][0]["controller"] is True
            assert meta["ownerReferences"][0]["blockOwnerDeletion"] is True
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "mlkube"
            assert meta["labels"]["mlkube.dev/endpoint"] == "credit"


def test_every_pod_meets_the_restricted_profile(
    owner: EndpointRef,
    make_spec: Any,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    spec = make_spec(auth={"mode": "key"})
    pods = [
        c["spec"]["template"]["spec"]
        for c in _children(owner, spec, models, config)
        if c["kind"] == "Deployment"
    ]
    assert len(pods) == 3
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert isinstance(pod["securityContext"]["runAsUser"], int)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert all("hostPath" not in v for v in pod["volumes"])
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["runAsNonRoot"] is True
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_traffic_and_mirror_changes_touch_only_the_router_config(
    owner: EndpointRef,
    make_spec: Any,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    before = {child_key(c): c for c in _children(owner, make_spec(), models, config)}
    shifted = make_spec(traffic={"blue": 100, "green": 0}, mirror={"green": 50})
    after = {child_key(c): c for c in _children(owner, shifted, models, config)}
    assert before.keys() == after.keys()
    changed = [key for key in before if before[key] != after[key]]
    assert changed == [("v1", "ConfigMap", "credit-router-4f979dbf")]


def test_gateway_backend_replaces_the_router_with_an_httproute(
    owner: EndpointRef,
    make_spec: Any,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    spec = make_spec(
        trafficBackend="gateway-api",
        gateway={"parentRefs": [{"name": "gw"}], "hostnames": ["credit.example.com"]},
    )
    kinds = {child_key(c)[1:] for c in _children(owner, spec, models, config)}
    assert ("HTTPRoute", "credit") in kinds
    assert not any(name == "credit-router-4f979dbf" for _, name in kinds)
    assert endpoint_url(owner, spec, config) == "http://credit.example.com"


def test_a_grpcroute_joins_the_httproute_only_with_a_grpc_listener_and_the_api(
    owner: EndpointRef,
    make_spec: Any,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    def kinds(spec: OnlineEndpointSpec, grpc_route: bool) -> list[tuple[str, str]]:
        children = build_endpoint_children(owner, spec, models, config, [], grpc_route=grpc_route)
        return [child_key(c)[1:] for c in children if "Route" in c["kind"]]

    gateway = {"parentRefs": [{"name": "gw", "sectionName": "http"}]}
    grpc_gateway = {**gateway, "grpcSectionName": "grpc"}
    with_grpc = make_spec(trafficBackend="gateway-api", gateway=grpc_gateway)
    assert kinds(with_grpc, grpc_route=True) == [("HTTPRoute", "credit"), ("GRPCRoute", "credit")]
    # The cluster does not serve GRPCRoute: HTTP only.
    assert kinds(with_grpc, grpc_route=False) == [("HTTPRoute", "credit")]
    # No gRPC listener known: HTTP only.
    http_only = make_spec(trafficBackend="gateway-api", gateway=gateway)
    assert kinds(http_only, grpc_route=True) == [("HTTPRoute", "credit")]
    # The router backend proxies gRPC itself.
    assert kinds(make_spec(gateway=grpc_gateway), grpc_route=True) == []
    grpc = next(
        c
        for c in build_endpoint_children(owner, with_grpc, models, config, [], grpc_route=True)
        if c["kind"] == "GRPCRoute"
    )
    assert grpc["metadata"]["ownerReferences"] == [owner_reference(owner)]
    assert MANIFEST_DIGEST in grpc["metadata"]["annotations"]  # like every child


def test_derived_names_never_collide_across_endpoints() -> None:
    # endpoint `fraud` + deployment `v2` vs endpoint `fraud-v2`: once the same Service name.
    assert deployment_name("fraud", "v2") != service_name("fraud-v2")
    assert deployment_name("fraud", "v2") != deployment_name("fraud-v2", "x").rsplit("-", 1)[0]
    # a deployment called `router` or `keys` is not the router or the keys Secret
    assert deployment_name("fraud", "router") != router_name("fraud")
    assert deployment_name("fraud", "keys") != keys_secret_name("fraud")
    # `a` + `b-c` vs `a-b` + `c`: the same readable head, different names
    assert deployment_name("a", "b-c") != deployment_name("a-b", "c")
    names = [deployment_name("x" * 61, d) for d in ("blue", "green")]
    assert names[0] != names[1] and all(len(n) <= 63 for n in names)


def test_long_and_odd_names_stay_valid_and_stable() -> None:
    long_endpoint = "a" * 60
    name = deployment_name(long_endpoint, "green")
    assert len(name) <= 63
    assert name == deployment_name(long_endpoint, "green")
    assert name != deployment_name(long_endpoint, "blue")
    assert dns_name("credit", "blue") == "credit-blue"
    assert dns_name("7up.v2")[0].isalpha()
    assert len(dns_name("7up.v2")) <= 63
    assert label_value("credit") == "credit"
    long_label = label_value("x." * 80)
    assert len(long_label) <= 63
    assert long_label == label_value("x." * 80)
