"""The `OnlineEndpoint` kind: a stable URL in front of one or more model deployments.

Azure ML's endpoint/deployment split: deployments say what runs (model, runtime, scale), the
endpoint says who gets what share of traffic (`traffic`, `mirror`). Traffic invariants are CEL
rules so a bad `kubectl apply` is refused before the operator ever sees it; the same checks run
in `OnlineEndpointSpec` validation for clients that validate locally (the CLI).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from mlkube.api.common import (
    DNS_LABEL_PATTERN,
    MAX_NAME_LENGTH,
    MAX_URI_LENGTH,
    ApiModel,
    Conditions,
    DnsLabel,
    EnvVar,
    Message,
    Resources,
    ShortText,
    Timestamp,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.environment import EnvironmentRef
from mlkube.api.environment_status import EnvironmentRecord
from mlkube.api.markers import ListMap, ListSet, Rule
from mlkube.api.rollout import RolloutSpec
from mlkube.api.rollout_status import RolloutStatus
from mlkube.contract import KIND_ONLINE_ENDPOINT, MAX_BATCH_ROWS, PLURAL_ONLINE_ENDPOINTS

Runtime = Literal["auto", "sklearn", "onnx", "mlflow", "custom"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
AuthMode = Literal["none", "key"]
LoggerMode = Literal["all", "request", "response"]
TrafficBackend = Literal["router", "gateway-api"]
TRAFFIC_BACKENDS: tuple[str, ...] = get_args(TrafficBackend)
MAX_DEPLOYMENTS = 16
MAX_DRIFT_METHOD = 64

Percent = Annotated[int, Field(ge=0, le=100)]
PercentMap = Annotated[dict[str, Percent], Field(max_length=MAX_DEPLOYMENTS)]
ObjectName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS_LABEL_PATTERN)
]

MSG_LOGGER_DESTINATION = "logger: set exactly one of url and sink"
# Plain HTTP: the model server posts from its event loop with its own keep-alive client.
LOGGER_URL_PATTERN = r"^http://[^\s/?#:@]+(:[0-9]{1,5})?(/\S*)?$"
# The server gets the names comma-separated: a name cannot hold a comma.
RedactName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^,]+$")]
MSG_DUPLICATE_DEPLOYMENT = "spec.deployments names must be unique"
MSG_TRAFFIC_SUM = "spec.traffic percentages must sum to 100"
MSG_TRAFFIC_KEYS = "spec.traffic keys must be names of spec.deployments"
MSG_MIRROR_KEYS = "spec.mirror keys must be names of spec.deployments"
MSG_LIVE_AND_MIRROR = "a deployment cannot receive both live traffic (>0) and mirrored traffic"
MSG_REPLICAS_XOR = "set either replicas or autoscale, not both"
MSG_AUTOSCALE_RANGE = "autoscale.minReplicas must not exceed autoscale.maxReplicas"
MSG_AUTOSCALE_TARGET = "autoscale needs exactly one of targetConcurrency or targetCPUUtilization"
MSG_RESERVED_NAME = "deployment name 'router' is reserved for the endpoint's router"
MSG_KEY_AUTH_GATEWAY = (
    "auth.mode key needs trafficBackend router: the Gateway API has no standard key auth"
)
MSG_ROLLOUT_STABLE = "spec.rollout.stable must name one of spec.deployments"
MSG_ROLLOUT_CANDIDATE = "spec.rollout.candidate must name one of spec.deployments"
MSG_ROLLOUT_CANDIDATE_WEIGHT = (
    "spec.rollout.candidate needs a weight > 0 in spec.traffic (the split it is promoted to)"
)
ROUTER_METRICS = frozenset({"errorRate", "latency", "agreement"})  # what the router measures
MSG_ROLLOUT_ROUTER_METRICS = (
    "spec.rollout.metrics builtin errorRate, latency and agreement need trafficBackend router:"
    " they are measured by the router (use prometheus or web with gateway-api)"
)
MSG_GRPC_SECTION = (
    "spec.gateway.grpcSectionName must differ from every parentRefs sectionName: the GRPCRoute"
    " needs a listener apart from the HTTPRoute's"
)
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Gateway API's SectionName: a listener name is a DNS subdomain (dots allowed), not a label.
SECTION_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SectionName = Annotated[str, Field(min_length=1, max_length=253, pattern=SECTION_NAME_PATTERN)]


class Autoscale(ApiModel):
    """Horizontal autoscaling between minReplicas and maxReplicas on one target metric."""

    kube_validations = (
        Rule("self.minReplicas <= self.maxReplicas", message=MSG_AUTOSCALE_RANGE),
        Rule(
            "has(self.targetConcurrency) != has(self.targetCPUUtilization)",
            message=MSG_AUTOSCALE_TARGET,
        ),
    )

    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Fewest replicas."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    """Most replicas."""
    target_concurrency: Annotated[int, Field(ge=1, le=10000)] | None = None
    """In-flight requests per replica to aim for."""
    target_cpu_utilization: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, alias="targetCPUUtilization"
    )
    """Average CPU utilization (percent of requests) to aim for."""

    @model_validator(mode="after")
    def _check(self) -> Autoscale:
        if self.min_replicas > self.max_replicas:
            raise ValueError(MSG_AUTOSCALE_RANGE)
        if (self.target_concurrency is None) == (self.target_cpu_utilization is None):
            raise ValueError(MSG_AUTOSCALE_TARGET)
        return self


class RequestSettings(ApiModel):
    """Per-request limits of the model server; server defaults apply when omitted."""

    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    """Seconds before a request fails with 504."""
    max_concurrency: Annotated[int, Field(ge=1, le=10000)] | None = None
    """In-flight requests per replica before new ones get 429."""


class Probes(ApiModel):
    """Readiness and liveness probe timing of the model server."""

    initial_delay_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    """Seconds to wait before the first probe (large models load slowly)."""
    period_seconds: Annotated[int, Field(ge=1, le=3600)] | None = None
    """Seconds between probes."""
    failure_threshold: Annotated[int, Field(ge=1, le=100)] | None = None
    """Consecutive failures before the container counts as unhealthy."""


class DriftSettings(ApiModel):
    """Input drift monitoring against the Model's baseline, by a sidecar."""

    enabled: bool = False
    """Run the drift sidecar and sample requests to it."""
    sample_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Fraction of requests sampled (0..1)."""
    window_size: Annotated[int, Field(ge=10, le=1_000_000)] | None = None
    """Samples per comparison window; the profile's calibrated windowSize when omitted."""
    features: Annotated[list[ShortText], Field(max_length=256)] = Field(default_factory=list)
    """Features to monitor; all baseline features when empty."""


