"""One tick of an endpoint's rollout loop (docs/rollouts.md §7): measure, decide, apply.

Each tick reads the endpoint afresh, takes the measurements that are due through the providers
(`controllers.rollout_providers`; their state — the previous router scrape — lives in
`ProviderMemory`, in memory only: a restarted operator takes a fresh baseline), asks the
routers whether they serve the running split, runs the pure state machine
(`reconcile.rollout_plan.advance`) and writes `status.rollout` only when it changed (an idle
tick costs no write). When the rollout state changed, the endpoint reconcile runs: it builds
the children from the new running split (router config pushed to the routers, the candidate
scaled to 0 after an abort's delay) and sets the conditions. The Events of the plan and of the
reconcile are returned, with the delay until the next tick (None: nothing left to do).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout import RolloutMetric
from mlkube.api.rollout_status import RolloutRequest, RolloutStatus, parse_rollout_request
from mlkube.builders.endpoint import uses_router
from mlkube.builders.endpoint_status import is_blocked
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST, API_VERSION, KIND_ONLINE_ENDPOINT
from mlkube.controllers import endpoint as sync
from mlkube.controllers.endpoint_status_io import observe_deployments
from mlkube.controllers.kube import Kube
from mlkube.controllers.rollout_providers import ProviderState, measure_metric
from mlkube.controllers.router_poll import verify_traffic
from mlkube.reconcile import rollout_measure
from mlkube.reconcile.drift_episodes import parse_time
from mlkube.reconcile.rollout_analysis import interval, is_due
from mlkube.reconcile.rollout_effective import read_rollout
from mlkube.reconcile.rollout_measure import RawMeasurement
from mlkube.reconcile.rollout_plan import Observations, advance, revision

ACTIVE: Final = ("Progressing", "Paused")
APPLY_POLL: Final = 1.0  # seconds between looks while the routers load a new split
FOLLOW_UP: Final = 120.0
QUICK: Final = 0.2
Events = list[tuple[str, str, str]]


Window = tuple[datetime.datetime, ProviderState | None]  # when it was taken, the scrape


@dataclass
class ProviderMemory:
    """Provider state per endpoint uid, by (window key, metric name): what the previous scrape
    saw and when. Every step (and a new rollout, a retry) has another window key, so its metrics
    begin with a fresh baseline. Ticks of different endpoints run in threads at once: each
    touches only its own endpoint's map (under that endpoint's lock), and the outer map only
    through single dict operations."""

    states: dict[str, dict[tuple[str, str], Window]] = field(default_factory=dict)

    def get(self, uid: str, key: str, metric: str) -> Window | None:
        return self.states.get(uid, {}).get((key, metric))

    def put(self, uid: str, key: str, metric: str, window: Window) -> None:
        self.states.setdefault(uid, {})[(key, metric)] = window

    def forget(self, uid: str, keep: str | None = None) -> None:
        """Drop the endpoint's windows, but those of the window key `keep`."""
        if keep is None:
            self.states.pop(uid, None)
            return
        windows = self.states.get(uid) or {}
        for stale in [k for k in windows if k[0] != keep]:
            del windows[stale]


@dataclass(frozen=True)
class RolloutOutcome:
    delay: float | None
    events: Events = field(default_factory=list)
    subject: Mapping[str, Any] | None = None


def windowed(metric: RolloutMetric) -> bool:
    """A router metric: measured over the window since the previous scrape."""
    builtin = metric.provider.builtin
    return builtin is not None and builtin.type in rollout_measure.ROUTER_TYPES


def window_key(uid: str, rollout: RolloutStatus) -> str:
    """Windows restart with every step: a measurement covers traffic at one split only."""
    return f"{uid}/{rollout.started_at}/{rollout.step_index}/{rollout.step_started_at}"


def take_measurements(
    kube: Kube,
    config: OperatorConfig,
    obj: dict[str, Any],
    spec: OnlineEndpointSpec,
    rollout: RolloutStatus,
    memory: ProviderMemory,
    now: datetime.datetime,
) -> tuple[dict[str, RawMeasurement], float | None]:
    """The due metrics' measurements, and how long until a metric whose window only just
    started (a baseline after a restart) can be measured (None: none waits).

    A running router metric without a window takes its baseline at once, so its first
    measurement, one interval later, covers a whole interval of traffic at the step's split;
    one whose window is younger than half an interval waits for it.
    """
    assert spec.rollout is not None
    uid = str(obj["metadata"]["uid"])
    key = window_key(uid, rollout)
    memory.forget(uid, keep=key)
    defs = {m.name: m for m in spec.rollout.metrics}
    running = {m.name for m in rollout.metrics if m.phase == "Running" and m.name in defs}
    due = {m.name for m in rollout.metrics if m.name in running and is_due(m, now)}
    taken: dict[str, RawMeasurement] = {}
    wait: float | None = None
    for name in sorted(running):
        metric = defs[name]
        since, state = memory.get(uid, key, name) or (None, None)
        if name not in due and (since is not None or not windowed(metric)):
            continue
        seconds = interval(metric).total_seconds()
        age = None if since is None else (now - since).total_seconds()
        if name in due and windowed(metric) and age is not None and age < seconds / 2:
            wait = seconds - age if wait is None else min(wait, seconds - age)
            continue
        raw, new_state = measure_metric(obj, metric, kube, config, state)
        memory.put(uid, key, name, (now, new_state))
        if name in due and not raw.baseline:
            taken[name] = raw  # the analysis reads the provider's answer as it is
        elif name in due:
            wait = seconds if wait is None else min(wait, seconds)
    return taken, wait


