"""The endpoint verbs' API access: one client per command, errors turned into CliErrors that
say what to do, and the endpoint's keys."""

from __future__ import annotations

import argparse
from typing import Any, Final

from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.names import keys_secret_name
from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION, GROUP
from mlkube.k8s import ApiError, Kube

KIND: Final = "OnlineEndpoint"


def connect(args: argparse.Namespace) -> tuple[Kube, str]:
    """The shared API client (honouring --kubeconfig/--context) and the namespace to use."""
    try:
        kube = Kube(args.kubeconfig, context=args.context)
    except Exception as exc:  # the client raises ConfigException and OSError variants
        raise CliError(f"cannot load Kubernetes configuration: {exc}") from exc
    return kube, args.namespace or kube.default_namespace


def api_error(err: ApiError, action: str) -> CliError:
    if err.status == 404 and err.reason == "KindNotServed":
        return CliError(
            f"cannot {action}: the OnlineEndpoint CRD (onlineendpoints.{GROUP}) is not installed"
        )
    return CliError(f"cannot {action}: {err}")


def get_endpoint(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        obj = kube.get(API_VERSION, KIND, name, namespace)
    except ApiError as err:
        raise api_error(err, f"get OnlineEndpoint {namespace}/{name}") from err
    if obj is None:
        raise CliError(f"OnlineEndpoint {namespace}/{name} not found")
    return obj


def endpoint_keys(kube: Kube, namespace: str, obj: dict[str, Any]) -> list[str]:
    name = obj["metadata"]["name"]
    if ((obj.get("spec") or {}).get("auth") or {}).get("mode", "none") != "key":
        return []
    try:
        secret = kube.get("v1", "Secret", keys_secret_name(name), namespace)
    except ApiError as err:
        raise api_error(err, f"read the keys of OnlineEndpoint {namespace}/{name}") from err
    keys = read_keys(secret)
    if not keys:
        raise CliError(
            f"OnlineEndpoint {namespace}/{name} has no keys yet (the operator creates them)"
        )
    return keys
