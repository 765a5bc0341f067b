"""Pure: endpoint children (Deployments, router ConfigMap, keys Secret) -> local process specs.

The children are the builders' output for the endpoint's spec (`source`), never objects read
back from the cluster. Two rules keep a laptop safe from what someone wrote into a spec:
only artifacts with a verified digest are planned (the storage initializer re-checks the bytes
before any server loads them), and only allow-listed env vars reach local processes (no
`LD_PRELOAD` or `PYTHONPATH` into a process that unpickles a model).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube import contract as c
from mlkube.builders.endpoint_drift import BASELINE_INITIALIZER, DRIFT_CONTAINER
from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.names import COMPONENT_KEYS, COMPONENT_ROUTER, COMPONENT_SERVER

# mlkube's own settings, plus thread counts numerical libraries read: nothing that changes
# which code a process loads (LD_PRELOAD, PYTHONPATH, PYTHONSTARTUP ...).
ENV_PREFIX: Final = "MLKUBE_"
ENV_ALLOWED: Final = frozenset({"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"})


def env_allowed(name: str) -> bool:
    return name.startswith(ENV_PREFIX) or name in ENV_ALLOWED


class PlanError(ValueError):
    """The children do not describe a runnable router-backed endpoint."""


@dataclass(frozen=True)
class LocalDrift:
    """The pod's drift sidecar: its baseline init step and its env."""

    baseline_uri: str
    baseline_digest: str | None
    env: dict[str, str]


@dataclass(frozen=True)
class LocalServer:
    deployment: str
    env: dict[str, str]
    artifact_uri: str
    digest: str
    drift: LocalDrift | None = None
    dropped_env: tuple[str, ...] = ()  # spec env vars left out by the allow-list


@dataclass(frozen=True)
class LocalPlan:
    servers: list[LocalServer]
    router_config: dict[str, Any]
    keys: list[str] = field(default_factory=list)


def _find(obj: Mapping[str, Any], name: str, init: bool = False) -> dict[str, Any] | None:
    spec = obj["spec"]["template"]["spec"]
    for container in spec.get("initContainers" if init else "containers") or []:
        if container["name"] == name:
            return dict(container)
    return None


def _container(obj: Mapping[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    found = _find(obj, name, init)
    if found is None:
        raise PlanError(f"{obj['metadata']['name']}: no container {name!r}")
    return found


def _drift(obj: Mapping[str, Any]) -> LocalDrift | None:
    sidecar, baseline = _find(obj, DRIFT_CONTAINER), _find(obj, BASELINE_INITIALIZER, init=True)
    if sidecar is None or baseline is None:
        return None
    args = [str(a) for a in baseline.get("args") or []]
    uri = _flag(args, "--uri")
    if uri is None:
        raise PlanError(f"{obj['metadata']['name']}: baseline initializer has no --uri")
    return LocalDrift(baseline_uri=uri, baseline_digest=_flag(args, "--digest"),
                      env=_env(sidecar)[0])  # fmt: skip


def _env(container: Mapping[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
    """(allowed env, names dropped by the allow-list)."""
    # valueFrom entries (secrets, field refs) have no meaning outside a pod: left out.
    values = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    dropped = tuple(sorted(n for n in values if not env_allowed(n)))
    return {n: v for n, v in values.items() if env_allowed(n)}, dropped


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def plan_local(children: Iterable[Mapping[str, Any]]) -> LocalPlan:
    servers: list[LocalServer] = []
    config: dict[str, Any] | None = None
    keys: list[str] = []
    for obj in children:
        labels = obj.get("metadata", {}).get("labels") or {}
        component = labels.get(c.LABEL_COMPONENT)
        if obj["kind"] == "Deployment" and component == COMPONENT_SERVER:
            init = _container(obj, "storage-initializer", init=True)
            args = [str(a) for a in init.get("args") or []]
            uri, digest = _flag(args, "--uri"), _flag(args, "--digest")
            if uri is None:
                raise PlanError(f"{obj['metadata']['name']}: storage initializer has no --uri")
            if not digest:
                raise PlanError(
                    f"{obj['metadata']['name']}: no verified digest for {uri}; run-local loads "
                    "only artifacts whose digest the operator verified (Model status)"
                )
            env, dropped = _env(_container(obj, "server"))
            servers.append(LocalServer(
                deployment=labels[c.LABEL_DEPLOYMENT],
                env=env,
                artifact_uri=uri,
                digest=digest,
                drift=_drift(obj),
                dropped_env=dropped,
            ))  # fmt: skip
        elif obj["kind"] == "ConfigMap" and component == COMPONENT_ROUTER:
            config = json.loads(obj["data"][c.ROUTER_CONFIG_FILE])
        elif obj["kind"] == "Secret" and component == COMPONENT_KEYS:
            keys = read_keys(dict(obj))
    if config is None:
        raise PlanError("no router config: only router-backed endpoints run locally")
    if not servers:
        raise PlanError("no model-server Deployments among the children")
    return LocalPlan(servers=sorted(servers, key=lambda s: s.deployment), router_config=config,
                     keys=keys)  # fmt: skip


def local_server_env(
    server: LocalServer,
    *,
    model_dir: str,
    http_port: int,
    metrics_port: int,
    drift_port: int | None = None,
) -> dict[str, str]:
    """The pod's env with the cluster-only parts (paths, ports, bind address) made local."""
    env = {
        **server.env,
        c.ENV_MODEL_DIR: model_dir,
        c.ENV_HTTP_PORT: str(http_port),
        c.ENV_METRICS_PORT: str(metrics_port),
        c.ENV_HTTP_HOST: "127.0.0.1",
    }
    # Request samples go to the local sidecar or nowhere: never to a URL the spec names.
    env.pop(c.ENV_DRIFT_URL, None)
    # Nor do payload logs go to the spec's collector; gRPC stays off (one port per pod).
    env.pop(c.ENV_PAYLOAD_LOG_URL, None)
    env.pop(c.ENV_GRPC_PORT, None)
    if drift_port is not None:
        env[c.ENV_DRIFT_URL] = f"http://127.0.0.1:{drift_port}"
    return env


def local_router_config(
    config: Mapping[str, Any], ports: Mapping[str, int], keys_file: str | None
) -> dict[str, Any]:
    """The router config with each deployment's Service URL replaced by its local port."""
    deployments = {
        name: {
            **{k: v for k, v in entry.items() if k != "grpcPort"},  # no gRPC in local runs
            "url": f"http://127.0.0.1:{ports[name]}",
        }
        for name, entry in config["deployments"].items()
    }
    local = {**config, "deployments": deployments}
    if config.get("auth", {}).get("mode") == "key":
        local["auth"] = {**config["auth"], "keysFile": keys_file}
    return local