class Batcher(ApiModel):
    """Adaptive batching (KServe's batcher fields): concurrent V2 requests to the model are
    merged into one runtime call, each request getting back exactly its rows. A batch runs
    when it holds maxBatchSize rows, when every request the server is handling has joined one
    (so a lone request never waits), or after maxLatency milliseconds. Off when omitted: it
    pays for models whose runtime call has a large fixed cost, at high concurrency."""

    max_batch_size: Annotated[int, Field(ge=2, le=MAX_BATCH_ROWS)] = 32
    """Rows per runtime call at most; a request with more rows runs alone."""
    max_latency: Annotated[float, Field(gt=0, le=10000)] = 5.0
    """Milliseconds a request may wait for others to join its batch."""


class PayloadLogger(ApiModel):
    """Payload logging: sampled request/response pairs as CloudEvents in KServe's logger
    format (types org.kubeflow.serving.inference.request and .response, one id per pair),
    sent by the model server off the request path, best-effort: a full queue or a sink that
    is down drops pairs (counted in mlkube_payload_log_dropped_total), never predictions."""

    kube_validations = (Rule("has(self.url) != has(self.sink)", message=MSG_LOGGER_DESTINATION),)

    mode: LoggerMode = "all"
    """all (request and response), request or response."""
    url: (
        Annotated[str, Field(min_length=1, max_length=MAX_URI_LENGTH, pattern=LOGGER_URL_PATTERN)]
        | None
    ) = None
    """A plain-HTTP URL that accepts CloudEvents by POST, e.g. an in-cluster collector."""
    sink: ObjectName | None = None
    """An EventSink in the endpoint's namespace: its destination (uri or Service ref), mode
    and signing are used; its type filters and retries are not (payload logs are not
    retried). Its destination must be http://."""
    sample_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Fraction of requests logged (0..1)."""
    redact: Annotated[list[RedactName], ListSet(), Field(max_length=64)] = Field(
        default_factory=list
    )
    """Field names whose values are replaced by [REDACTED]: V2 tensors by name, JSON keys
    anywhere in the body, Seldon named columns. A body that is not JSON is then not logged."""

    @model_validator(mode="after")
    def _one_destination(self) -> PayloadLogger:
        if (self.url is None) == (self.sink is None):
            raise ValueError(MSG_LOGGER_DESTINATION)
        port = urlsplit(self.url).port if self.url else None  # the pattern allows 5 digits
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"logger.url port {port} must be between 1 and 65535")
        return self


class OnlineDeployment(ApiModel):
    """One model served behind the endpoint, with its own scale and settings."""

    kube_validations = (
        Rule("!(has(self.replicas) && has(self.autoscale))", message=MSG_REPLICAS_XOR),
        Rule("self.name != 'router'", message=MSG_RESERVED_NAME),
    )

    name: DnsLabel
    """Deployment name, unique in the endpoint, e.g. blue or green."""
    model: ObjectName
    """Name of a Model object in the same namespace."""
    environment: EnvironmentRef | None = None
    """Environment (name:version or name@latest) whose image runs the model server."""
    runtime: Runtime = "auto"
    """Serving runtime; auto picks it from the Model's framework."""
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    """Fixed replica count (1 when neither replicas nor autoscale is set)."""
    autoscale: Autoscale | None = None
    """Autoscaling instead of a fixed replica count."""
    resources: Resources | None = None
    """CPU and memory of the model server container."""
    request_settings: RequestSettings | None = None
    """Request timeout and concurrency limits."""
    probes: Probes | None = None
    """Probe timing."""
    env: Annotated[list[EnvVar], ListMap("name"), Field(max_length=64)] = Field(
        default_factory=list
    )
    """Extra environment variables for the model server (e.g. for scoring scripts)."""
    drift: DriftSettings | None = None
    """Drift monitoring."""
    logger: PayloadLogger | None = None
    """Payload logging of this deployment's requests and responses."""
    batcher: Batcher | None = None
    """Adaptive batching of concurrent requests; off when omitted."""

    @model_validator(mode="after")
    def _check(self) -> OnlineDeployment:
        if self.replicas is not None and self.autoscale is not None:
            raise ValueError(MSG_REPLICAS_XOR)
        if self.name == "router":
            raise ValueError(MSG_RESERVED_NAME)
        return self


