"""The `Model` kind: one registered model version, its artifact, signature and lineage.

A new version is a new object, so identity (modelName, version, framework) and the artifact are
immutable; the baseline can be set once; properties are add-only. Those rules live in CEL so
the API server enforces them for every client (kubectl, GitOps, the CLI), not only the operator.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from mlkube.api.common import (
    MAX_MAP_ENTRIES,
    MAX_SHORT_TEXT,
    MAX_URI_LENGTH,
    ApiModel,
    ArtifactRef,
    Conditions,
    Digest,
    DnsLabel,
    LabelValue,
    Message,
    ObjectReference,
    ShortText,
    Text,
    Timestamp,
    Uri,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.markers import ListMap, Rule, immutable
from mlkube.contract import KIND_MODEL, PLURAL_MODELS

Framework = Literal["sklearn", "onnx", "mlflow", "custom"]
FRAMEWORKS: tuple[str, ...] = get_args(Framework)
# Open Inference Protocol (V2) tensor datatypes.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
DATATYPES: tuple[str, ...] = get_args(Datatype)
ModelPhase = Literal["Pending", "Verifying", "Ready", "Failed"]
MODEL_PHASES: tuple[str, ...] = get_args(ModelPhase)

RELATIVE_PATH_PATTERN = r"^[^/].*$"
NO_PARENT_SEGMENTS = "!self.matches('(^|/)[.][.](/|$)')"
RelativePath = Annotated[
    str,
    Field(min_length=1, max_length=1024, pattern=RELATIVE_PATH_PATTERN),
    Rule(NO_PARENT_SEGMENTS, message="path must stay inside the artifact (no '..' segments)"),
]
Identifier = Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _reject_parent_segments(path: str | None) -> str | None:
    # Mirrors the CEL rule so the CLI and the operator reject the same paths as the server.
    if path is not None and ".." in path.split("/"):
        raise ValueError("path must stay inside the artifact (no '..' segments)")
    return path


class Entrypoint(ApiModel):
    """A scoring script inside the artifact, Azure ML style: init() once, then run(data)."""

    path: RelativePath
    """Script path relative to the artifact root, e.g. score.py or src/score.py."""
    init_function: Identifier = "init"
    """Function called once after the model files are in place."""
    run_function: Identifier = "run"
    """Function called for every request with the decoded payload."""

    _check_path = field_validator("path")(_reject_parent_segments)


class TensorSpec(ApiModel):
    """One named input or output tensor (Open Inference Protocol V2 metadata)."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT)]
    """Tensor name as clients send it."""
    datatype: Datatype
    """V2 datatype: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES."""
    shape: Annotated[list[Annotated[int, Field(ge=-1)]], Field(max_length=32)]
    """Dimensions; -1 marks a variable dimension such as the batch size."""


TensorList = Annotated[list[TensorSpec], ListMap("name"), Field(max_length=1024)]


class Signature(ApiModel):
    """The model's input and output tensors."""

    inputs: TensorList = Field(default_factory=list)
    """Input tensors."""
    outputs: TensorList = Field(default_factory=list)
    """Output tensors."""


class DatasetRef(ApiModel):
    """A dataset the model was trained or evaluated on."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT)]
    """Dataset name, unique within the lineage."""
    uri: Uri
    """Where the dataset lives."""
    digest: Digest | None = None
    """Content digest of the dataset, `sha256:<hex>`."""


class CodeRef(ApiModel):
    """The source code that produced the model."""

    repository: Annotated[str, Field(min_length=1, max_length=MAX_URI_LENGTH)]
    """Repository URL, e.g. https://git.example.com/team/credit.git."""
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]
    """Commit hash (7 to 64 lowercase hex characters)."""
    path: Annotated[str, Field(max_length=1024)] | None = None
    """Path of the training code inside the repository."""


class RunRef(ApiModel):
    """The training run that produced the model."""

    id: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT)]
    """Run identifier in the tracking system."""
    uri: Uri | None = None
    """Link to the run."""
    system: ShortText | None = None
    """Tracking system, e.g. mlflow, wandb or azureml."""


class Environment(ApiModel):
    """The software environment of the training run."""

    image: Annotated[str, Field(min_length=1, max_length=512)]
    """Container image, ideally pinned by digest."""
    name: DnsLabel | None = None
    """The mlkube Environment the run used (docs/environments.md), when it used one."""
    version: LabelValue | None = None
    """Its version."""


class Lineage(ApiModel):
    """Where the model came from: data, code, run, environment, parameters, metrics."""

    datasets: Annotated[list[DatasetRef], ListMap("name"), Field(max_length=32)] = Field(
        default_factory=list
    )
    """Datasets used for training and evaluation."""
    code: CodeRef | None = None
    """Training code."""
    run: RunRef | None = None
    """Training run."""
    environment: Environment | None = None
    """Training environment."""
    parameters: Annotated[dict[str, Text], Field(max_length=MAX_MAP_ENTRIES)] = Field(
        default_factory=dict
    )
    """Training hyperparameters, as strings."""
    metrics: Annotated[dict[str, float], Field(max_length=MAX_MAP_ENTRIES)] = Field(
        default_factory=dict
    )
    """Evaluation metrics, e.g. {auc: 0.91}."""


