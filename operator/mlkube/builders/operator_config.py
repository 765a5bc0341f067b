"""Operator-wide settings the builders need (image, cluster domain, default Gateway, ...).

Builders never read the environment: the handler layer calls `parse_operator_config` once with
`os.environ` and passes the frozen result in, so builder output depends only on arguments.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from mlkube.api.endpoint import SECTION_NAME_PATTERN
from mlkube.builders.build_config import BuildConfig, BuildConfigError, parse_build_config
from mlkube.builders.notify_config import NotifyConfig, NotifyConfigError, parse_notify_config
from mlkube.contract import DRIFT_PORT, ENV_S3_ENDPOINT_URL
from mlkube.reconcile.pipeline_cache import parse_image_digests
from mlkube.storage.policy import DEFAULT_INTERNAL_NETWORKS, FetchLimits, FetchPolicy

DEFAULT_SERVING_IMAGE: Final = "ghcr.io/mlkube/mlkube-serving:0.1.0"
# A non-root UID that exists in distroless and most slim images ("nonroot").
DEFAULT_RUN_AS_USER: Final = 65532

ENV_SERVING_IMAGE: Final = "MLKUBE_SERVING_IMAGE"
ENV_IMAGE_PULL_POLICY: Final = "MLKUBE_IMAGE_PULL_POLICY"
ENV_CLUSTER_DOMAIN: Final = "MLKUBE_CLUSTER_DOMAIN"
ENV_ROUTER_REPLICAS: Final = "MLKUBE_ROUTER_REPLICAS"
ENV_GATEWAY: Final = "MLKUBE_GATEWAY"  # default parent Gateway, "namespace/name[/section]"
# The default Gateway's listener for GRPCRoutes (a listener name); only with MLKUBE_GATEWAY.
ENV_GATEWAY_GRPC_SECTION: Final = "MLKUBE_GATEWAY_GRPC_SECTION"
ENV_STORAGE_SECRET: Final = "MLKUBE_STORAGE_SECRET"  # Secret of storage credentials (env vars)
ENV_RUN_AS_USER: Final = "MLKUBE_RUN_AS_USER"
ENV_ALLOW_FILE_ARTIFACTS: Final = "MLKUBE_ALLOW_FILE_ARTIFACTS"
# What the operator itself reads (Model verification, drift baselines): caps, stores, networks.
ENV_ARTIFACT_MAX_BYTES: Final = "MLKUBE_ARTIFACT_MAX_BYTES"
ENV_ARTIFACT_MAX_FILES: Final = "MLKUBE_ARTIFACT_MAX_FILES"
ENV_ARTIFACT_TIMEOUT: Final = "MLKUBE_ARTIFACT_TIMEOUT_SECONDS"
ENV_ARTIFACT_STORES: Final = "MLKUBE_ARTIFACT_STORES"  # "ns=prefix,prefix;*=prefix"
ENV_ARTIFACT_INTERNAL_NETWORKS: Final = "MLKUBE_ARTIFACT_INTERNAL_NETWORKS"  # CIDRs, or "none"
DEFAULT_ARTIFACT_MAX_BYTES: Final = 20 * 1024**3
DEFAULT_ARTIFACT_MAX_FILES: Final = 10_000
DEFAULT_ARTIFACT_TIMEOUT: Final = 900.0
_SIZE: Final = re.compile(r"^(\d+)\s*([KMGT]i?)?B?$", re.IGNORECASE)
_LISTENER_PATTERN: Final = re.compile(SECTION_NAME_PATTERN)  # Gateway API SectionName
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAMESPACE_PATTERN: Final = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")
# Drift monitoring: where the operator polls the sidecars and how it damps episode Events.
ENV_DRIFT_PORT: Final = "MLKUBE_DRIFT_PORT"  # sidecar ingest/summary port (pods and polling)
ENV_DRIFT_POLL_INTERVAL: Final = "MLKUBE_DRIFT_POLL_INTERVAL_SECONDS"
ENV_DRIFT_POLL_TIMEOUT: Final = "MLKUBE_DRIFT_POLL_TIMEOUT_SECONDS"
ENV_DRIFT_CLEAR_EVALUATIONS: Final = "MLKUBE_DRIFT_CLEAR_EVALUATIONS"
ENV_DRIFT_COOLDOWN: Final = "MLKUBE_DRIFT_COOLDOWN_SECONDS"
ENV_RESYNC_SECONDS: Final = "MLKUBE_RESYNC_SECONDS"
# Pod addresses the operator may connect to (drift sidecars, routers): CIDRs, "*" (any) or
# "none". Unset: any address when the operator runs in a pod (KUBERNETES_SERVICE_HOST is set),
# else loopback only: a dev cluster whose pods are fake (kwok) hands out addresses that exist
# nowhere, and an operator run by hand polling them would send traffic off this machine.
ENV_POD_NETWORKS: Final = "MLKUBE_POD_NETWORKS"
# Threads that verify artifacts (digests of up to the byte/time caps), apart from Kopf's own
# pool: slow stores must not starve endpoint reconciles, watch reactions or the webhooks.
ENV_VERIFY_WORKERS: Final = "MLKUBE_VERIFY_WORKERS"
# Pipelines: image reference → digest ("image=sha256:…,…") for step images not pinned by
# @sha256: (the dev cluster lists the images it imported); a step whose image is in neither is
# uncacheable, never a hit on a tag that may have moved (reconcile/pipeline_cache.py).
ENV_IMAGE_DIGESTS: Final = "MLKUBE_IMAGE_DIGESTS"
ENV_IN_CLUSTER: Final = "KUBERNETES_SERVICE_HOST"  # set by the kubelet in every pod
LOOPBACK_NETWORKS: Final = ("127.0.0.0/8", "::1/128")
# Prometheus Operator objects: "auto" (when the cluster serves them) or "off"; extra labels
# ("k=v,k2=v2") let a Prometheus whose selectors need them (e.g. release=...) pick them up.
ENV_MONITORING: Final = "MLKUBE_MONITORING"
ENV_MONITORING_LABELS: Final = "MLKUBE_MONITORING_LABELS"
# Batch jobs: where a BatchJob without spec.output writes (`<prefix>/<namespace>/<job>/`), and
# annotations ("k=v,k2=v2") merged into every batch pod (the dev cluster's local executor).
ENV_BATCH_OUTPUT_STORE: Final = "MLKUBE_BATCH_OUTPUT_STORE"
ENV_BATCH_POD_ANNOTATIONS: Final = "MLKUBE_BATCH_POD_ANNOTATIONS"
BATCH_STORE_SCHEMES: Final = ("s3", "gs", "pvc", "file")
# Pipelines: where step outputs and cache entries go when a Pipeline names no artifactStore
# (`<prefix>/<namespace>/pipelineruns/...`); unset: the batch output store (docs/pipelines.md).
ENV_ARTIFACT_STORE: Final = "MLKUBE_ARTIFACT_STORE"


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
    # The default Gateway's gRPC listener: endpoints on the default Gateway get a GRPCRoute.
    default_grpc_section: str | None = None
    storage_secret: str | None = None
    s3_endpoint_url: str | None = None
    run_as_user: int = DEFAULT_RUN_AS_USER
    drift_port: int = DRIFT_PORT
    drift_poll_interval: float = 30.0
    drift_poll_timeout: float = 2.0
    drift_clear_evaluations: int = 3
    drift_cooldown: float = 300.0
    # The level-based repair pass of every endpoint (tests and the benchmark force one).
    resync_seconds: float = 300.0
    # None: any pod address; else only addresses inside these CIDRs are contacted
    # (`parse_operator_config` defaults to loopback only outside a pod).
    pod_networks: tuple[str, ...] | None = None
    monitoring: bool = True
    monitoring_labels: tuple[tuple[str, str], ...] = ()
    # file:// artifacts make the operator read its own filesystem: local development only
    # (dev mode: it also allows loopback http(s) hosts).
    allow_file_artifacts: bool = False
    artifact_max_bytes: int = DEFAULT_ARTIFACT_MAX_BYTES
    artifact_max_files: int = DEFAULT_ARTIFACT_MAX_FILES
    artifact_timeout: float = DEFAULT_ARTIFACT_TIMEOUT
    # (namespace or "*", allowed URI prefixes); empty: every s3/gs/http(s) store is allowed.
    artifact_stores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    artifact_internal_networks: tuple[str, ...] = DEFAULT_INTERNAL_NETWORKS
    image_digests: tuple[tuple[str, str], ...] = ()  # (normalised image, sha256:…)
    verify_workers: int = 8
    batch_output_store: str | None = None
    batch_pod_annotations: tuple[tuple[str, str], ...] = ()
    artifact_store: str | None = None
    # Notifications: the default sink, the outbox (builders/notify_config.py).
    notifications: NotifyConfig = field(default_factory=NotifyConfig)
    # Environment builds: registry, Secrets, pip/apt sources, curated images (build_config.py).
    build: BuildConfig = field(default_factory=BuildConfig)


def parse_gateway(text: str) -> GatewayParent:
    """`name`, `namespace/name` or `namespace/name/section`."""
    parts = text.strip().split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise OperatorConfigError(
            f"{ENV_GATEWAY}={text!r} must be 'name', 'namespace/name' or 'namespace/name/section'"
        )
    if len(parts) == 1:
        parent = GatewayParent(name=parts[0])
    else:
        section = parts[2] if len(parts) == 3 else None
        parent = GatewayParent(name=parts[1], namespace=parts[0], section_name=section)
    # Checked here: a bad part would otherwise fail every HTTPRoute apply, endpoint by endpoint.
    if not (len(parent.name) <= 253 and _LISTENER_PATTERN.match(parent.name)):
        raise OperatorConfigError(f"{ENV_GATEWAY}={text!r}: {parent.name!r} is not a Gateway name")
    if parent.namespace is not None and not _DNS_LABEL.match(parent.namespace):
        raise OperatorConfigError(
            f"{ENV_GATEWAY}={text!r}: {parent.namespace!r} is not a namespace name"
        )
    section = parent.section_name
    if section is not None and not (len(section) <= 253 and _LISTENER_PATTERN.match(section)):
        raise OperatorConfigError(f"{ENV_GATEWAY}={text!r}: {section!r} is not a listener name")
    return parent


def parse_grpc_section(text: str | None, gateway: GatewayParent | None) -> str | None:
    """The default Gateway's gRPC listener name (a Gateway API SectionName), set only with
    MLKUBE_GATEWAY and never the HTTPRoute's own listener (a Gateway does not attach an
    HTTPRoute and a GRPCRoute of one host name to the same listener)."""
    if text is None:
        return None
    if gateway is None:
        raise OperatorConfigError(
            f"{ENV_GATEWAY_GRPC_SECTION} names a listener of the default Gateway: set {ENV_GATEWAY}"
        )
    if len(text) > 253 or not _LISTENER_PATTERN.match(text):
        raise OperatorConfigError(f"{ENV_GATEWAY_GRPC_SECTION}={text!r} is not a listener name")
    if text == gateway.section_name:
        raise OperatorConfigError(
            f"{ENV_GATEWAY_GRPC_SECTION}={text!r} is the HTTPRoute's listener ({ENV_GATEWAY}): "
            "the GRPCRoute needs a listener of its own"
        )
    return text


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


def _positive_float(env: Mapping[str, str], key: str, default: float, low: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise OperatorConfigError(f"{key}={raw!r} is not a number") from exc
    if not value >= low:  # also refuses nan
        raise OperatorConfigError(f"{key}={raw!r} must be >= {low}")
    return value


def parse_labels(text: str, key_name: str = ENV_MONITORING_LABELS) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` as sorted pairs (empty text: none)."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OperatorConfigError(f"{key_name}: {item!r} is not key=value")
        pairs.append((key.strip(), value.strip()))
    return tuple(sorted(pairs))


def _image_digests(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return parse_image_digests(text)
    except ValueError as exc:
        raise OperatorConfigError(str(exc)) from exc


def parse_operator_config(env: Mapping[str, str]) -> OperatorConfig:
    """Settings from environment variables (unset or empty ones keep their defaults)."""

    def text(key: str) -> str | None:
        return env.get(key, "").strip() or None

    policy = text(ENV_IMAGE_PULL_POLICY) or "IfNotPresent"
    if policy not in ("Always", "IfNotPresent", "Never"):
        raise OperatorConfigError(f"{ENV_IMAGE_PULL_POLICY}={policy!r} is not a pull policy")
    gateway = text(ENV_GATEWAY)
    default_gateway = parse_gateway(gateway) if gateway else None
    grpc_section = parse_grpc_section(text(ENV_GATEWAY_GRPC_SECTION), default_gateway)
    monitoring = (text(ENV_MONITORING) or "auto").lower()
    if monitoring not in ("auto", "off"):
        raise OperatorConfigError(f"{ENV_MONITORING}={monitoring!r} must be auto or off")
    return OperatorConfig(
        serving_image=text(ENV_SERVING_IMAGE) or DEFAULT_SERVING_IMAGE,
        image_pull_policy=policy,
        cluster_domain=(text(ENV_CLUSTER_DOMAIN) or "cluster.local").strip("."),
        router_replicas=_positive_int(env, ENV_ROUTER_REPLICAS, 2, 1),
        default_gateway=default_gateway,
        default_grpc_section=grpc_section,
        storage_secret=text(ENV_STORAGE_SECRET),
        s3_endpoint_url=text(ENV_S3_ENDPOINT_URL),
        run_as_user=_positive_int(env, ENV_RUN_AS_USER, DEFAULT_RUN_AS_USER, 1),
        drift_port=_positive_int(env, ENV_DRIFT_PORT, DRIFT_PORT, 1),
        drift_poll_interval=_positive_float(env, ENV_DRIFT_POLL_INTERVAL, 30.0, 0.1),
        drift_poll_timeout=_positive_float(env, ENV_DRIFT_POLL_TIMEOUT, 2.0, 0.05),
        drift_clear_evaluations=_positive_int(env, ENV_DRIFT_CLEAR_EVALUATIONS, 3, 1),
        drift_cooldown=_positive_float(env, ENV_DRIFT_COOLDOWN, 300.0, 0.0),
        resync_seconds=_positive_float(env, ENV_RESYNC_SECONDS, 300.0, 1.0),
        pod_networks=parse_pod_networks(
            env.get(ENV_POD_NETWORKS), in_cluster=bool(env.get(ENV_IN_CLUSTER))
        ),
        monitoring=monitoring == "auto",
        monitoring_labels=parse_labels(env.get(ENV_MONITORING_LABELS, "")),
        allow_file_artifacts=env.get(ENV_ALLOW_FILE_ARTIFACTS, "").strip().lower()
        in ("1", "true", "yes"),
        artifact_max_bytes=parse_size(env, ENV_ARTIFACT_MAX_BYTES, DEFAULT_ARTIFACT_MAX_BYTES),
        artifact_max_files=_positive_int(
            env, ENV_ARTIFACT_MAX_FILES, DEFAULT_ARTIFACT_MAX_FILES, 1
        ),
        artifact_timeout=_positive_float(env, ENV_ARTIFACT_TIMEOUT, DEFAULT_ARTIFACT_TIMEOUT, 1.0),
        artifact_stores=parse_stores(env.get(ENV_ARTIFACT_STORES, "")),
        artifact_internal_networks=parse_networks(env.get(ENV_ARTIFACT_INTERNAL_NETWORKS)),
        image_digests=_image_digests(env.get(ENV_IMAGE_DIGESTS, "")),
        verify_workers=_positive_int(env, ENV_VERIFY_WORKERS, 8, 1),
        batch_output_store=parse_batch_store(text(ENV_BATCH_OUTPUT_STORE)),
        batch_pod_annotations=parse_labels(
            env.get(ENV_BATCH_POD_ANNOTATIONS, ""), ENV_BATCH_POD_ANNOTATIONS
        ),
        artifact_store=parse_batch_store(text(ENV_ARTIFACT_STORE), ENV_ARTIFACT_STORE),
        notifications=_notifications(env),
        build=_build(env),
    )


def _build(env: Mapping[str, str]) -> BuildConfig:
    try:
        return parse_build_config(env)
    except BuildConfigError as exc:
        raise OperatorConfigError(str(exc)) from exc


def _notifications(env: Mapping[str, str]) -> NotifyConfig:
    try:
        return parse_notify_config(env, in_cluster=bool(env.get(ENV_IN_CLUSTER)))
    except NotifyConfigError as exc:
        raise OperatorConfigError(str(exc)) from exc


def parse_batch_store(text: str | None, key: str = ENV_BATCH_OUTPUT_STORE) -> str | None:
    """A URI prefix (s3://bucket/jobs, gs://..., pvc://claim/jobs, file:///dev/only) or None."""
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in BATCH_STORE_SCHEMES or (parts.scheme != "file" and not parts.netloc):
        raise OperatorConfigError(
            f"{key}={text!r} must be an s3://, gs://, pvc:// or file:// "
            "prefix (with a bucket or claim)"
        )
    if parts.query or parts.fragment:
        raise OperatorConfigError(f"{key}={text!r} has a query or fragment")
    return text.rstrip("/")


def pipeline_store(config: OperatorConfig) -> str | None:
    """Where pipeline artifacts go without spec.artifactStore: MLKUBE_ARTIFACT_STORE, else the
    batch output store, else None (the run fails and says which settings to set)."""
    return config.artifact_store or config.batch_output_store


def parse_size(env: Mapping[str, str], key: str, default: int) -> int:
    """Bytes as `1073741824`, `512Mi`, `20Gi` or `1G`."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    match = _SIZE.match(raw)
    if match is None or int(match.group(1)) < 1:
        raise OperatorConfigError(f"{key}={raw!r} is not a positive size (e.g. 512Mi, 20Gi)")
    unit = (match.group(2) or "").upper()
    power = " KMGT".index(unit[0]) if unit else 0
    base = 1024 if unit.endswith("I") or not unit else 1000
    return int(match.group(1)) * int(base**power)


def parse_stores(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`team-a=s3://bucket/a,https://models.example.com/a;*=s3://shared` as sorted entries."""
    entries: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        namespace, sep, prefixes = item.partition("=")
        namespace = namespace.strip()
        if not sep or not _NAMESPACE_PATTERN.match(namespace):
            raise OperatorConfigError(
                f"{ENV_ARTIFACT_STORES}: {item!r} is not 'namespace=prefix,prefix' (or '*=...')"
            )
        allowed = tuple(p.strip() for p in prefixes.split(",") if p.strip())
        for prefix in allowed:
            if (
                urlsplit(prefix).scheme not in ("s3", "gs", "http", "https")
                or not urlsplit(prefix).netloc
            ):
                raise OperatorConfigError(
                    f"{ENV_ARTIFACT_STORES}: {prefix!r} must be an s3://, gs:// or http(s):// "
                    "prefix with a bucket or host"
                )
        entries[namespace] = entries.get(namespace, ()) + allowed
    return tuple(sorted(entries.items()))


def parse_networks(text: str | None) -> tuple[str, ...]:
    """CIDRs the operator never fetches from; unset: private ranges; "none": no extra ones."""
    if text is None or not text.strip():
        return DEFAULT_INTERNAL_NETWORKS
    return _cidr_list(text, ENV_ARTIFACT_INTERNAL_NETWORKS)


def parse_pod_networks(text: str | None, *, in_cluster: bool) -> tuple[str, ...] | None:
    """`*`: any pod address (None); `none`: no pod is contacted; else a CIDR list. Unset:
    any address in a pod, loopback only outside the cluster."""
    if text is None or not text.strip():
        return None if in_cluster else LOOPBACK_NETWORKS
    if text.strip() == "*":
        return None
    return _cidr_list(text, ENV_POD_NETWORKS)


def _cidr_list(text: str, key: str) -> tuple[str, ...]:
    """`none` or comma-separated CIDRs, normalised."""
    if text.strip().lower() == "none":
        return ()
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise OperatorConfigError(f"{key}: {exc}") from exc
    return tuple(networks)


def contactable_pods(addresses: list[str], config: OperatorConfig) -> list[str]:
    """The pod addresses the operator may connect to under `pod_networks`."""
    if config.pod_networks is None:
        return addresses
    networks = [ipaddress.ip_network(n) for n in config.pod_networks]
    allowed = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if any(ip in network for network in networks):
            allowed.append(address)
    return allowed


def fetch_policy(config: OperatorConfig, *, require_digest: bool = False) -> FetchPolicy:
    """How the operator reads artifacts: capped, no local or internal hosts outside dev mode."""
    return FetchPolicy(
        limits=FetchLimits(
            max_bytes=config.artifact_max_bytes,
            max_files=config.artifact_max_files,
            timeout=config.artifact_timeout,
        ),
        allow_local=config.allow_file_artifacts,
        guard_network=True,
        internal_networks=config.artifact_internal_networks,
        internal_domains=("svc", config.cluster_domain, "internal"),
        require_digest=require_digest,
    )


def _under(uri: str, prefix: str) -> bool:
    """`uri` is `prefix` or below it, compared as scheme, host and whole path segments."""
    u, p = urlsplit(uri), urlsplit(prefix)
    if (u.scheme.lower(), u.netloc.lower()) != (p.scheme.lower(), p.netloc.lower()):
        return False
    if u.query or u.fragment:
        return False
    u_parts = u.path.split("/")[1:]
    p_parts = p.path.rstrip("/").split("/")[1:]
    return u_parts[: len(p_parts)] == p_parts


def store_problem(uri: str, namespace: str, config: OperatorConfig) -> str | None:
    """Why Models in `namespace` may not use `uri` under the store allow-list, or None.
    pvc:// is always the namespace's own claim and file:// is dev-only, so only s3, gs and
    http(s) are listed."""
    scheme = urlsplit(uri).scheme.lower()
    if not config.artifact_stores or scheme not in ("s3", "gs", "http", "https"):
        return None
    if any(part in (".", "..") for part in unquote(urlsplit(uri).path).split("/")):
        return f"{uri} has '.' or '..' segments; name the artifact by its plain path"
    allowed = dict(config.artifact_stores)
    prefixes = allowed.get(namespace, ()) + allowed.get("*", ())
    if any(_under(uri, prefix) for prefix in prefixes):
        return None
    shown = ", ".join(prefixes) if prefixes else "none"
    return (
        f"{uri} is outside the stores namespace {namespace} may use ({ENV_ARTIFACT_STORES}: "
        f"{shown})"
    )


def artifact_scheme_problem(uri: str, config: OperatorConfig) -> str | None:
    """Why the operator must not read `uri` itself, or None when it may."""
    if uri.startswith("file://") and not config.allow_file_artifacts:
        return (
            f"file:// artifacts ({uri}) are read only by an operator started with "
            f"{ENV_ALLOW_FILE_ARTIFACTS}=true (local development clusters); store the model "
            "in s3://, gs://, https:// or a PVC (pvc://claim/path)"
        )
    return None


def model_store_problem(
    spec: Mapping[str, Any], namespace: str, config: OperatorConfig
) -> str | None:
    """The first of the Model's artifact and baseline URIs the allow-list refuses, if any."""
    uris = [(spec.get("artifact") or {}).get("uri"), (spec.get("baseline") or {}).get("uri")]
    problems = (store_problem(str(uri), namespace, config) for uri in uris if uri)
    return next((problem for problem in problems if problem is not None), None)
