"""The `EventSink` kind: where the operator delivers its CloudEvents (docs/notifications.md).

Knative's shapes where it has one (a destination is `uri` or `ref`; `delivery` is its
DeliverySpec with ISO-8601 durations), so people who know Knative's sinks read it at once;
no Knative is needed. The operator only reads the spec; status is its delivery record:
counters, the last failure, a 429's throttle and, after a 410, Ready=False reason SinkGone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mlkube.api.common import (
    MAX_URI_LENGTH,
    ApiModel,
    Conditions,
    DnsLabel,
    Message,
    Timestamp,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.duration import IsoDuration
from mlkube.api.markers import ListSet, Rule
from mlkube.contract import KIND_EVENT_SINK, PLURAL_EVENT_SINKS

SinkMode = Literal["binary", "structured"]
SinkFormat = Literal["cloudevents", "azureml"]
BackoffPolicy = Literal["exponential", "linear"]
MAX_FILTERS = 64
MAX_RETRY = 100
SINK_URI_PATTERN = r"^https?://[^\s/?#]+(/\S*)?$"
# A type, or a prefix ending in `*` ("dev.mlkube.model.*"); `*` alone: every type.
TYPE_PATTERN = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?\*?$"
PATH_PATTERN = r"^/\S*$"
MSG_ONE_DESTINATION = "set exactly one of uri and ref"

SinkUri = Annotated[str, Field(min_length=1, max_length=MAX_URI_LENGTH, pattern=SINK_URI_PATTERN)]
TypeFilter = Annotated[str, Field(min_length=1, max_length=256, pattern=TYPE_PATTERN)]


class ServiceReference(ApiModel):
    """A Service to send to: http://<name>.<namespace>.svc.<cluster domain>:<port><path>."""

    kind: Literal["Service"] = "Service"
    """Only Service (core/v1)."""
    api_version: Literal["v1"] = "v1"
    """Only v1."""
    name: DnsLabel
    """Name of the Service."""
    namespace: DnsLabel | None = None
    """Namespace of the Service; the EventSink's when omitted."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """The Service port; when omitted, its only port, else its port named http."""
    path: Annotated[str, Field(max_length=1024, pattern=PATH_PATTERN)] | None = None
    """HTTP path on the Service, e.g. /events; / when omitted."""


class Destination(ApiModel):
    """Where events go: an http(s) URI or a Service reference (exactly one)."""

    kube_validations = (Rule("has(self.uri) != has(self.ref)", message=MSG_ONE_DESTINATION),)

    uri: SinkUri | None = None
    """An http:// or https:// URL that accepts CloudEvents by POST."""
    ref: ServiceReference | None = None
    """A Service in the cluster, resolved to its cluster DNS name."""

    @model_validator(mode="after")
    def _one_destination(self) -> Destination:
        if (self.uri is None) == (self.ref is None):
            raise ValueError(MSG_ONE_DESTINATION)
        return self


class SecretKeySelector(ApiModel):
    """One key of a Secret in the EventSink's namespace."""

    name: DnsLabel
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """The key holding the HMAC key bytes."""


class Signing(ApiModel):
    """HMAC-SHA256 signing: X-Mlkube-Signature-Timestamp and X-Mlkube-Signature headers."""

    secret_ref: SecretKeySelector
    """The Secret key holding the signing key (read by the operator, never copied)."""


class Delivery(ApiModel):
    """Retries and timeouts, in Knative's DeliverySpec shape."""

    retry: Annotated[int, Field(ge=0, le=MAX_RETRY)] = 10
    """Attempts after the first; then the event goes to deadLetterSink, or is dropped."""
    backoff_policy: BackoffPolicy = "exponential"
    """exponential (delay = backoffDelay * 2^n) or linear (delay = backoffDelay * n)."""
    backoff_delay: IsoDuration = "PT0.5S"
    """The base delay between attempts, an ISO-8601 duration (PT0.5S, PT2S, PT1M)."""
    timeout: IsoDuration = "PT10S"
    """How long one attempt may take, an ISO-8601 duration."""
    dead_letter_sink: Destination | None = None
    """Where events that exhausted their retries (or were refused with a 4xx) go."""


