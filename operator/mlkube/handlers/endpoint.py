"""OnlineEndpoint handlers: reconcile on create/update/resume and on a resync loop, refresh
readiness when a child Deployment changes or one of its pods fails, release the Models once
the endpoint is gone.

The work lives in `mlkube.controllers.endpoint`; this module maps its outcome to Kopf (Events,
retries). One lock per endpoint serializes the handler, the resync and Deployment events
inside the process, so a slow pass never prunes what a newer pass just applied.

No handler here makes Kopf put a finalizer on the endpoint (no `on.delete`, no Kopf timer):
with the operator absent, a finalizer would block the deletion of the endpoint and of its
namespace forever. The cleanup runs on the DELETED watch event instead and is level-based
(children are owned, `deployedBy` is recomputed), so a deletion missed while the operator
was away is repaired when it is back (`mlkube.handlers.model` repairs `deployedBy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import kopf

from mlkube.builders.names import controller_owner, label_value
from mlkube.contract import (
    API_VERSION,
    GROUP,
    KIND_ONLINE_ENDPOINT,
    LABEL_ENDPOINT,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    PLURAL_MODELS,
    PLURAL_ONLINE_ENDPOINTS,
    VERSION,
)
from mlkube.controllers import endpoint as sync
from mlkube.controllers import endpoint_traffic as traffic
from mlkube.controllers.endpoint_users import USERS, used_models
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import Kube, get_live
from mlkube.controllers.locks import KeyedLocks
from mlkube.controllers.observed_deployments import already_observed
from mlkube.controllers.pending import Waiting
from mlkube.controllers.resume_reads import ResumeBatches, SharedLists
from mlkube.handlers.clients import kube
from mlkube.handlers.coalesce import Coalesced
from mlkube.handlers.config import operator_config
from mlkube.handlers.memory_probe import trim_memory
from mlkube.handlers.metrics import reconciling
from mlkube.handlers.periodic import LOOPS, spread
from mlkube.handlers.settings import max_workers
from mlkube.k8s import ApiError

PLURAL: Final = PLURAL_ONLINE_ENDPOINTS
API_ERROR_DELAY: Final = 10.0
REFRESH_DELAY: Final = 0.25  # a Deployment event waits this long for the rest of its burst
MAX_RETRY_DELAY: Final = 60.0
BACKSTOP_DELAY: Final = 15.0  # first backstop reconcile of a blocked endpoint (doubles)
MODEL_BACKSTOP_DELAY: Final = 60.0  # the same when only Models block it (their event wakes it)
AGAIN_AT_MOST: Final = 3  # passes in a row while Models it waits for keep turning Ready
log = logging.getLogger(__name__)

LOCKS: Final = KeyedLocks()
endpoint_lock = LOCKS.hold
# Passes waiting for an endpoint's lock: a refresh they cover is skipped (controllers/pending.py).
WAITING: Final = Waiting()
# (namespace, endpoint) -> the Models of its last pass that ended blocked: a Model turning Ready
# reconciles these, found without a LIST of every endpoint per Model event (N² at scale).
# Endpoints blocked before this process started resume (and record themselves) at start.
BLOCKED: Final[dict[tuple[str, str], frozenset[str]]] = {}
# (namespace, Model) -> when an event last showed it Ready (time.monotonic()): a pass that read
# a Model before it turned Ready records itself blocked after that event was handled, and
# must see it here (no Kopf retry timer covers a pass blocked on Models any more).
READY_SEEN: Final[dict[tuple[str, str], float]] = {}
# (namespace, endpoint) -> backstop reconciles armed in a row (see `backstop`).
BACKSTOPS: Final[dict[tuple[str, str], int]] = {}
# (namespace, endpoint) -> (uid, generation) whose router config a traffic fast path wrote
# and whose status `TRAFFIC_STATUS` still has to write, and the count of its attempts.
STATUS_PENDING: Final[dict[tuple[str, str], tuple[str, int, int]]] = {}
_BLOCKED_GUARD: Final = threading.Lock()
# Endpoints first seen by this process whose first pass is to come: at a restart, resume
# passes share their children's LISTs in batches (controllers/resume_reads.py).
RESUMES: Final = ResumeBatches()
# A restart's burst (the resume passes, Kopf's listings) leaves freed memory that glibc keeps:
# give it back once every endpoint has resumed (docs/benchmarks/operator-scale.md, fourteenth).
RESUMES.on_drained = trim_memory


def record_blocked(
    namespace: str, name: str, models: frozenset[str], began: float | None = None
) -> bool:
    """Remember the Models the endpoint waits for; True when one of them was seen Ready
    after `began` (the pass's start): the caller must reconcile again."""
    with _BLOCKED_GUARD:
        if models:
            BLOCKED[namespace, name] = models
        else:
            BLOCKED.pop((namespace, name), None)
        if began is None:
            return False
        return any(READY_SEEN.get((namespace, m), -1.0) >= began for m in models)


def blocked_on(namespace: str, model: str) -> list[str]:
    with _BLOCKED_GUARD:
        return sorted(
            n for (ns, n), models in BLOCKED.items() if ns == namespace and model in models
        )


def ready_seen(namespace: str, model: str, ready: bool) -> list[str]:
    """Record whether an event shows the Model Ready; the endpoints blocked on it when it
    just turned Ready. Later events of a Ready Model (its deployedBy written by the passes
    themselves) neither wake anyone nor move the time, or every such event would make the
    passes in flight run again."""
    with _BLOCKED_GUARD:
        if not ready:
            READY_SEEN.pop((namespace, model), None)
            return []
        if (namespace, model) in READY_SEEN:
            return []
        READY_SEEN[namespace, model] = time.monotonic()
        return sorted(
            n for (ns, n), models in BLOCKED.items() if ns == namespace and model in models
        )


@contextlib.contextmanager
def endpoint_pass(
    namespace: str, name: str, refresh: bool = False, claimed: bool = False,
    since: float | None = None,
) -> Iterator[bool]:  # fmt: skip
    """Hold the endpoint's lock for a pass; yields False (skip) for a `refresh` that a waiting
    pass covers (`claimed`: the caller already waits as that refresh) or, for one asked for at
    `since` (`time.monotonic()`), that a pass which began reading later completed. The pass
    stops covering new events once it holds the lock, before it reads."""
    key = (namespace, name)
    if refresh and not claimed and not WAITING.claim(key):
        yield False
        return
    if not refresh:
        WAITING.add(key)
    waiting = True
    try:
        with endpoint_lock(namespace, name):
            WAITING.done(key)
            waiting = False
            if since is not None and WAITING.read_since(key, since):
                yield False
                return
            began = time.monotonic()
            yield True
            WAITING.completed(key, began)  # not reached when the pass raised
    finally:
        if waiting:
            WAITING.done(key)


def refresh(namespace: str, name: str, claimed: bool = False, since: float | None = None) -> None:
    """Refresh readiness unless a pass already waiting for the lock will read after now, or
    (`since`) one that began reading after the request has completed."""
    with endpoint_pass(namespace, name, refresh=True, claimed=claimed, since=since) as run:
        if not run:
            return
        outcome = sync.refresh_status(kube(), operator_config(), namespace, name, now_iso())
    post_events(outcome)


def refresh_key(key: tuple[str, str], since: float) -> None:
    if WAITING.read_since(key, since):
        return  # a pass that began reading after the events asking for it completed
    refresh(*key, since=since)


def reconcile_key(key: tuple[str, str], since: float) -> None:
    run_reconcile(*key)


def resume_key(key: tuple[str, str], since: float) -> None:
    run_reconcile(*key, resume=True)


def report_failure(what: str) -> Callable[[tuple[str, str], Exception], None]:
    def report(key: tuple[str, str], err: Exception) -> None:
        if what == "reconcile":  # asked for by an event no Kopf handler will repeat
            backstop(key)
        if isinstance(err, ApiError | ControllerError | kopf.TemporaryError):
            # The resync loop repairs it later; one line instead of a traceback.
            log.warning(f"OnlineEndpoint {key[1]}: {what} failed: {err}")
        else:
            log.error(f"OnlineEndpoint {key[1]}: {what} failed", exc_info=err)

    return report


# Watch reactions ask for passes here and return at once (handlers/coalesce.py): a burst of
# Deployment events (created, scheduled, pods ready, available) waits REFRESH_DELAY and costs
# one refresh per endpoint; no event body waits in Kopf's backlogs behind a thread meanwhile.
REFRESHES: Final = Coalesced(
    "refresh", refresh_key, REFRESH_DELAY, report_failure("refresh"), limit=4
)
# Endpoints created before their Model is verified are reconciled here when it turns Ready:
# with 2 at once, 200-250 such passes waited for minutes at N=1,000 (the timeline's
# `reconciles`), the converge's tail whenever Models verified late (eleventh session).
RECONCILE_PASSES: Final = 8
RECONCILES: Final = Coalesced(
    "reconcile", reconcile_key, 0.0, report_failure("reconcile"), limit=RECONCILE_PASSES
)
# A restart's resume passes, as many at once as Kopf's handler threads. Kopf's resume handler
# only asks for one here: run by Kopf, each of 1,000 endpoints' workers held its listing
# event's body (and Kopf's cause, diff, patch) until a handler thread took it, the restarted
# operator's memory peak (docs/benchmarks/operator-scale.md, fifteenth session).
RESUME_PASSES: Final = Coalesced(
    "resume", resume_key, 0.0, report_failure("reconcile"), limit=max_workers()
)
HANDLER_ID: Final = "reconcile_endpoint"


@functools.cache
def handler_threads() -> ThreadPoolExecutor:
    """The create and update passes, which Kopf's threads ran while the handler was
    synchronous (created on first use: max_workers() is read from the environment)."""
    return ThreadPoolExecutor(max_workers(), "mlkube-endpoint")


async def in_handler_thread(call: Callable[[], None]) -> None:
    """`call` in a handler thread, in a copy of this context (Kopf's per-event variables: its
    Events and log lines name the endpoint)."""
    run = functools.partial(contextvars.copy_context().run, call)
    await asyncio.get_running_loop().run_in_executor(handler_threads(), run)


def traffic_status_key(key: tuple[str, str], since: float) -> None:
    """The status of a traffic change whose router config the fast path wrote (after it, in
    `TRAFFIC_STATUS`'s threads): the routers' configs first, the bookkeeping behind them.
    Under the endpoint's lock but not as a pass that covers refreshes (`endpoint_pass`): it
    may write nothing (the endpoint moved on), and a refresh it skipped would be lost."""
    with _BLOCKED_GUARD:
        pending = STATUS_PENDING.get(key)
    if pending is None:
        return
    uid, generation, _ = pending
    with reconciling(KIND_ONLINE_ENDPOINT), endpoint_lock(*key):
        outcome = traffic.write_traffic_status(
            kube(), operator_config(), *key, now_iso(), generation, uid
        )
    post_events(outcome)
    with _BLOCKED_GUARD:  # held while asking: requests reach the loop in the entries' order
        if STATUS_PENDING.get(key) != pending:
            return  # a newer change asked meanwhile, or a full pass wrote the status
        if outcome.retry_message is None:
            del STATUS_PENDING[key]
            return
        # Routers still loading the new config (nothing fires when they do): look again,
        # backing off as Kopf's retry of the handler did.
        _status_again(key, pending, outcome.retry_delay)


def _status_again(key: tuple[str, str], pending: tuple[str, int, int], first: float) -> None:
    """Count an attempt of `pending` and ask for the step again, `first` s doubling to
    MAX_RETRY_DELAY. Under `_BLOCKED_GUARD`: requests reach the loop in the entries' order."""
    uid, generation, attempt = pending
    STATUS_PENDING[key] = (uid, generation, attempt + 1)
    delay = min(first * 2 ** min(attempt, 6), MAX_RETRY_DELAY)
    TRAFFIC_STATUS.request_later(key, delay, status_pending)


def status_pending(key: tuple[str, str]) -> bool:
    with _BLOCKED_GUARD:
        return key in STATUS_PENDING


def retry_traffic_status(key: tuple[str, str], err: Exception) -> None:
    """The status step failed (the API server): again later, backing off."""
    report_failure("traffic status")(key, err)
    with _BLOCKED_GUARD:
        pending = STATUS_PENDING.get(key)
        if pending is not None:
            _status_again(key, pending, API_ERROR_DELAY)


def settle_status(key: tuple[str, str], status_for: tuple[str, int] | None) -> None:
    """After a pass, under the endpoint's lock: a fast path's (uid, generation) whose status
    is still to be written is asked for; any other pass wrote the status of the generation
    it read, which is at least that of a pending step, so that step has nothing left to do."""
    with _BLOCKED_GUARD:
        if status_for is None:
            STATUS_PENDING.pop(key, None)
            return
        STATUS_PENDING[key] = (*status_for, 0)
        TRAFFIC_STATUS.request_later(key, 0.0, status_pending)


# Fewer threads than Kopf's handlers: in a burst of traffic changes the handlers (router
# ConfigMaps) get most of the API server, their statuses follow.
TRAFFIC_STATUS: Final = Coalesced(
    "traffic-status", traffic_status_key, 0.0, retry_traffic_status, limit=2
)


async def drain_passes() -> None:
    """Until the requested refreshes and reconciles have run (tests)."""
    await REFRESHES.drain()
    await RESUME_PASSES.drain()
    await RECONCILES.drain()
    await TRAFFIC_STATUS.drain()


@kopf.on.startup()
async def bind_passes(**_: Any) -> None:
    """Backstop timers (see `backstop`) and deferred statuses run in the operator's loop."""
    RECONCILES.bind(asyncio.get_running_loop())
    TRAFFIC_STATUS.bind(asyncio.get_running_loop())


@kopf.on.cleanup()
async def stop_passes(**_: Any) -> None:
    await REFRESHES.close()
    await RESUME_PASSES.close()
    await RECONCILES.close()
    await TRAFFIC_STATUS.close()


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_reconcile(
    namespace: str, name: str, old_spec: Mapping[str, Any] | None = None,
    kopf_retries: bool = False, resume: bool = False,
) -> sync.Outcome:  # fmt: skip
    """One reconcile (`old_spec`: the spec last handled, for a traffic-only change's fast
    path); API and sync failures become a delayed retry, never a traceback storm. A blocked
    pass arms the backstop unless Kopf retries it (`kopf_retries`, blockers besides Models).
    `resume`: Kopf's resume at start, whose first pass reads its children from a batch's
    shared LISTs."""
    try:
        for attempt in range(AGAIN_AT_MOST):
            began = time.monotonic()
            with reconciling(KIND_ONLINE_ENDPOINT), endpoint_pass(namespace, name):
                outcome = traffic.reconcile_change(
                    pass_kube(namespace, name, resume and attempt == 0), operator_config(),
                    namespace, name, now_iso(), old_spec,
                )  # fmt: skip
                settle_status((namespace, name), outcome.status_for)
            if not record_blocked(namespace, name, outcome.waiting_for, began):
                break  # else a Model it read turned Ready meanwhile: again, with it Ready
    except (ApiError, ControllerError) as err:
        raise kopf.TemporaryError(f"reconcile failed: {err}", delay=API_ERROR_DELAY) from err
    if outcome.retry_message and (outcome.models_wake or not kopf_retries):
        # A resume pass looks again as soon as Kopf's retry of it would have.
        first = outcome.retry_delay if resume else None
        backstop((namespace, name), models_only=outcome.models_wake, first=first)
    else:
        forget_backstop((namespace, name))
    post_events(outcome)
    return outcome


def pass_kube(namespace: str, name: str, resume: bool) -> Kube:
    """The client of one pass: for a resume pass, one whose LISTs of the endpoint's children
    answer from its batch's share; any other pass lists for itself (and the endpoint leaves
    the batches: its first pass ran)."""
    label = label_value(name)
    if not resume:
        RESUMES.forget(namespace, label)
        return kube()
    share = RESUMES.take(kube(), namespace, label)
    return kube() if share is None else SharedLists(kube(), namespace, label, share)


def backstop(key: tuple[str, str], models_only: bool = False, first: float | None = None) -> None:
    """Reconcile `key` again later unless a pass ended unblocked (or the endpoint was deleted)
    by then: no Kopf retry covers
    a pass blocked on Models or one that ran outside Kopf's handler (a coalesced wake-up or a
    resync), and a Ready event can be missed (a watch restart, a failed pass).

    Blocked only by Models, the Model's Ready event is the wake-up and this only covers its
    loss: 60 s, doubling up to the resync period (a thousand endpoints waiting for Models must
    not cost a thousand passes every quarter minute). Anything else: 15 s (`first` for the
    first look, when given) doubling to 60 s. Process-local: no annotation written, nothing to
    clear at a restart."""
    with _BLOCKED_GUARD:
        attempt = BACKSTOPS.get(key, 0)
        BACKSTOPS[key] = attempt + 1
    if models_only:
        delay, cap = MODEL_BACKSTOP_DELAY, max(MODEL_BACKSTOP_DELAY, resync_period())
    else:
        delay, cap = BACKSTOP_DELAY if first is None else first, MAX_RETRY_DELAY
    RECONCILES.request_later(key, min(delay * 2 ** min(attempt, 6), cap), backstop_pending)


def resync_period() -> float:
    try:
        return float(operator_config().resync_seconds)
    except AttributeError:  # no configuration (unit tests): the default resync
        return 300.0


def backstop_pending(key: tuple[str, str]) -> bool:
    """No pass of `key` ended unblocked (or the endpoint went) since the backstop was armed."""
    with _BLOCKED_GUARD:
        return key in BACKSTOPS


def forget_backstop(key: tuple[str, str]) -> None:
    with _BLOCKED_GUARD:
        BACKSTOPS.pop(key, None)


def post_events(outcome: sync.Outcome) -> None:
    if outcome.subject is not None:
        for type_, reason, message in outcome.events:
            kopf.event(
                kopf.Body(cast(kopf.RawBody, outcome.subject)),
                type=type_,
                reason=reason,
                message=message,
            )


# One Kopf handler (the ids earlier versions stored progress under) for the three causes: an
# endpoint created while the operator was away is resumed and created at once, which Kopf runs
# as one call of one function under one id, but as two calls of two, one after the other, with
# their progress written to the endpoint in between.
@kopf.on.resume(GROUP, VERSION, PLURAL, id=HANDLER_ID)
@kopf.on.create(GROUP, VERSION, PLURAL, id=HANDLER_ID)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id=HANDLER_ID)
async def endpoint_changed(
    namespace: str | None, name: str, retry: int, reason: str = "", old: Any = None, **_: Any
) -> None:
    """A resume (the endpoint existed when the operator started) waits as a key, no body, in
    the order the endpoints were listed (the order of their batches' shared LISTs); a failed
    or blocked resume pass is retried by the backstop, as a resync's is (no Kopf progress
    written). A create or an update runs its pass now, in a handler thread; Kopf retries it."""
    if reason == kopf.Reason.RESUME:
        RESUME_PASSES.request((namespace or "default", name))
        return
    call = functools.partial(
        reconcile_endpoint, namespace=namespace, name=name, retry=retry, reason=reason, old=old
    )
    await in_handler_thread(call)


