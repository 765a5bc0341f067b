"""The router's configuration file: a versioned JSON document the operator renders into a ConfigMap.

The operator's builder produces exactly this shape (documented in docs/router.md) and the router
parses it here into frozen dataclasses. Parsing collects every problem and raises one
`ConfigError` listing them, so a bad ConfigMap is diagnosed in one look at the log. Unknown keys
are errors: a typo such as `"trafic"` must not silently mean "no traffic".
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from mlkube_serving._http.budget import MiB, derived_budget
from mlkube_serving._http.client import DEFAULT_MAX_RESPONSE_BYTES
from mlkube_serving.router.errors import ConfigError

CONFIG_VERSION = 1
# Byte budgets when the config sets none: a share of the container memory limit if the pod
# publishes it, else these (sized for the builders' 512 MiB router limit).
DEFAULT_MIRROR_MAX_BYTES = 64 * MiB
DEFAULT_MAX_INFLIGHT_BYTES = 128 * MiB
DEFAULT_HEALTH_PATH = "/v2/health/ready"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TOP_KEYS = frozenset(
    {
        "version",
        "revision",
        "endpoint",
        "deployments",
        "traffic",
        "mirror",
        "auth",
        "timeoutSeconds",
        "maxConnectionsPerUpstream",
        "mirrorQueueSize",
        "mirrorConcurrency",
        "agreementTolerance",
        "healthIntervalSeconds",
        "maxResponseBytes",
        "mirrorMaxBytes",
        "maxInflightBytes",
    }
)
_DEPLOYMENT_KEYS = frozenset({"url", "healthPath", "grpcPort"})
_AUTH_KEYS = frozenset({"mode", "keysFile"})

AuthMode = Literal["none", "key"]


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """One upstream: the Kubernetes Service of a deployment's model-server pods."""

    name: str
    url: str
    host: str
    port: int
    health_path: str = DEFAULT_HEALTH_PATH
    grpc_port: int | None = None  # the deployment's Open Inference Protocol gRPC port


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """`mode="key"` checks `Authorization: Bearer <key>` or `api-key` against `keys_file`."""

    mode: AuthMode = "none"
    keys_file: str | None = None


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The whole routing configuration of one endpoint (schema version 1)."""

    endpoint: str
    deployments: Mapping[str, DeploymentConfig]
    traffic: Mapping[str, int]
    mirror: Mapping[str, int] = field(default_factory=dict)
    auth: AuthConfig = field(default_factory=AuthConfig)
    timeout_seconds: float = 30.0
    max_connections_per_upstream: int = 100
    mirror_queue_size: int = 1000
    mirror_concurrency: int = 32
    agreement_tolerance: float = 1e-6
    health_interval_seconds: float = 5.0
    # Byte budgets (B9): one upstream answer; mirror copies held (bodies + answers); request
    # bodies of live requests held at once. Past them: 502, shed copy, 503.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    mirror_max_bytes: int = DEFAULT_MIRROR_MAX_BYTES
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    version: int = CONFIG_VERSION
    # Monotonic per endpoint (the operator bumps it on every change, docs/rollouts.md §6): a
    # pushed config must be newer than the served one, a late file swap older than it is
    # ignored. 0 when the document has none (written by hand or by an older operator).
    revision: int = 0
    # sha256 of the file bytes this config was parsed from ("" when built in memory).
    source_hash: str = ""


class _Problems:
    """Collects validation problems so one error can report all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(float(value))  # type: ignore[arg-type]


def _check_unknown(where: str, doc: Mapping[str, Any], known: frozenset[str], p: _Problems) -> None:
    for key in sorted(set(doc) - known):
        p.add(where, f"unknown key {key!r} (known: {', '.join(sorted(known))})")


