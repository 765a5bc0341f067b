"""Router config schema: the shape the operator renders, defaults, and every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from mlkube_serving.router.config import (
    DEFAULT_HEALTH_PATH,
    AuthConfig,
    dump_config,
    load_config,
    parse_config,
)
from mlkube_serving.router.errors import ConfigError


def valid(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {
            "blue": {"url": "http://credit-blue.ml.svc:8080"},
            "green": {"url": "http://credit-green.ml.svc", "healthPath": "/ready"},
        },
        "traffic": {"blue": 70, "green": 30},
    }
    doc.update(overrides)
    return doc


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(valid())
    assert config.endpoint == "credit"
    blue, green = config.deployments["blue"], config.deployments["green"]
    assert (blue.host, blue.port) == ("credit-blue.ml.svc", 8080)
    assert blue.health_path == DEFAULT_HEALTH_PATH
    assert (green.host, green.port, green.health_path) == ("credit-green.ml.svc", 80, "/ready")
    assert dict(config.traffic) == {"blue": 70, "green": 30}
    assert dict(config.mirror) == {}
    assert config.auth == AuthConfig(mode="none", keys_file=None)
    assert (config.timeout_seconds, config.max_connections_per_upstream) == (30.0, 100)
    assert (config.mirror_queue_size, config.mirror_concurrency) == (1000, 32)


def test_full_config_round_trips_through_dump() -> None:
    doc = valid(
        mirror={"green": 10},
        auth={"mode": "key", "keysFile": "/etc/mlkube/keys/keys"},
        timeoutSeconds=2.5,
        maxConnectionsPerUpstream=8,
        mirrorQueueSize=10,
        mirrorConcurrency=4,
        agreementTolerance=0.01,
        healthIntervalSeconds=3,
    )
    config = parse_config(doc)
    assert config.auth == AuthConfig(mode="key", keys_file="/etc/mlkube/keys/keys")
    assert parse_config(dump_config(config)) == config


def test_zero_percent_mirrors_are_dropped_and_all_zero_traffic_is_allowed() -> None:
    config = parse_config(valid(traffic={"blue": 0, "green": 0}, mirror={"green": 0}))
    assert dict(config.mirror) == {}
    assert sum(config.traffic.values()) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 2}, "version: must be 1, got 2"),
        ({"endpoint": ""}, "endpoint: is required"),
        ({"trafic": {}}, "config: unknown key 'trafic'"),
        ({"traffic": {"blue": 70, "green": 20}}, "traffic: percents must sum to 100"),
        ({"traffic": {"blue": 100, "red": 0}}, "traffic.red: unknown deployment (valid: blue,"),
        ({"traffic": {"blue": 70.5, "green": 29.5}}, "traffic.blue: must be an integer 0..100"),
        ({"traffic": {"blue": True, "green": 99}}, "traffic.blue: must be an integer 0..100"),
        ({"mirror": {"green": 101}}, "mirror.green: must be an integer 0..100"),
        ({"mirror": ["green"]}, "mirror: must be an object"),
        ({"deployments": {}}, "deployments: is required"),
        ({"deployments": {"Blue": {"url": "http://x"}}}, "deployments.Blue: name must be a DNS"),
        ({"deployments": {"blue": {"url": "https://x"}}}, "must be 'http://host[:port]'"),
        ({"deployments": {"blue": {"url": "http://x/v2"}}}, "must not carry a path"),
        ({"deployments": {"blue": {"url": "http://x:99999"}}}, "is not a valid URL"),
        ({"deployments": {"blue": {}}}, "deployments.blue.url: is required"),
        ({"deployments": {"blue": {"url": "http://x", "port": 1}}}, "unknown key 'port'"),
        ({"deployments": {"blue": {"url": "http://x", "healthPath": "ready"}}}, "absolute path"),
        ({"auth": {"mode": "key"}}, "auth.keysFile: is required when auth.mode is 'key'"),
        ({"auth": {"mode": "aad"}}, "auth.mode: must be 'none' or 'key'"),
        ({"timeoutSeconds": 0}, "timeoutSeconds: must be a number >= 0.001"),
        ({"timeoutSeconds": "30"}, "timeoutSeconds: must be a number"),
        ({"maxConnectionsPerUpstream": 0}, "maxConnectionsPerUpstream: must be an integer >= 1"),
        ({"mirrorQueueSize": -1}, "mirrorQueueSize: must be an integer >= 0"),
    ],
)
def test_invalid_configs_are_refused_with_the_field_named(
    overrides: dict[str, Any], message: str
) -> None:
    doc = valid(**overrides)
    if "deployments" in overrides:
        doc["traffic"] = {}
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in info.value.message
    assert info.value.status == 503


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"version": 0, "deployments": {"blue": {"url": "ftp://x"}}, "extra": 1})
    message = info.value.message
    parts = ("unknown key 'extra'", "version:", "endpoint:", "deployments.blue.url", "traffic:")
    for part in parts:
        assert part in message


def test_not_an_object_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        parse_config([])


def test_load_config_reports_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read router config"):
        load_config(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON") as info:
        load_config(bad)
    assert info.value.__cause__ is not None


def test_documented_example_parses() -> None:
    """docs/router.md shows the operator's target shape: it must stay valid."""
    doc_path = Path(__file__).resolve().parents[3] / "docs" / "router.md"
    text = doc_path.read_text()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    config = parse_config(orjson.loads(example))
    assert dict(config.traffic) == {"blue": 70, "green": 30}
    assert dict(config.mirror) == {"green": 10}
    assert config.auth.mode == "key"


def test_a_grpc_port_per_deployment_round_trips_and_is_checked() -> None:
    doc = valid()
    doc["deployments"]["blue"]["grpcPort"] = 8081
    config = parse_config(doc)
    assert config.deployments["blue"].grpc_port == 8081
    assert config.deployments["green"].grpc_port is None  # gRPC calls to it: UNAVAILABLE
    assert parse_config(dump_config(config)) == config
    for bad in (0, 70000, "8081", True):
        doc["deployments"]["blue"]["grpcPort"] = bad
        with pytest.raises(ConfigError) as info:
            parse_config(doc)
        assert "deployments.blue.grpcPort: must be a port number" in info.value.message