def reconcile_endpoint(
    namespace: str | None, name: str, retry: int, reason: str = "", old: Any = None, **_: Any
) -> None:
    """The pass of a create or an update (`endpoint_changed`, in a handler thread)."""
    # Kopf's `old` (the spec it last handled) only means that on an update.
    previous = old if reason == kopf.Reason.UPDATE and isinstance(old, Mapping) else None
    outcome = run_reconcile(namespace or "default", name, previous, True)
    if outcome.retry_message and outcome.models_wake:
        # The Model turning Ready reconciles it (model_changed); a Kopf retry would only
        # repeat the pass and write its progress into the endpoint (twice per endpoint).
        log.info(f"OnlineEndpoint {name}: {outcome.retry_message}; reconciles when Ready")
        return
    if outcome.retry_message:
        # Back off (5, 10, 20, 40, 60 s ...): the resync loop still looks (MLKUBE_RESYNC_SECONDS).
        delay = min(outcome.retry_delay * 2 ** min(retry, 6), MAX_RETRY_DELAY)
        raise kopf.TemporaryError(outcome.retry_message, delay=delay)


def resync_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """Level-based repair: recreate children deleted by hand, pick up a fixed Degraded cause."""
    try:
        if get_live(kube(), API_VERSION, KIND_ONLINE_ENDPOINT, name, namespace, uid) is None:
            return None
        run_reconcile(namespace, name)
    except (ApiError, ControllerError, kopf.TemporaryError) as err:
        logger.warning(f"resync failed: {err}")
    return operator_config().resync_seconds