class Auth(ApiModel):
    """How clients authenticate to the endpoint."""

    mode: AuthMode = "none"
    """none, or key (a bearer key kept in a Secret the operator creates)."""


class GatewayParentRef(ApiModel):
    """A Gateway (or one of its listeners) that the endpoint's HTTPRoute attaches to."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Gateway name."""
    namespace: DnsLabel | None = None
    """Gateway namespace; the endpoint's namespace when omitted."""
    section_name: SectionName | None = None
    """Listener name on the Gateway; all listeners when omitted."""


class GatewaySettings(ApiModel):
    """How the HTTPRoute (and GRPCRoute) of a gateway-api endpoint attach to Gateways."""

    kube_validations = (
        Rule(
            "!has(self.grpcSectionName) || !has(self.parentRefs) || self.parentRefs.all(p,"
            " !has(p.sectionName) || p.sectionName != self.grpcSectionName)",
            message=MSG_GRPC_SECTION,
            field_path=".grpcSectionName",
        ),
    )

    parent_refs: Annotated[list[GatewayParentRef], Field(max_length=32)] = Field(
        default_factory=list
    )
    """Gateways to attach to; the operator's default Gateway (MLKUBE_GATEWAY) when empty."""
    hostnames: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]],
        Field(max_length=16),
    ] = Field(default_factory=list)
    """Host names the route answers; the first one makes status.url."""
    grpc_section_name: SectionName | None = None
    """Listener, on each parent Gateway, that the endpoint's GRPCRoute (the model servers' Open
    Inference Protocol over gRPC) attaches to. It must be a listener apart from the HTTPRoute's:
    a Gateway does not attach an HTTPRoute and a GRPCRoute with the same host name to one
    listener. When omitted: the operator's MLKUBE_GATEWAY_GRPC_SECTION if the endpoint uses the
    operator's default Gateway, else no GRPCRoute (HTTP only)."""

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.grpc_section_name is not None and any(
            p.section_name == self.grpc_section_name for p in self.parent_refs
        ):
            raise ValueError(MSG_GRPC_SECTION)
        return self