def candidate_available(kube: Kube, owner: EndpointRef, spec: OnlineEndpointSpec) -> bool:
    assert spec.rollout is not None
    health = observe_deployments(kube, owner, spec).get(spec.rollout.candidate)
    return health is not None and health.available and health.replicas > 0


def dump(rollout: RolloutStatus | None) -> dict[str, Any] | None:
    if rollout is None:
        return None
    return dict(rollout.model_dump(mode="json", by_alias=True, exclude_none=True))


def read_request(text: str | None) -> RolloutRequest | None:
    """The CLI's request, None when there is none or it is malformed (a human wrote it by
    hand: the plan acts on well-formed requests only)."""
    try:
        return parse_rollout_request(text) if text else None
    except ValueError:
        return None


def rollout_pass(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    memory: ProviderMemory,
    now: datetime.datetime,
) -> RolloutOutcome:
    """One tick (see the module docstring); the caller holds the endpoint's lock."""
    obj = sync.get_endpoint(kube, namespace, name)
    if obj is None:
        return RolloutOutcome(None)
    meta = obj["metadata"]
    status = obj.get("status") or {}
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return RolloutOutcome(None)  # the reconcile reports it; a spec change restarts the loop
    if spec.rollout is None or is_blocked(status) or not status.get("observedGeneration"):
        return RolloutOutcome(None)  # nothing to roll, or children not applied: events restart
    owner = EndpointRef(name=name, namespace=namespace, uid=str(meta["uid"]))
    previous = read_rollout(status)
    current = previous is not None and previous.revision == revision(spec)
    measurements: dict[str, RawMeasurement] = {}
    wait = None
    active = current and previous is not None and previous.phase in ACTIVE
    if active and previous is not None:
        measurements, wait = take_measurements(kube, config, obj, spec, previous, memory, now)
    running = sync.running_spec(obj, spec, sync.format_now(now))
    stale = current and stale_traffic(running, status)
    split_applied = False
    if (active or stale) and uses_router(spec):
        split_applied = verify_traffic(kube, owner, running, config).applied is True
    elif active or stale:
        split_applied = True  # a Gateway applies what the HTTPRoute says (no way to ask)
    annotations = meta.get("annotations") or {}
    seen = Observations(
        applied_traffic=dict(status.get("traffic") or {}),
        candidate_available=candidate_available(kube, owner, spec),
        split_applied=split_applied,
        measurements=measurements,
        request=read_request(annotations.get(ANNOTATION_ROLLOUT_REQUEST)),
    )
    plan = advance(spec, previous, seen, now)
    events: Events = [(e.type, e.reason, e.message) for e in plan.events]
    subject = {"apiVersion": API_VERSION, "kind": KIND_ONLINE_ENDPOINT, "metadata": meta}
    changed = dump(plan.rollout) != status.get("rollout")
    if changed:
        kube.patch(
            API_VERSION,
            KIND_ONLINE_ENDPOINT,
            name,
            {"status": {"rollout": dump(plan.rollout)}},
            namespace,
            subresource="status",
        )
        outcome = sync.reconcile(kube, config, namespace, name, sync.format_now(now))
        events += outcome.events
        # Routers still loading the new split: look again soon, status.traffic follows.
        pending = outcome.retry_message is not None
    elif stale and split_applied:
        events += sync.refresh_status(kube, config, namespace, name, sync.format_now(now)).events
        pending = False
    else:
        pending = stale
    started = plan.rollout
    if started is None or started.phase not in ACTIVE:
        memory.forget(str(meta["uid"]))  # nothing measures any more
    elif is_new_window(started, previous):
        # A step just started its metrics: their windows start now, not at the next tick.
        fresh = sync.get_endpoint(kube, namespace, name) or obj
        take_measurements(kube, config, fresh, spec, started, memory, now)
    delay = plan.delay
    if delay is not None and wait is not None:
        delay = max(delay, wait)
    if pending and (delay is not None or recently_finished(plan.rollout, now)):
        delay = min(delay if delay is not None else APPLY_POLL, APPLY_POLL)
    if changed and delay is not None and plan.rollout is not None and plan.rollout.phase in ACTIVE:
        # A step moved: the next one may start as soon as the routers serve this one's
        # split (the reconcile above pushed it), not at the next 5 s tick.
        delay = min(delay, QUICK)
    return RolloutOutcome(delay, events, subject)


def is_new_window(rollout: RolloutStatus, previous: RolloutStatus | None) -> bool:
    return previous is None or window_key("", rollout) != window_key("", previous)


def recently_finished(rollout: RolloutStatus | None, now: datetime.datetime) -> bool:
    """Promoted or aborted less than FOLLOW_UP ago: the loop still waits for the routers
    to serve the final split (later the resync loop and Deployment events take over)."""
    finished = parse_time(rollout.finished_at) if rollout is not None else None
    return finished is not None and (now - finished).total_seconds() < FOLLOW_UP


def stale_traffic(running: OnlineEndpointSpec, status: Mapping[str, Any]) -> bool:
    """status.traffic/mirror (what the routers were last seen serving) is not the running split."""

    def live(split: Mapping[str, Any]) -> dict[str, int]:
        return {str(k): int(v) for k, v in split.items() if int(v) > 0}

    return live(running.traffic) != live(status.get("traffic") or {}) or live(
        running.mirror
    ) != live(status.get("mirror") or {})
