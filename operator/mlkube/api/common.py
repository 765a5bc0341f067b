"""Building blocks shared by every mlkube kind: the base model, names, URIs, conditions.

Every kind's spec and status derive from `ApiModel`, so the Python attribute names are
snake_case while the wire (and the generated CRD) is camelCase, field docstrings become the
`description` that `kubectl explain` prints, and CEL rules can be declared on the class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from mlkube.api.markers import ListMap, Rule, add_rules

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Label values: versions end up in the mlkube.dev/version label, so they follow its rules.
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
URI_SCHEMES = ("s3", "gs", "https", "http", "pvc", "file")
URI_PATTERN = r"^(s3|gs|https?|pvc|file)://\S+$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# The Kubernetes resource.Quantity syntax, as in the core API's own OpenAPI schema.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

# Bounds keep the API server's CEL cost estimates finite and objects reasonably small.
MAX_URI_LENGTH = 2048
MAX_NAME_LENGTH = 63
MAX_SHORT_TEXT = 256
MAX_TEXT = 4096
MAX_MAP_ENTRIES = 64
# Every human-readable status message (conditions included): one bound, enforced by the CRD,
# by the status models below and by `bound_message`, so a long error never fails a status write.
MAX_MESSAGE = MAX_TEXT

DnsLabel = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS_LABEL_PATTERN)
]
LabelValue = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=LABEL_VALUE_PATTERN)
]
Uri = Annotated[str, Field(min_length=1, max_length=MAX_URI_LENGTH, pattern=URI_PATTERN)]
Digest = Annotated[str, Field(max_length=71, pattern=DIGEST_PATTERN)]
ShortText = Annotated[str, Field(max_length=MAX_SHORT_TEXT)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Message = Annotated[str, Field(max_length=MAX_MESSAGE)]
Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY_PATTERN)]
ConditionStatus = Literal["True", "False", "Unknown"]


def _check_timestamp(value: str) -> str:
    # Kept as text: the operator compares statuses as written, so a parse/format round trip
    # (".000Z" -> "Z") would turn an unchanged status into a patch.
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (RFC 3339 needs Z or an offset)")
    return value


Timestamp = Annotated[
    str,
    AfterValidator(_check_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 date-time, validated but kept as the exact text written."""

TRUNCATION_MARK = " [... {cut} characters cut ...] "


def bound_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to at most `limit` characters, keeping its head and its tail around a note.

    Errors name what failed first and the root cause last, so both ends are worth keeping.
    """
    if len(text) <= limit:
        return text
    mark = TRUNCATION_MARK.format(cut=len(text))  # an upper bound on the count, fixed below
    room = limit - len(mark)
    if room <= 0:
        return text[:limit]
    tail = room // 4
    head = room - tail
    mark = TRUNCATION_MARK.format(cut=len(text) - head - tail)
    return text[:head] + mark + (text[len(text) - tail :] if tail else "")


def _add_class_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    add_rules(schema, getattr(cls, "kube_validations", ()))


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, docstrings as descriptions.

    Declare object-level CEL rules with `kube_validations = (Rule(...), ...)`.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="forbid",
        json_schema_extra=_add_class_rules,
    )

    kube_validations: ClassVar[tuple[Rule, ...]] = ()

    def to_status(self) -> dict[str, Any]:
        """The fields that were set, camelCase, without nulls: a status (merge) patch."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


class Condition(ApiModel):
    """The standard Kubernetes condition (the metav1.Condition shape)."""

    type: Annotated[str, Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)]
    """Condition type in CamelCase, e.g. Ready, Progressing, Degraded."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)]
    """Machine-readable CamelCase reason for the last transition."""
    message: Message = ""
    """Human-readable details about the last transition."""
    last_transition_time: Timestamp
    """When the condition last changed status (RFC 3339)."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation the condition was computed from."""


Conditions = Annotated[list[Condition], ListMap("type"), Field(max_length=16)]


class ObjectReference(ApiModel):
    """A reference to another object, in the same namespace unless one is given."""

    kind: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
    """Kind of the referring object, e.g. OnlineEndpoint."""
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the object."""
    namespace: DnsLabel | None = None
    """Namespace of the object; the referrer's namespace when omitted."""


class ArtifactRef(ApiModel):
    """Where a set of files lives, and optionally the digest they must match."""

    uri: Uri
    """Location: s3://, gs://, https://, http://, pvc://<claim>/<path> or file:// (local dev)."""
    digest: Digest | None = None
    """Content digest `sha256:<hex>` over sorted relative paths and file contents."""


class EnvVar(ApiModel):
    """An environment variable for a container."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT, pattern=ENV_NAME_PATTERN)]
    """Variable name."""
    value: Text = ""
    """Variable value."""


ResourceList = Annotated[dict[str, int | Quantity], Field(max_length=16)]


class Resources(ApiModel):
    """Compute resources for a container, as in core/v1 ResourceRequirements."""

    requests: ResourceList | None = None
    """Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."""
    limits: ResourceList | None = None
    """Maximum resources, e.g. {cpu: "2", memory: 2Gi}."""