def _is_deployment(key: str) -> str:
    return f"has(self.deployments) && self.deployments.exists(d, d.name == {key})"


class OnlineEndpointSpec(ApiModel):
    """A stable scoring URL that splits, mirrors and routes traffic across deployments."""

    kube_validations = (
        Rule(
            f"!has(self.traffic) || self.traffic.all(k, {_is_deployment('k')})",
            message=MSG_TRAFFIC_KEYS,
            field_path=".traffic",
        ),
        Rule(
            f"!has(self.mirror) || self.mirror.all(k, {_is_deployment('k')})",
            message=MSG_MIRROR_KEYS,
            field_path=".mirror",
        ),
        Rule(
            "!has(self.mirror) || !has(self.traffic)"
            " || self.mirror.all(k, !(k in self.traffic) || self.traffic[k] == 0)",
            message=MSG_LIVE_AND_MIRROR,
            field_path=".mirror",
        ),
        Rule(
            "!has(self.auth) || !has(self.auth.mode) || self.auth.mode != 'key'"
            " || !has(self.trafficBackend) || self.trafficBackend != 'gateway-api'",
            message=MSG_KEY_AUTH_GATEWAY,
            field_path=".auth",
        ),
        Rule(
            f"!has(self.rollout) || {_is_deployment('self.rollout.stable')}",
            message=MSG_ROLLOUT_STABLE,
            field_path=".rollout.stable",
        ),
        Rule(
            f"!has(self.rollout) || {_is_deployment('self.rollout.candidate')}",
            message=MSG_ROLLOUT_CANDIDATE,
            field_path=".rollout.candidate",
        ),
        Rule(
            "!has(self.rollout) || (has(self.traffic) && self.rollout.candidate in self.traffic"
            " && self.traffic[self.rollout.candidate] > 0)",
            message=MSG_ROLLOUT_CANDIDATE_WEIGHT,
            field_path=".rollout.candidate",
        ),
        Rule(
            "!has(self.rollout) || !has(self.trafficBackend)"
            " || self.trafficBackend != 'gateway-api' || !has(self.rollout.metrics)"
            " || self.rollout.metrics.all(m, !has(m.provider.builtin)"
            " || m.provider.builtin.type in ['inputDrift', 'predictionDrift'])",
            message=MSG_ROLLOUT_ROUTER_METRICS,
            field_path=".rollout.metrics",
        ),
    )

    deployments: Annotated[
        list[OnlineDeployment], ListMap("name"), Field(max_length=MAX_DEPLOYMENTS)
    ] = Field(default_factory=list)
    """Deployments behind the endpoint (names are unique)."""
    traffic: Annotated[
        PercentMap,
        Rule("size(self) == 0 || self.map(k, self[k]).sum() == 100", message=MSG_TRAFFIC_SUM),
    ] = Field(default_factory=dict)
    """Live traffic split, deployment name to percent; sums to 100 (or is empty)."""
    mirror: PercentMap = Field(default_factory=dict)
    """Shadow traffic, deployment name to percent of requests copied; responses discarded."""
    auth: Auth = Field(default_factory=Auth)
    """Client authentication."""
    traffic_backend: TrafficBackend = "router"
    """router (the mlkube router Deployment) or gateway-api (an HTTPRoute with weights, and a
    GRPCRoute when a gRPC listener is known)."""
    gateway: GatewaySettings | None = None
    """Gateway API attachment (parent Gateways, host names, gRPC listener) when trafficBackend
    is gateway-api."""
    rollout: RolloutSpec | None = None
    """Progressive rollout of a candidate deployment to spec.traffic, gated on metrics
    (docs/rollouts.md); without it a changed split applies at once."""

    @model_validator(mode="after")
    def _check(self) -> OnlineEndpointSpec:
        names = {d.name for d in self.deployments}
        if len(names) != len(self.deployments):
            raise ValueError(MSG_DUPLICATE_DEPLOYMENT)
        if self.traffic and sum(self.traffic.values()) != 100:
            raise ValueError(MSG_TRAFFIC_SUM)
        if not set(self.traffic) <= names:
            raise ValueError(MSG_TRAFFIC_KEYS)
        if not set(self.mirror) <= names:
            raise ValueError(MSG_MIRROR_KEYS)
        if any(self.traffic.get(name, 0) > 0 for name in self.mirror):
            raise ValueError(MSG_LIVE_AND_MIRROR)
        if self.auth.mode == "key" and self.traffic_backend == "gateway-api":
            raise ValueError(MSG_KEY_AUTH_GATEWAY)
        if self.rollout is not None:
            if self.rollout.stable not in names:
                raise ValueError(MSG_ROLLOUT_STABLE)
            if self.rollout.candidate not in names:
                raise ValueError(MSG_ROLLOUT_CANDIDATE)
            if self.traffic.get(self.rollout.candidate, 0) <= 0:
                raise ValueError(MSG_ROLLOUT_CANDIDATE_WEIGHT)
            if self.traffic_backend == "gateway-api" and any(
                m.provider.builtin is not None and m.provider.builtin.type in ROUTER_METRICS
                for m in self.rollout.metrics
            ):
                raise ValueError(MSG_ROLLOUT_ROUTER_METRICS)
        return self