def _parse_deployment(name: str, doc: object, p: _Problems) -> DeploymentConfig | None:
    where = f"deployments.{name}"
    if not _NAME_RE.match(name):
        p.add(where, "name must be a DNS label (lowercase letters, digits, '-', max 63)")
    if not isinstance(doc, dict):
        p.add(where, "must be an object with a 'url'")
        return None
    _check_unknown(where, doc, _DEPLOYMENT_KEYS, p)
    url = doc.get("url")
    if not isinstance(url, str):
        p.add(f"{where}.url", "is required and must be a string like 'http://svc.ns.svc:8080'")
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError as exc:
        p.add(f"{where}.url", f"is not a valid URL: {exc}")
        return None
    if parts.scheme != "http" or not parts.hostname:
        p.add(f"{where}.url", f"must be 'http://host[:port]', got {url!r}")
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        p.add(f"{where}.url", f"must not carry a path, query or fragment, got {url!r}")
    health = doc.get("healthPath", DEFAULT_HEALTH_PATH)
    if not isinstance(health, str) or not health.startswith("/"):
        p.add(f"{where}.healthPath", f"must be an absolute path, got {health!r}")
        health = DEFAULT_HEALTH_PATH
    grpc_port = doc.get("grpcPort")
    if grpc_port is not None and (not _is_int(grpc_port) or not 0 < grpc_port < 65536):
        p.add(f"{where}.grpcPort", f"must be a port number, got {grpc_port!r}")
        grpc_port = None
    return DeploymentConfig(name=name, url=url, host=parts.hostname, port=port, health_path=health,
                            grpc_port=grpc_port)  # fmt: skip


def _parse_percents(
    where: str, doc: object, names: Mapping[str, object], p: _Problems
) -> dict[str, int]:
    if not isinstance(doc, dict):
        p.add(where, "must be an object mapping deployment name to an integer percent")
        return {}
    out: dict[str, int] = {}
    for name, value in doc.items():
        if name not in names:
            p.add(f"{where}.{name}", f"unknown deployment (valid: {', '.join(sorted(names))})")
        elif not _is_int(value) or not 0 <= value <= 100:
            p.add(f"{where}.{name}", f"must be an integer 0..100, got {value!r}")
        else:
            out[name] = value
    return out


def _parse_auth(doc: object, p: _Problems) -> AuthConfig:
    if not isinstance(doc, dict):
        p.add("auth", "must be an object like {'mode': 'none'}")
        return AuthConfig()
    _check_unknown("auth", doc, _AUTH_KEYS, p)
    mode = doc.get("mode", "none")
    keys_file = doc.get("keysFile")
    if mode == "none":
        return AuthConfig()
    if mode != "key":
        p.add("auth.mode", f"must be 'none' or 'key', got {mode!r}")
        return AuthConfig()
    if not isinstance(keys_file, str) or not keys_file:
        p.add("auth.keysFile", "is required when auth.mode is 'key'")
        return AuthConfig()
    return AuthConfig(mode="key", keys_file=keys_file)


def _number(doc: Mapping[str, Any], key: str, default: float, low: float, p: _Problems) -> float:
    value = doc.get(key, default)
    if not _is_number(value) or value < low:
        p.add(key, f"must be a number >= {low}, got {value!r}")
        return default
    return float(value)


def _integer(doc: Mapping[str, Any], key: str, default: int, low: int, p: _Problems) -> int:
    value = doc.get(key, default)
    if not _is_int(value) or value < low:
        p.add(key, f"must be an integer >= {low}, got {value!r}")
        return default
    return int(value)


