"""When a `Pipeline` runs by itself: cron schedules and triggers (drift, new data).

The spec side (api/pipeline.py holds them in `spec.schedules` and `spec.triggers`) and the
bookkeeping the Pipeline controller keeps per schedule and trigger in the status: the debounce
state that makes "one drift episode → exactly one run" survive an operator restart
(docs/pipelines.md §5).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from mlkube.api.batch import ConcurrencyPolicy, Cron, ObjectName, TimeZone
from mlkube.api.common import ApiModel, Digest, DnsLabel, Message, Timestamp, Uri
from mlkube.api.duration import Duration
from mlkube.api.markers import Rule
from mlkube.api.pipeline_params import MAX_PARAMETER_VALUE as MAX_PARAMETER_VALUE
from mlkube.api.pipeline_params import MAX_PARAMETERS as MAX_PARAMETERS
from mlkube.api.pipeline_params import ParameterValue as ParameterValue
from mlkube.api.pipeline_params import ParameterValues as ParameterValues

MSG_TRIGGER_ONE = "a trigger needs exactly one of onDrift, onNewData"


class PipelineSchedule(ApiModel):
    """A cron schedule that starts a run per scheduled time (never twice for one time)."""

    name: DnsLabel
    """Schedule name, unique in the pipeline; part of its runs' names."""
    cron: Cron
    """Five-field cron expression (minute hour day month weekday) or @hourly, @daily, ..."""
    time_zone: TimeZone = "UTC"
    """IANA time zone the cron expression is read in, e.g. Europe/Paris (default UTC)."""
    concurrency_policy: ConcurrencyPolicy = "Forbid"
    """While a run of this schedule is active: Allow another, Forbid (skip), Replace (cancel it)."""
    parameters: ParameterValues = Field(default_factory=dict)
    """Parameter values of the runs."""
    suspend: bool = False
    """Stop starting runs."""
    successful_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Succeeded runs of this schedule to keep."""
    failed_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """Failed or cancelled runs of this schedule to keep."""


class OnDrift(ApiModel):
    """Start a run when drift is detected on an endpoint (one run per drift episode)."""

    endpoint: ObjectName
    """OnlineEndpoint in the namespace."""
    deployment: DnsLabel | None = None
    """Only this deployment's drift; any deployment's when omitted."""
    cooldown: Duration = "1h"
    """No new run within this long of the last one (default 1h)."""
    max_runs_per_day: Annotated[int, Field(ge=1, le=100)] = 3
    """At most this many runs per day (default 3)."""


class OnNewData(ApiModel):
    """Start a run when the content under a URI prefix changes (compared by content digest)."""

    uri: Uri
    """The prefix to watch."""
    poll_interval: Duration = "5m"
    """How often it is listed (default 5m)."""


class PipelineTrigger(ApiModel):
    """An event that starts a run: drift on an endpoint or new data under a prefix."""

    kube_validations = (Rule("has(self.onDrift) != has(self.onNewData)", message=MSG_TRIGGER_ONE),)

    name: DnsLabel
    """Trigger name, unique in the pipeline; part of its runs' names."""
    parameters: ParameterValues = Field(default_factory=dict)
    """Parameter values of the runs."""
    on_drift: OnDrift | None = None
    """Fire on a drift episode."""
    on_new_data: OnNewData | None = None
    """Fire on changed data."""

    @model_validator(mode="after")
    def _one_event(self) -> PipelineTrigger:
        if (self.on_drift is None) == (self.on_new_data is None):
            raise ValueError(f"trigger {self.name}: {MSG_TRIGGER_ONE}")
        return self


class PipelineScheduleStatus(ApiModel):
    """What one schedule last did."""

    name: DnsLabel
    """Schedule name."""
    last_schedule_time: Timestamp | None = None
    """The scheduled time of the last run started."""
    next_schedule_time: Timestamp | None = None
    """The next time a run will start."""
    last_run: ObjectName | None = None
    """Name of the last run started."""
    message: Message | None = None
    """Why the last time was skipped, if it was."""


class PipelineTriggerStatus(ApiModel):
    """What one trigger last did (its debounce state)."""

    name: DnsLabel
    """Trigger name."""
    last_fired: Timestamp | None = None
    """When it last started a run."""
    last_run: ObjectName | None = None
    """Name of the last run it started."""
    fired_today: Annotated[int, Field(ge=0)] = 0
    """Runs started since dayStarted."""
    day_started: Timestamp | None = None
    """Start of the current day window for maxRunsPerDay."""
    last_digest: Digest | None = None
    """onNewData: the content digest last seen."""
    last_episode: Timestamp | None = None
    """onDrift: startedAt of the drift episode that last fired."""
    message: Message | None = None
    """Why it last refused to fire, if it did."""
