"""Operator-wide settings the builders need (image, cluster domain, default Gateway, ...).

Builders never read the environment: the handler layer calls `parse_operator_config` once with
`os.environ` and passes the frozen result in, so builder output depends only on arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mlkube.contract import ENV_S3_ENDPOINT_URL

DEFAULT_SERVING_IMAGE: Final = "ghcr.io/mlkube/mlkube-serving:0.1.0"
# A non-root UID that exists in distroless and most slim images ("nonroot").
DEFAULT_RUN_AS_USER: Final = 65532

ENV_SERVING_IMAGE: Final = "MLKUBE_SERVING_IMAGE"
ENV_IMAGE_PULL_POLICY: Final = "MLKUBE_IMAGE_PULL_POLICY"
ENV_CLUSTER_DOMAIN: Final = "MLKUBE_CLUSTER_DOMAIN"
ENV_ROUTER_REPLICAS: Final = "MLKUBE_ROUTER_REPLICAS"
ENV_GATEWAY: Final = "MLKUBE_GATEWAY"  # default parent Gateway, "namespace/name[/section]"
ENV_STORAGE_SECRET: Final = "MLKUBE_STORAGE_SECRET"  # Secret of storage credentials (env vars)
ENV_RUN_AS_USER: Final = "MLKUBE_RUN_AS_USER"


class OperatorConfigError(ValueError):
    """An operator setting has a value that cannot be used."""


@dataclass(frozen=True)
class GatewayParent:
    """A Gateway the HTTPRoutes attach to when an endpoint names none."""

    name: str
    namespace: str | None = None
    section_name: str | None = None


@dataclass(frozen=True)
class OperatorConfig:
    serving_image: str = DEFAULT_SERVING_IMAGE
    image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    router_replicas: int = 2
    default_gateway: GatewayParent | None = None
    storage_secret: str | None = None
    s3_endpoint_url: str | None = None
    run_as_user: int = DEFAULT_RUN_AS_USER


def parse_gateway(text: str) -> GatewayParent:
    """`name`, `namespace/name` or `namespace/name/section`."""
    parts = text.strip().split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise OperatorConfigError(
            f"{ENV_GATEWAY}={text!r} must be 'name', 'namespace/name' or 'namespace/name/section'"
        )
    if len(parts) == 1:
        return GatewayParent(name=parts[0])
    return GatewayParent(
        name=parts[1], namespace=parts[0], section_name=parts[2] if len(parts) == 3 else None
    )


def _positive_int(env: Mapping[str, str], key: str, default: int, low: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise OperatorConfigError(f"{key}={raw!r} is not an integer") from exc
    if value < low:
        raise OperatorConfigError(f"{key}={raw!r} must be >= {low}")
    return value


def parse_operator_config(env: Mapping[str, str]) -> OperatorConfig:
    """Settings from environment variables (unset or empty ones keep their defaults)."""

    def text(key: str) -> str | None:
        return env.get(key, "").strip() or None

    policy = text(ENV_IMAGE_PULL_POLICY) or "IfNotPresent"
    if policy not in ("Always", "IfNotPresent", "Never"):
        raise OperatorConfigError(f"{ENV_IMAGE_PULL_POLICY}={policy!r} is not a pull policy")
    gateway = text(ENV_GATEWAY)
    return OperatorConfig(
        serving_image=text(ENV_SERVING_IMAGE) or DEFAULT_SERVING_IMAGE,
        image_pull_policy=policy,
        cluster_domain=(text(ENV_CLUSTER_DOMAIN) or "cluster.local").strip("."),
        router_replicas=_positive_int(env, ENV_ROUTER_REPLICAS, 2, 1),
        default_gateway=parse_gateway(gateway) if gateway else None,
        storage_secret=text(ENV_STORAGE_SECRET),
        s3_endpoint_url=text(ENV_S3_ENDPOINT_URL),
        run_as_user=_positive_int(env, ENV_RUN_AS_USER, DEFAULT_RUN_AS_USER, 1),
    )
