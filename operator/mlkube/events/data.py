"""The `data` of each catalogue event, as pydantic models (camelCase on the wire).

They are the contract with consumers: each is rendered to a JSON Schema in docs/events/ by
hack/generate, so a change here without a new version shows up as a diff in review. Fields are
only ever added within a version; removing or retyping one needs a `.v2` type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class EventData(BaseModel):
    """Base of every event's data: camelCase on the wire, docstrings as descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )

    def to_json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


Split = dict[str, int]


class RunRef(EventData):
    """The training run that produced the model (the Model's spec.lineage.run)."""

    id: str
    """Run identifier in the tracking system."""
    uri: str | None = None
    """Link to the run."""
    system: str | None = None
    """Tracking system, e.g. mlflow."""


class Lineage(EventData):
    """The part of the Model's lineage consumers route on."""

    run: RunRef | None = None
    """Training run."""


class ModelRegistered(EventData):
    """A Model became Ready for the first time: its artifact is verified and it can be served."""

    name: str
    """Model name shared by its versions (spec.modelName)."""
    version: str
    """Model version (spec.version)."""
    framework: str
    """sklearn, onnx, mlflow or custom."""
    uri: str
    """Artifact location."""
    digest: str | None = None
    """Verified artifact digest, sha256:<hex>."""
    lineage: Lineage | None = None
    """Where the model came from."""
    properties: dict[str, str] = Field(default_factory=dict)
    """The Model's spec.properties."""
    labels: dict[str, str] = Field(default_factory=dict)
    """The Model object's labels (its tags)."""


class ModelVerified(EventData):
    """A Model's artifact digest was verified (once per distinct digest)."""

    name: str
    """Model name (spec.modelName)."""
    version: str
    """Model version."""
    digest: str
    """Verified artifact digest, sha256:<hex>."""
    size: int | None = None
    """Artifact bytes."""
    file_count: int | None = None
    """Files in the artifact."""


class ModelDeleted(EventData):
    """A Model object was deleted."""

    name: str
    """Model name (spec.modelName)."""
    version: str
    """Model version."""


class DeploymentReady(EventData):
    """An endpoint deployment serves a Model with all its replicas ready (once per deployment
    and Model)."""

    endpoint: str
    """OnlineEndpoint name."""
    deployment: str
    """Deployment name."""
    model: str
    """Model object served."""
    model_version: str | None = None
    """Version of that Model (when the status records it)."""
    model_digest: str | None = None
    """Artifact digest served (when the status records it)."""
    url: str | None = None
    """The endpoint's scoring URL."""
    replicas: int
    """Ready replicas."""


class PreviousSplit(EventData):
    """The split applied before the change."""

    traffic: Split = Field(default_factory=dict)
    """Live traffic, deployment to percent."""
    mirror: Split = Field(default_factory=dict)
    """Mirrored traffic, deployment to percent."""


class TrafficChanged(EventData):
    """The split the routers (or the HTTPRoute) apply changed."""

    endpoint: str
    """OnlineEndpoint name."""
    traffic: Split
    """Live traffic now, deployment to percent."""
    mirror: Split = Field(default_factory=dict)
    """Mirrored traffic now."""
    previous: PreviousSplit
    """The split before."""


class RolloutBase(EventData):
    """What every rollout event carries: which rollout revision, of what."""

    endpoint: str
    """OnlineEndpoint name."""
    stable: str | None = None
    """Stable deployment (compared against, rolled back to)."""
    candidate: str | None = None
    """Candidate deployment (rolled in)."""
    revision: str
    """Rollout revision (sha256 over the plan, the split, the candidate)."""
    started_at: str | None = None
    """When this run of the revision started (a retry starts a new run)."""


class RolloutStarted(RolloutBase):
    """A rollout revision started (or was retried)."""

    steps: int
    """Steps in the plan."""
    start_traffic: Split = Field(default_factory=dict)
    """The split the rollout started from (restored by an abort)."""


