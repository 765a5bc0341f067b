"""Payload logging of a deployment: the server's variables, and EventSinks resolved or refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlkube import contract as c
from mlkube.api.endpoint import MSG_LOGGER_DESTINATION, OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.endpoint_logger import LogDestination
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.endpoint_logger import logger_destinations
from support.fake_kube import FakeKube

SINK_KIND = (c.API_VERSION, c.KIND_EVENT_SINK)


def spec_with(logger: dict[str, Any] | None, env: list[dict[str, str]] | None = None) -> Any:
    blue: dict[str, Any] = {"name": "blue", "model": "credit-risk-v3", "env": env or []}
    if logger is not None:
        blue["logger"] = logger
    return OnlineEndpointSpec.model_validate({"deployments": [blue], "traffic": {"blue": 100}})


def server_env(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployment = next(
        x
        for x in children
        if x["kind"] == "Deployment"
        and x["metadata"]["labels"].get("mlkube.dev/component") == "model-server"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: list[dict[str, Any]] = container["env"]
    return env


def values(env: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def test_a_url_logger_configures_the_server(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    logger = {
        "url": "http://collector.obs.svc:8080/ev",
        "mode": "response",
        "sampleRate": 0.25,
        "redact": ["ssn", "income"],
    }
    user = [{"name": c.ENV_PAYLOAD_LOG_URL, "value": "http://elsewhere/"}]
    env = values(
        server_env(build_endpoint_children(owner, spec_with(logger, user), models, config, []))
    )
    assert env[c.ENV_PAYLOAD_LOG_URL] == "http://collector.obs.svc:8080/ev"  # not the user's
    assert env[c.ENV_PAYLOAD_LOG_MODE] == "response"
    assert env[c.ENV_PAYLOAD_LOG_RATE] == "0.25"
    assert env[c.ENV_PAYLOAD_LOG_REDACT] == "income,ssn"
    assert env[c.ENV_PAYLOAD_LOG_ENCODING] == "binary"
    assert (
        env[c.ENV_PAYLOAD_LOG_ENDPOINT],
        env[c.ENV_PAYLOAD_LOG_DEPLOYMENT],
        env[c.ENV_PAYLOAD_LOG_NAMESPACE],
    ) == ("credit", "blue", "ml")
    assert c.ENV_PAYLOAD_LOG_SIGNING_KEY not in env


def test_no_logger_no_variables_and_a_sink_logger_needs_its_resolution(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    plain = values(server_env(build_endpoint_children(owner, spec_with(None), models, config, [])))
    assert not any(k.startswith("MLKUBE_PAYLOAD_LOG") for k in plain)
    spec = spec_with({"sink": "audit"})
    unresolved = values(server_env(build_endpoint_children(owner, spec, models, config, [])))
    assert c.ENV_PAYLOAD_LOG_URL not in unresolved  # e.g. a local run: no EventSinks read
    dest = LogDestination("http://audit.ml.svc.cluster.local:80/", "structured", ("keys", "k"))
    env = values(
        server_env(build_endpoint_children(owner, spec, models, config, [], loggers={"blue": dest}))
    )
    assert env[c.ENV_PAYLOAD_LOG_URL] == "http://audit.ml.svc.cluster.local:80/"
    assert env[c.ENV_PAYLOAD_LOG_ENCODING] == "structured"
    assert env[c.ENV_PAYLOAD_LOG_SIGNING_KEY] == {"secretKeyRef": {"name": "keys", "key": "k"}}


def test_a_logger_names_exactly_one_destination() -> None:
    for logger in ({}, {"url": "http://a/", "sink": "s"}):
        with pytest.raises(ValidationError, match=MSG_LOGGER_DESTINATION):
            spec_with(logger)
    with pytest.raises(ValidationError, match="pattern"):
        spec_with({"url": "https://collector/"})  # the server posts plain HTTP
    with pytest.raises(ValidationError, match="pattern"):
        spec_with({"url": "http://a/", "redact": ["a,b"]})


def sink(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_EVENT_SINK,
        "metadata": {"name": name, "namespace": "ml"},
        "spec": spec,
    }


def fake() -> FakeKube:
    kube = FakeKube()
    kube.kinds.add(SINK_KIND)
    return kube


def test_an_event_sink_resolves_to_its_service_mode_and_signing_secret() -> None:
    kube = fake()
    kube.put(
        sink(
            "audit",
            ref={"name": "collector", "path": "/in"},
            mode="structured",
            signing={"secretRef": {"name": "audit-key", "key": "hmac"}},
        )
    )
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "collector", "namespace": "ml"},
            "spec": {"ports": [{"port": 8080}]},
        }
    )
    found, blockers = logger_destinations(
        kube, "ml", spec_with({"sink": "audit"}), OperatorConfig()
    )
    assert blockers == []
    assert found == {
        "blue": LogDestination(
            "http://collector.ml.svc.cluster.local:8080/in", "structured", ("audit-key", "hmac")
        )
    }


@pytest.mark.parametrize(
    ("stored", "reason", "words"),
    [
        (None, "LoggerSinkNotFound", "does not exist"),
        (sink("audit", uri="https://hooks.example/x"), "LoggerSinkUnusable", "plain HTTP"),
        (sink("audit", uri="http://x/", format="azureml"), "LoggerSinkUnusable", "azureml"),
        (sink("audit", ref={"name": "gone"}), "LoggerSinkUnusable", "does not exist"),
    ],
)
def test_an_unusable_event_sink_blocks_with_what_to_fix(
    stored: dict[str, Any] | None, reason: str, words: str
) -> None:
    kube = fake()
    if stored is not None:
        kube.put(stored)
    found, blockers = logger_destinations(
        kube, "ml", spec_with({"sink": "audit"}), OperatorConfig()
    )
    assert found == {}
    assert [b.reason for b in blockers] == [reason]
    assert words in blockers[0].message and "EventSink ml/audit" in blockers[0].message
    assert blockers[0].degraded == (reason != "LoggerSinkNotFound")  # a missing one is waited for