class EventSinkSpec(Destination):
    """Which of the operator's CloudEvents go where, in which format, signed how."""

    types: Annotated[list[TypeFilter], ListSet(), Field(max_length=MAX_FILTERS)] = Field(
        default_factory=list
    )
    """Event types to send; a trailing `*` matches a prefix (dev.mlkube.model.*); empty: all."""
    namespaces: Annotated[list[DnsLabel], ListSet(), Field(max_length=MAX_FILTERS)] = Field(
        default_factory=list
    )
    """Only meaningful for a sink in the operator's own namespace, which may receive events
    of any namespace: the namespaces whose events it gets (empty: all). A sink in any other
    namespace always gets that namespace's events only, whatever this says."""
    mode: SinkMode = "binary"
    """CloudEvents HTTP binding: binary (ce-* headers, data as body) or structured (one JSON)."""
    format: SinkFormat = "cloudevents"
    """cloudevents, or azureml: Event Grid's schema with Azure ML's five event types and data
    field names (other types are not sent)."""
    signing: Signing | None = None
    """HMAC-SHA256 signing of each request; unsigned when omitted."""
    delivery: Delivery | None = None
    """Retries, backoff, timeout and dead letter sink; the defaults when omitted."""


class DeliveryFailure(ApiModel):
    """The last failed attempt."""

    time: Timestamp
    """When it failed."""
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    """The HTTP status answered; absent for timeouts and connection errors."""
    message: Message = ""
    """What went wrong."""


class EventSinkStatus(ApiModel):
    """Delivery state of the sink, written by the operator only (rate-limited, on change)."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Ready (resolved and not gone; False reason SinkGone after a 410), Reconciling, Stalled."""
    sink_uri: Annotated[str, Field(max_length=MAX_URI_LENGTH)] | None = None
    """The URL events are sent to (spec.uri, or the Service reference resolved)."""
    dead_letter_sink_uri: Annotated[str, Field(max_length=MAX_URI_LENGTH)] | None = None
    """The dead letter sink's URL, when one is set."""
    delivered: Annotated[int, Field(ge=0)] | None = None
    """Events acknowledged (2xx) by the sink."""
    failed: Annotated[int, Field(ge=0)] | None = None
    """Events given up on (dead-lettered or dropped)."""
    pending: Annotated[int, Field(ge=0)] | None = None
    """Events waiting for delivery (in the outbox)."""
    last_delivered_at: Timestamp | None = None
    """When the sink last acknowledged an event."""
    last_failure: DeliveryFailure | None = None
    """The last failed attempt."""
    throttled_until: Timestamp | None = None
    """Sends paused until then: the sink answered 429 with Retry-After."""
    message: Message | None = None
    """Human-readable summary."""


EVENT_SINK = KindDescriptor(
    kind=KIND_EVENT_SINK,
    plural=PLURAL_EVENT_SINKS,
    singular="eventsink",
    short_names=("mlsink",),
    spec_model=EventSinkSpec,
    status_model=EventSinkStatus,
    description=(
        "EventSink receives the operator's CloudEvents (model, endpoint, rollout, drift, batch"
        " and pipeline lifecycle) over HTTP, at least once, from a durable outbox."
    ),
    printer_columns=(
        PrinterColumn("Sink", ".status.sinkUri", description="Where events are sent"),
        PrinterColumn(
            "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready"
        ),
        PrinterColumn("Delivered", ".status.delivered", "integer", "Events delivered"),
        PrinterColumn("Failed", ".status.failed", "integer", "Events given up on"),
        PrinterColumn("Pending", ".status.pending", "integer", "Events waiting"),
        PrinterColumn(
            "Reason",
            '.status.conditions[?(@.type=="Ready")].reason',
            description="Why (e.g. SinkGone)",
            priority=1,
        ),
        AGE_COLUMN,
    ),
)