class RolloutStep(RolloutBase):
    """A rollout reached a step."""

    step_index: int
    """Index of the step (0-based)."""
    steps: int
    """Steps in the plan."""
    step: dict[str, Any] | None = None
    """The step as written in spec.rollout.steps (when the spec still holds this revision)."""
    weight: int | None = None
    """Candidate's live weight at this step, when known."""
    mirror: int | None = None
    """Candidate's mirror percent at this step, when known."""


class RolloutPaused(RolloutBase):
    """A rollout paused: a pause step without duration, or an inconclusive analysis."""

    step_index: int
    """Step at which it paused."""
    reason: str
    """Pause, Inconclusive, ..."""
    message: str | None = None
    """Human-readable detail."""


class RolloutPromoted(RolloutBase):
    """A rollout promoted: the spec's split runs."""

    traffic: Split = Field(default_factory=dict)
    """Live traffic now."""
    mirror: Split = Field(default_factory=dict)
    """Mirrored traffic now."""


class RolloutAborted(RolloutBase):
    """A rollout aborted: the candidate's traffic went to 0 at once."""

    metric: str | None = None
    """The metric that failed (absent for a manual abort)."""
    value: float | None = None
    """Its measured value."""
    condition: str | None = None
    """The condition it was judged by."""
    message: str | None = None
    """Human-readable detail."""
    traffic: Split = Field(default_factory=dict)
    """Live traffic now (the split the rollout started from)."""


class DriftFeature(EventData):
    """One feature's drift score against its threshold."""

    name: str
    """Feature name."""
    method: str
    """wasserstein, ks, psi or jensenshannon."""
    score: float | None = None
    """Score over the window."""
    threshold: float
    """Threshold; drifted when score >= threshold."""
    drifted: bool = False
    """Whether the feature drifted."""


class DriftDetected(EventData):
    """A drift episode started on a deployment."""

    endpoint: str
    """OnlineEndpoint name."""
    deployment: str
    """Deployment name."""
    model: str
    """Model object served."""
    drifted_ratio: float | None = None
    """Share of evaluated features that drifted (absent once the episode is over)."""
    top_features: list[DriftFeature] = Field(default_factory=list)
    """Features with the highest score relative to their threshold."""
    started_at: str
    """When the episode started."""


class DriftEnded(EventData):
    """A drift episode ended (enough clean evaluations over the cooldown)."""

    endpoint: str
    """OnlineEndpoint name."""
    deployment: str
    """Deployment name."""
    model: str
    """Model object served."""
    started_at: str
    """When the episode started."""
    ended_at: str
    """When it ended."""


class Counts(EventData):
    """Outcome counts."""

    total: int = 0
    """All."""
    succeeded: int = 0
    """Succeeded."""
    failed: int = 0
    """Failed."""


class BatchCounts(EventData):
    """A BatchJob's mini-batches and items by outcome."""

    mini_batches: Counts = Field(default_factory=Counts)
    """Mini-batches."""
    items: Counts = Field(default_factory=Counts)
    """Items (files or rows)."""


class BatchJobPhase(EventData):
    """A BatchJob started scoring, succeeded or failed (Failed or Cancelled)."""

    name: str
    """BatchJob name."""
    endpoint: str
    """BatchEndpoint name."""
    deployment: str | None = None
    """Deployment that runs."""
    model: str | None = None
    """Model object it scores with."""
    phase: str
    """The job's phase: Running (started), Succeeded, Failed or Cancelled."""
    counts: BatchCounts = Field(default_factory=BatchCounts)
    """Mini-batches and items by outcome."""
    output_uri: str | None = None
    """Output folder."""
    message: str | None = None
    """Human-readable summary."""


class PipelineRunPhase(EventData):
    """A PipelineRun started, succeeded or failed (Failed or Cancelled)."""

    name: str
    """PipelineRun name."""
    pipeline: str
    """Pipeline name."""
    phase: str
    """The run's phase: Running (started), Succeeded, Failed or Cancelled."""
    trigger: str | None = None
    """What started it: manual, schedule, drift or newData."""
    produced_models: list[str] = Field(default_factory=list)
    """Models created by its registerModel steps."""
    message: str | None = None
    """Human-readable summary."""