class DriftFeatureStatus(ApiModel):
    """One feature's drift score against its threshold (the profile's deciding method)."""

    name: ShortText
    """Feature name."""
    method: Annotated[str, Field(max_length=MAX_DRIFT_METHOD)]
    """Method that decides drift for the feature: wasserstein, ks, psi or jensenshannon."""
    score: float | None = None
    """Score over the merged window (absent without values)."""
    threshold: float
    """Calibrated threshold; the feature drifted when score >= threshold."""
    drifted: bool = False
    """Whether the feature drifted (only once the window is full)."""


class DriftEpisode(ApiModel):
    """Damped drift state behind the DriftDetected condition and the drift Events."""

    active: bool = False
    """A drift episode is under way (DriftDetected posted, DriftEnded not yet)."""
    started_at: Timestamp | None = None
    """When the episode started."""
    clear_evaluations: Annotated[int, Field(ge=0)] = 0
    """Consecutive evaluations without drift during the episode."""
    clear_since: Timestamp | None = None
    """First evaluation of the current run without drift."""


class DriftEpisodeRecord(ApiModel):
    """A finished drift episode (the drift.ended CloudEvent is implied by it)."""

    started_at: Timestamp
    """When the episode started (as episode.startedAt recorded it)."""
    ended_at: Timestamp
    """When it ended."""