@kopf.on.event(GROUP, VERSION, PLURAL)
async def endpoint_lifecycle(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Run the resync loop while the endpoint lives; release its Models once it is gone."""
    namespace = namespace or "default"
    USERS.observe(KIND_ONLINE_ENDPOINT, namespace, name, None if type == "DELETED" else body)
    if type != "DELETED" and not body.metadata.get("deletionTimestamp"):
        tick = functools.partial(resync_tick, namespace, name, uid, logger)
        if LOOPS.ensure(uid, "resync", tick, spread(uid, operator_config().resync_seconds), logger):
            RESUMES.expect(namespace, label_value(name))  # first seen: its first pass comes
        return
    LOOPS.stop(uid)
    RESUMES.forget(namespace, label_value(name))
    record_blocked(namespace, name, frozenset())
    forget_backstop((namespace, name))
    with _BLOCKED_GUARD:
        STATUS_PENDING.pop((namespace, name), None)
    if type == "DELETED":
        WAITING.forget((namespace, name))
        models = used_models(body) | sync.status_models(body.get("status"))
        await asyncio.to_thread(release_endpoint, namespace, name, uid, logger, models)


def release_endpoint(
    namespace: str, name: str, uid: str, logger: kopf.Logger, models: Collection[str] = ()
) -> None:
    """Delete the children and make the Models it used forget the endpoint (after the fact)."""
    try:
        with endpoint_lock(namespace, name):
            sync.release(kube(), namespace, name, uid, models)
    except (ApiError, ControllerError) as err:
        # The Models' own repair loop (mlkube.handlers.model) catches up; GC takes the children.
        logger.warning(f"releasing Models after deletion failed: {err}")


@kopf.on.event(
    "apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_ENDPOINT: kopf.PRESENT}
)
async def child_deployment_changed(
    type: str, meta: kopf.Meta, namespace: str | None, logger: kopf.Logger, **_: Any
) -> None:
    """A child Deployment moved: recompute readiness; if it was deleted, reconcile at once
    (deleted by hand or by our own prune: a reconcile recreates it only if still wanted)."""
    endpoint = controller_owner(meta, KIND_ONLINE_ENDPOINT)
    if endpoint is None or namespace is None:
        return
    version = None if type == "DELETED" else meta.get("resourceVersion")
    RESUMES.changed(namespace, label_value(endpoint), "Deployment", meta["name"], version)
    if version is not None and already_observed(namespace, meta["name"], version):
        return  # the last status was computed from this very version (a restart's listing)
    (REFRESHES if type != "DELETED" else RECONCILES).request((namespace, endpoint))


@kopf.on.event(GROUP, VERSION, PLURAL_MODELS)
async def model_changed(
    name: str, namespace: str | None, status: kopf.Status, type: str = "",
    meta: Mapping[str, Any] | None = None, **_: Any,
) -> None:  # fmt: skip
    """A Model became Ready: endpoints waiting for it reconcile now (their only retry).
    Asynchronous: most Model events wake no endpoint and must not wait for a thread (with
    their bodies queued in Kopf's backlog) behind the reconciles of a burst. Ready means what
    a pass needs (`model_facts.read_model`): Ready for the Model's current generation, so a
    spec change's event (still Ready, for the previous generation) is not Ready and the status
    of the new generation wakes the endpoints that read it in between."""
    if namespace is None:
        return
    generation = (meta or {}).get("generation")
    current = generation is None or status.get("observedGeneration") == generation
    ready = (
        type != "DELETED"
        and current
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    )
    for endpoint in ready_seen(namespace, name, ready):
        RECONCILES.request((namespace, endpoint))
