"""Pure: endpoint children (Deployments, router ConfigMap, keys Secret) -> local process specs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlkube import contract as c
from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.names import COMPONENT_KEYS, COMPONENT_ROUTER, COMPONENT_SERVER


class PlanError(ValueError):
    """The children do not describe a runnable router-backed endpoint."""


@dataclass(frozen=True)
class LocalServer:
    deployment: str
    env: dict[str, str]
    artifact_uri: str
    digest: str | None


@dataclass(frozen=True)
class LocalPlan:
    servers: list[LocalServer]
    router_config: dict[str, Any]
    keys: list[str] = field(default_factory=list)


def _container(obj: Mapping[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"]
    for container in spec.get("initContainers" if init else "containers") or []:
        if container["name"] == name:
            return dict(container)
    raise PlanError(f"{obj['metadata']['name']}: no container {name!r}")


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    # valueFrom entries (secrets, field refs) have no meaning outside a pod: left out.
    return {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}


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
            uri = _flag(args, "--uri")
            if uri is None:
                raise PlanError(f"{obj['metadata']['name']}: storage initializer has no --uri")
            servers.append(LocalServer(
                deployment=labels[c.LABEL_DEPLOYMENT],
                env=_env(_container(obj, "server")),
                artifact_uri=uri,
                digest=_flag(args, "--digest"),
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
    server: LocalServer, *, model_dir: str, http_port: int, metrics_port: int
) -> dict[str, str]:
    """The pod's env with the cluster-only parts (paths, ports, bind address) made local."""
    return {
        **server.env,
        c.ENV_MODEL_DIR: model_dir,
        c.ENV_HTTP_PORT: str(http_port),
        c.ENV_METRICS_PORT: str(metrics_port),
        c.ENV_HTTP_HOST: "127.0.0.1",
    }


def local_router_config(
    config: Mapping[str, Any], ports: Mapping[str, int], keys_file: str | None
) -> dict[str, Any]:
    """The router config with each deployment's Service URL replaced by its local port."""
    deployments = {
        name: {**entry, "url": f"http://127.0.0.1:{ports[name]}"}
        for name, entry in config["deployments"].items()
    }
    local = {**config, "deployments": deployments}
    if config.get("auth", {}).get("mode") == "key":
        local["auth"] = {**config["auth"], "keysFile": keys_file}
    return local