class ModelSpec(ApiModel):
    """A registered model version: artifact, framework, signature, lineage (one per version)."""

    kube_validations = (
        Rule(
            "!has(oldSelf.baseline) || has(self.baseline)",
            message="spec.baseline cannot be removed once set",
        ),
        Rule(
            "!has(oldSelf.properties) || size(oldSelf.properties) == 0 || has(self.properties)",
            message="spec.properties is add-only: existing keys cannot be removed",
        ),
        Rule(
            "self.framework != 'custom' || has(self.entrypoint)",
            message="spec.entrypoint is required when spec.framework is custom",
            field_path=".entrypoint",
        ),
    )

    model_name: Annotated[
        DnsLabel,
        immutable("spec.modelName is immutable: register a new Model object for another model"),
    ]
    """Name shared by all versions of the model (a DNS label), e.g. credit-risk."""
    version: Annotated[
        LabelValue,
        immutable("spec.version is immutable: register a new Model object for a new version"),
    ]
    """Version of the model, e.g. 3 or 2024.06.1 (a label value)."""
    framework: Annotated[
        Framework,
        immutable("spec.framework is immutable: register a new Model object instead"),
    ]
    """Framework of the artifact: sklearn, onnx, mlflow or custom (needs an entrypoint)."""
    artifact: Annotated[
        ArtifactRef,
        immutable("spec.artifact is immutable: register a new Model object for a new artifact"),
    ]
    """The model files."""
    entrypoint: Entrypoint | None = None
    """Scoring script for custom models (optional for the built-in frameworks)."""
    signature: Signature | None = None
    """Input and output tensors, used for request validation and V2 metadata."""
    baseline: Annotated[
        ArtifactRef | None,
        immutable("spec.baseline is immutable once set: register a new Model object"),
    ] = None
    """Reference data profile for drift detection; may be set once, then never changed."""
    lineage: Lineage | None = None
    """Provenance of the model."""
    description: Text | None = None
    """Free-text description."""
    properties: Annotated[
        dict[str, Annotated[str, Field(max_length=MAX_SHORT_TEXT)]],
        Field(max_length=MAX_MAP_ENTRIES),
        Rule(
            "oldSelf.all(k, k in self && self[k] == oldSelf[k])",
            message="spec.properties is add-only: existing keys cannot be removed or changed",
        ),
    ] = Field(default_factory=dict)
    """Add-only key/value metadata (tags that filter are labels; these are facts)."""

    @model_validator(mode="after")
    def _require_entrypoint_for_custom(self) -> ModelSpec:
        # Mirrors the CEL rule above for clients that validate before sending.
        if self.framework == "custom" and self.entrypoint is None:
            raise ValueError("spec.entrypoint is required when spec.framework is custom")
        return self


class VerifiedArtifact(ApiModel):
    """What the verification Job found at the artifact URI."""

    digest: Digest | None = None
    """Computed digest, `sha256:<hex>`."""
    size: Annotated[int, Field(ge=0)] | None = None
    """Total size in bytes."""
    file_count: Annotated[int, Field(ge=0)] | None = None
    """Number of files."""
    verified_at: Timestamp | None = None
    """When the artifact was last verified."""


class ModelChange(ApiModel):
    """One audited change to the Model."""

    user: ShortText
    """Who made the change (from the admission request)."""
    time: Timestamp
    """When the change was made."""
    generation: Annotated[int, Field(ge=1)]
    """metadata.generation after the change."""
    changes: Annotated[list[ShortText], Field(max_length=32)] = Field(default_factory=list)
    """Changed field paths, e.g. spec.description."""


class ServingEnvironment(ApiModel):
    """An environment this Model is served or scored with (docs/environments.md §4)."""

    name: DnsLabel
    """Environment name."""
    version: LabelValue
    """Environment version (resolved, also for name@latest)."""
    image: Annotated[str, Field(min_length=1, max_length=512)]
    """The image the pods run, pinned by digest."""
    kind: Annotated[str, Field(min_length=1, max_length=63)]
    """OnlineEndpoint or BatchEndpoint."""
    endpoint: Annotated[str, Field(min_length=1, max_length=253)]
    """The endpoint (same namespace)."""
    deployment: DnsLabel
    """Its deployment that uses the environment."""


class ModelStatus(ApiModel):
    """Observed state of the Model, written by the operator only."""

    phase: ModelPhase | None = None
    """Pending, Verifying, Ready or Failed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Standard conditions: Ready, Reconciling (verifying or retrying), Stalled (failed)."""
    artifact: VerifiedArtifact | None = None
    """Verified digest, size and file count."""
    message: Message | None = None
    """Human-readable summary of the phase."""
    deployed_by: Annotated[list[ObjectReference], Field(max_length=256)] = Field(
        default_factory=list
    )
    """Endpoints and jobs that use this Model."""
    environments: Annotated[list[ServingEnvironment], Field(max_length=256)] = Field(
        default_factory=list
    )
    """Environments (name, version, image digest) the endpoints serve this Model with."""
    history: Annotated[list[ModelChange], Field(max_length=20)] = Field(default_factory=list)
    """The most recent changes, newest last."""
    created_by: ShortText | None = None
    """User who created the Model."""
    last_modified_by: ShortText | None = None
    """User who last changed the spec."""


MODEL = KindDescriptor(
    kind=KIND_MODEL,
    plural=PLURAL_MODELS,
    singular="model",
    short_names=("mlm",),
    spec_model=ModelSpec,
    status_model=ModelStatus,
    description=(
        "Model is one registered version of a machine learning model: its artifact, framework,"
        " signature and lineage. Register a new object for every new version."
    ),
    printer_columns=(
        PrinterColumn("Model", ".spec.modelName", description="Model name"),
        PrinterColumn("Version", ".spec.version", description="Model version"),
        PrinterColumn("Framework", ".spec.framework", description="Framework"),
        PrinterColumn("Phase", ".status.phase", description="Lifecycle phase"),
        PrinterColumn(
            "Digest", ".status.artifact.digest", description="Verified digest", priority=1
        ),
        AGE_COLUMN,
    ),
)
