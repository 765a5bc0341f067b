"""The endpoint controller and the GRPCRoute of a gateway-api endpoint: applied with a gRPC
listener where the cluster serves the kind, pruned when the listener goes or the endpoint
leaves gateway-api, and never a failure where the cluster serves only HTTPRoute."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlkube.builders.endpoint_route import GRPCROUTE_API_VERSION, HTTPROUTE_API_VERSION
from mlkube.builders.names import deployment_name
from mlkube.builders.operator_config import GatewayParent, OperatorConfig
from mlkube.contract import API_VERSION, SERVER_GRPC_PORT
from mlkube.controllers import endpoint as controller
from mlkube.controllers import endpoint_children
from mlkube.k8s.errors import ApiError
from support.cluster_objects import NOW, NS, endpoint_obj, model_obj
from support.fake_kube import FakeKube, Key

EP: Key = (API_VERSION, "OnlineEndpoint", NS, "credit")
GRPC: Key = (GRPCROUTE_API_VERSION, "GRPCRoute", NS, "credit")
HTTP: Key = (HTTPROUTE_API_VERSION, "HTTPRoute", NS, "credit")
GATEWAY = {"parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "http"}]}


def serve_gateway_api(fake: FakeKube, grpc: bool = True) -> None:
    fake.kinds.add((HTTPROUTE_API_VERSION, "HTTPRoute"))
    if grpc:
        fake.kinds.add((GRPCROUTE_API_VERSION, "GRPCRoute"))


def degraded(fake: FakeKube) -> dict[str, Any]:
    status = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)["status"]
    return next(c for c in status["conditions"] if c["type"] == "Degraded")


def test_a_grpc_listener_gets_a_grpcroute_and_losing_it_prunes_the_route(
    fake: FakeKube, config: OperatorConfig
) -> None:
    serve_gateway_api(fake)
    gateway = {**GATEWAY, "grpcSectionName": "grpc"}
    fake.put(endpoint_obj(trafficBackend="gateway-api", gateway=gateway, mirror={}))
    controller.reconcile(fake, config, NS, "credit", NOW)
    route = fake.objects[GRPC]
    uid = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)["metadata"]["uid"]
    assert route["metadata"]["ownerReferences"][0]["uid"] == uid
    assert [p["sectionName"] for p in route["spec"]["parentRefs"]] == ["grpc"]
    split = route["spec"]["rules"][-1]
    assert [(b["name"], b["port"], b["weight"]) for b in split["backendRefs"]] == [
        (deployment_name("credit", "blue"), SERVER_GRPC_PORT, 70),
        (deployment_name("credit", "green"), SERVER_GRPC_PORT, 30),
    ]
    assert HTTP in fake.objects
    assert degraded(fake)["status"] == "False"

    # A traffic change reaches the GRPCRoute as it reaches the HTTPRoute.
    fake.mutate(EP, lambda o: o["spec"].update(traffic={"blue": 0, "green": 100}))
    controller.reconcile(fake, config, NS, "credit", NOW)
    split = fake.objects[GRPC]["spec"]["rules"][-1]
    assert [b["weight"] for b in split["backendRefs"]] == [0, 100]

    # The listener removed: the GRPCRoute goes, the HTTPRoute stays.
    fake.mutate(EP, lambda o: o["spec"]["gateway"].pop("grpcSectionName"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert GRPC not in fake.objects
    assert ("delete", GRPC) in fake.writes
    assert HTTP in fake.objects
    assert degraded(fake)["status"] == "False"


def test_leaving_gateway_api_prunes_both_routes(fake: FakeKube, config: OperatorConfig) -> None:
    serve_gateway_api(fake)
    gateway = {**GATEWAY, "grpcSectionName": "grpc"}
    fake.put(endpoint_obj(trafficBackend="gateway-api", gateway=gateway))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert GRPC in fake.objects
    fake.mutate(EP, lambda o: o["spec"].update(trafficBackend="router"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert GRPC not in fake.objects
    assert HTTP not in fake.objects


def test_a_cluster_without_grpcroute_serves_http_and_is_not_degraded(
    fake: FakeKube, config: OperatorConfig
) -> None:
    serve_gateway_api(fake, grpc=False)
    gateway = {**GATEWAY, "grpcSectionName": "grpc"}
    fake.put(endpoint_obj(trafficBackend="gateway-api", gateway=gateway))
    outcome = controller.reconcile(fake, config, NS, "credit", NOW)
    assert outcome.retry_message is None
    assert HTTP in fake.objects
    assert not any(key[1] == "GRPCRoute" for key in fake.objects)
    assert (degraded(fake)["status"], degraded(fake)["reason"]) == ("False", "AsExpected")
    # GRPCRoute CRD installed later: the next pass adds the route.
    fake.kinds.add((GRPCROUTE_API_VERSION, "GRPCRoute"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert GRPC in fake.objects


def test_the_operator_default_grpc_listener_serves_endpoints_on_the_default_gateway(
    fake: FakeKube, config: OperatorConfig
) -> None:
    serve_gateway_api(fake)
    config = dataclasses.replace(
        config,
        default_gateway=GatewayParent("shared", "gw", "https"),
        default_grpc_section="grpcs",
    )
    fake.put(endpoint_obj(trafficBackend="gateway-api"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert fake.objects[GRPC]["spec"]["parentRefs"][0]["sectionName"] == "grpcs"
    assert fake.objects[HTTP]["spec"]["parentRefs"][0]["sectionName"] == "https"
    # Its own Gateway: the operator's listener name means nothing there, no GRPCRoute.
    fake.mutate(EP, lambda o: o["spec"].update(gateway=GATEWAY))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert GRPC not in fake.objects
    assert fake.objects[HTTP]["spec"]["parentRefs"][0]["name"] == "public"


def test_grpc_section_naming_the_default_gateways_http_listener_is_degraded_with_the_fix(
    fake: FakeKube, config: OperatorConfig
) -> None:
    # The API cannot refuse it (it does not know MLKUBE_GATEWAY): the pass says what to change.
    serve_gateway_api(fake)
    config = dataclasses.replace(config, default_gateway=GatewayParent("shared", "gw", "https"))
    gateway = {"grpcSectionName": "https"}
    fake.put(endpoint_obj(trafficBackend="gateway-api", gateway=gateway))
    controller.reconcile(fake, config, NS, "credit", NOW)
    condition = degraded(fake)
    assert (condition["status"], condition["reason"]) == ("True", "GRPCListenerConflict")
    assert "MLKUBE_GATEWAY_GRPC_SECTION" in condition["message"]
    assert GRPC not in fake.objects
    # HTTP is served as before: the HTTPRoute is there, and a refresh keeps the condition.
    assert fake.objects[HTTP]["spec"]["parentRefs"][0]["sectionName"] == "https"
    controller.refresh_status(fake, config, NS, "credit", NOW)
    assert degraded(fake)["reason"] == "GRPCListenerConflict"
    # Fixed by naming the Gateway's gRPC listener: the routes are made.
    fake.mutate(EP, lambda o: o["spec"].update(gateway={"grpcSectionName": "grpcs"}))
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert degraded(fake)["status"] == "False"
    assert fake.objects[GRPC]["spec"]["parentRefs"][0]["sectionName"] == "grpcs"


@dataclasses.dataclass
class NoGrpcRouteRbac(FakeKube):
    """An operator upgraded before its ClusterRole: every GRPCRoute request is forbidden."""

    forbidden: bool = True
    grpc_lists: int = 0

    def list(self, api_version: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "GRPCRoute":
            self.grpc_lists += 1
            if self.forbidden:
                raise ApiError(403, "Forbidden", 'cannot list resource "grpcroutes"')
        return super().list(api_version, kind, *args, **kwargs)


def test_a_403_on_grpcroutes_fails_no_pass_and_is_asked_again_later(
    config: OperatorConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_children, "_grpcroute_forbidden_until", 0.0)
    fake = NoGrpcRouteRbac()
    for model in ("credit-risk-v3", "credit-risk-v4"):
        fake.put(model_obj(model))
    serve_gateway_api(fake)
    gateway = {**GATEWAY, "grpcSectionName": "grpc"}
    fake.put(endpoint_obj(trafficBackend="gateway-api", gateway=gateway))
    outcome = controller.reconcile(fake, config, NS, "credit", NOW)
    assert outcome.retry_message is None
    assert HTTP in fake.objects and GRPC not in fake.objects
    assert degraded(fake)["status"] == "False"
    assert endpoint_children.grpcroutes_forbidden()
    assert ("apply", GRPC) not in fake.writes and ("create", GRPC) not in fake.writes
    # Within the minute: not asked again (one 403 per minute, not one per pass).
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert fake.grpc_lists == 1
    # The ClusterRole upgraded and the minute gone: the route is made.
    fake.forbidden = False
    monkeypatch.setattr(endpoint_children, "_grpcroute_forbidden_until", 0.0)
    controller.reconcile(fake, config, NS, "credit", NOW)
    assert GRPC in fake.objects
    assert not endpoint_children.grpcroutes_forbidden()


def test_other_forbidden_children_still_fail_the_pass(
    fake: FakeKube, config: OperatorConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only GRPCRoute, the kind an upgrade added, is optional: a 403 elsewhere is a real error.
    monkeypatch.setattr(endpoint_children, "_grpcroute_forbidden_until", 0.0)

    def forbid_services(api_version: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        raise ApiError(403, "Forbidden", "cannot list services")

    fake.put(endpoint_obj())
    monkeypatch.setattr(fake, "list", forbid_services)
    with pytest.raises(ApiError, match="403"):
        controller.reconcile(fake, config, NS, "credit", NOW)


def test_a_pass_that_could_not_list_grpcroutes_writes_none_even_if_the_minute_ends_meanwhile(
    config: OperatorConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decided once per pass from what read_children listed: the window closing between the
    # LIST and the writes must not send the pass a GRPCRoute request the role refuses.
    monkeypatch.setattr(endpoint_children, "_grpcroute_forbidden_until", 0.0)
    forbid = endpoint_children._forbid_grpcroutes

    def forbid_for_no_time(err: ApiError) -> None:
        forbid(err)
        endpoint_children._grpcroute_forbidden_until = 0.0  # the minute is over at once

    monkeypatch.setattr(endpoint_children, "_forbid_grpcroutes", forbid_for_no_time)
    fake = NoGrpcRouteRbac()
    for model in ("credit-risk-v3", "credit-risk-v4"):
        fake.put(model_obj(model))
    serve_gateway_api(fake)
    fake.put(
        endpoint_obj(trafficBackend="gateway-api", gateway={**GATEWAY, "grpcSectionName": "g"})
    )
    outcome = controller.reconcile(fake, config, NS, "credit", NOW)
    assert outcome.retry_message is None
    assert HTTP in fake.objects
    assert not any(key[1] == "GRPCRoute" for _, key in fake.writes)