def parse_config(doc: object) -> RouterConfig:
    """Validate a decoded config document and return it typed; raise `ConfigError` otherwise."""
    if not isinstance(doc, dict):
        raise ConfigError(f"router config must be a JSON object, got {type(doc).__name__}")
    p = _Problems()
    _check_unknown("config", doc, _TOP_KEYS, p)
    if doc.get("version") != CONFIG_VERSION:
        p.add("version", f"must be {CONFIG_VERSION}, got {doc.get('version')!r}")
    endpoint = doc.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        p.add("endpoint", "is required and must be a non-empty string")
    raw_deps = doc.get("deployments")
    deployments: dict[str, DeploymentConfig] = {}
    if not isinstance(raw_deps, dict) or not raw_deps:
        p.add("deployments", "is required and must map at least one name to {'url': ...}")
    else:
        for name, sub in raw_deps.items():
            dep = _parse_deployment(name, sub, p)
            if dep is not None:
                deployments[name] = dep
    names = raw_deps if isinstance(raw_deps, dict) else {}
    traffic: dict[str, int] = {}
    if "traffic" not in doc:
        p.add("traffic", "is required ({} sends live traffic nowhere: header targeting only)")
    else:
        traffic = _parse_percents("traffic", doc["traffic"], names, p)
        total = sum(traffic.values())
        if total not in (0, 100):
            p.add("traffic", f"percents must sum to 100 (or all be 0), got {total}")
    mirror = _parse_percents("mirror", doc.get("mirror", {}), names, p)
    auth = _parse_auth(doc.get("auth", {}), p)
    config = RouterConfig(
        endpoint=endpoint if isinstance(endpoint, str) else "",
        deployments=deployments,
        traffic=traffic,
        mirror={name: pct for name, pct in mirror.items() if pct > 0},
        auth=auth,
        timeout_seconds=_number(doc, "timeoutSeconds", 30.0, 0.001, p),
        max_connections_per_upstream=_integer(doc, "maxConnectionsPerUpstream", 100, 1, p),
        mirror_queue_size=_integer(doc, "mirrorQueueSize", 1000, 0, p),
        mirror_concurrency=_integer(doc, "mirrorConcurrency", 32, 1, p),
        agreement_tolerance=_number(doc, "agreementTolerance", 1e-6, 0.0, p),
        health_interval_seconds=_number(doc, "healthIntervalSeconds", 5.0, 0.1, p),
        max_response_bytes=_integer(doc, "maxResponseBytes", DEFAULT_MAX_RESPONSE_BYTES, 1024, p),
        mirror_max_bytes=_integer(
            doc, "mirrorMaxBytes", derived_budget(1 / 8, DEFAULT_MIRROR_MAX_BYTES), 0, p
        ),
        max_inflight_bytes=_integer(
            doc, "maxInflightBytes", derived_budget(1 / 4, DEFAULT_MAX_INFLIGHT_BYTES), 1024, p
        ),
        revision=_integer(doc, "revision", 0, 0, p),
    )
    if p.items:
        raise ConfigError("invalid router config: " + "; ".join(p.items))
    return config


def load_config(path: str | Path) -> RouterConfig:
    """Read and parse the config file at `path`; every failure is a `ConfigError`."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read router config {str(path)!r}: {exc.strerror}") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"router config {str(path)!r} is not valid JSON: {exc}") from exc
    return dataclasses.replace(parse_config(doc), source_hash=config_hash(raw))


def parse_config_bytes(raw: bytes, where: str = "pushed router config") -> RouterConfig:
    """Parse a config document received as bytes (a push); every failure is a `ConfigError`."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc
    return dataclasses.replace(parse_config(doc), source_hash=config_hash(raw))


def config_hash(raw: bytes) -> str:
    """`sha256:<hex>` of the config file's bytes: what the operator compares with the
    ConfigMap it wrote to know the router loaded it (the builders hash the same bytes)."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def dump_config(config: RouterConfig) -> dict[str, Any]:
    """Render a config back to the documented JSON shape (the inverse of `parse_config`)."""
    return {
        "version": config.version,
        "revision": config.revision,
        "endpoint": config.endpoint,
        "deployments": {
            name: {"url": dep.url, "healthPath": dep.health_path}
            | ({"grpcPort": dep.grpc_port} if dep.grpc_port is not None else {})
            for name, dep in config.deployments.items()
        },
        "traffic": dict(config.traffic),
        "mirror": dict(config.mirror),
        "auth": (
            {"mode": "key", "keysFile": config.auth.keys_file}
            if config.auth.mode == "key"
            else {"mode": "none"}
        ),
        "timeoutSeconds": config.timeout_seconds,
        "maxConnectionsPerUpstream": config.max_connections_per_upstream,
        "mirrorQueueSize": config.mirror_queue_size,
        "mirrorConcurrency": config.mirror_concurrency,
        "agreementTolerance": config.agreement_tolerance,
        "healthIntervalSeconds": config.health_interval_seconds,
        "maxResponseBytes": config.max_response_bytes,
        "mirrorMaxBytes": config.mirror_max_bytes,
        "maxInflightBytes": config.max_inflight_bytes,
    }