class DriftStatus(ApiModel):
    """The deployment's drift verdict, merged over every replica's sidecar."""

    detected: bool = False
    """The latest merged evaluation shows dataset drift."""
    drifted_features: Annotated[int, Field(ge=0)] = 0
    """Features that drifted."""
    evaluated_features: Annotated[int, Field(ge=0)] = 0
    """Features with values in the window."""
    drifted_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Share of evaluated features that drifted (dataset drift at the profile's share)."""
    samples: Annotated[int, Field(ge=0)] = 0
    """Rows in the merged window."""
    window_size: Annotated[int, Field(ge=0)] = 0
    """Rows a full window holds (drift is only flagged on a full window)."""
    samples_dropped: Annotated[int, Field(ge=0)] = 0
    """Rows the sidecars received but could not window (queue full, malformed)."""
    prediction_drifted: bool | None = None
    """Whether the prediction column drifted (absent when the profile has none)."""
    replicas_reporting: Annotated[int, Field(ge=0)] = 0
    """Replicas whose summaries were merged."""
    replicas_failed: Annotated[int, Field(ge=0)] = 0
    """Ready replicas that could not be polled or sent an unusable summary."""
    evaluated_at: Timestamp | None = None
    """Oldest evaluation time among the merged summaries."""
    observed_at: Timestamp | None = None
    """The last operator poll that changed this entry (an idle poll writes nothing)."""
    reason: Annotated[str, Field(max_length=64)] = "Evaluated"
    """Evaluated, WindowFilling, NoReplicaReporting, DriftBaselineMissing or -Unreadable."""
    message: Message = ""
    """Human-readable state of the monitoring."""
    top_features: Annotated[list[DriftFeatureStatus], Field(max_length=10)] = Field(
        default_factory=list
    )
    """Up to 10 features with the highest score relative to their threshold."""
    episode: DriftEpisode = Field(default_factory=DriftEpisode)
    """Damped state behind the DriftDetected condition and Events."""
    last_episode: DriftEpisodeRecord | None = None
    """The last episode that ended."""


class DeploymentStatus(ApiModel):
    """Observed state of one deployment."""

    name: DnsLabel
    """Deployment name."""
    model: ObjectName
    """Model object served."""
    ready_replicas: Annotated[int, Field(ge=0)] = 0
    """Replicas that pass readiness."""
    replicas: Annotated[int, Field(ge=0)] = 0
    """Desired replicas."""
    drift: DriftStatus | None = None
    """Drift monitoring (deployments with drift.enabled only)."""
    message: Message | None = None
    """Why pods are not ready, from the pods themselves (e.g. an init container's error)."""
    ready_at: Timestamp | None = None
    """When the deployment first had all its replicas available with its current Model."""
    model_version: Annotated[str, Field(max_length=MAX_NAME_LENGTH)] | None = None
    """Version of the Model served (spec.version of the Model object)."""
    model_digest: Annotated[str, Field(max_length=71)] | None = None
    """Verified artifact digest of the Model served."""
    environment: EnvironmentRecord | None = None
    """The environment (name, version, image by digest) the model server runs on, if any."""


class TrafficChange(ApiModel):
    """The last change of the applied split (the traffic.changed CloudEvent is implied by it)."""

    at: Timestamp
    """When the new split became applied."""
    previous_traffic: PercentMap = Field(default_factory=dict)
    """Live traffic applied before."""
    previous_mirror: PercentMap = Field(default_factory=dict)
    """Mirroring applied before."""


class OnlineEndpointStatus(ApiModel):
    """Observed state of the endpoint, written by the operator only."""

    url: Annotated[str, Field(max_length=MAX_URI_LENGTH)] | None = None
    """Scoring URL inside the cluster (or through the Gateway)."""
    traffic: PercentMap = Field(default_factory=dict)
    """Traffic split currently applied by the router or HTTPRoute; absent until one is (no
    router has served any yet)."""
    mirror: PercentMap = Field(default_factory=dict)
    """Mirroring currently applied."""
    last_traffic_change: TrafficChange | None = None
    """When the applied split last changed, and from what."""
    deployments: Annotated[
        list[DeploymentStatus], ListMap("name"), Field(max_length=MAX_DEPLOYMENTS)
    ] = Field(default_factory=list)
    """Per-deployment readiness."""
    conditions: Conditions = Field(default_factory=list)
    """Standard conditions: Ready, Progressing, Degraded, their kstatus mirrors Reconciling and
    Stalled, and DriftDetected with drift on."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    message: Message | None = None
    """Human-readable summary."""
    rollout: RolloutStatus | None = None
    """The progressive rollout of spec.rollout: phase, step, split and metric verdicts."""


ONLINE_ENDPOINT = KindDescriptor(
    kind=KIND_ONLINE_ENDPOINT,
    plural=PLURAL_ONLINE_ENDPOINTS,
    singular="onlineendpoint",
    short_names=("mle", "oe"),
    spec_model=OnlineEndpointSpec,
    status_model=OnlineEndpointStatus,
    description=(
        "OnlineEndpoint serves one or more Model deployments behind a stable URL, with a"
        " traffic split, mirroring and optional key authentication."
    ),
    printer_columns=(
        PrinterColumn("URL", ".status.url", description="Scoring URL"),
        PrinterColumn(
            "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready"
        ),
        PrinterColumn("Traffic", ".status.traffic", description="Applied traffic split"),
        PrinterColumn("Rollout", ".status.rollout.phase", description="Rollout phase"),
        AGE_COLUMN,
    ),
)
