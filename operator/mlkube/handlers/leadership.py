"""Two replicas, one active: every replica serves the webhooks, the Lease holder reconciles.

The Service sends admission reviews to every ready replica, so the webhooks (and the liveness
probe) run in every process: a "serving" Kopf operator on the main thread with only the
activities and the admission handlers. The resource handlers, watches, loops and status writes
run in a second, "leading" Kopf operator, started in its own thread (own event loop: Kopf's
signal handling and its sweep of leftover tasks stay apart) only once this replica holds the
Lease (docs/architecture.md, decision 18). A holder that cannot renew exits the process (like
client-go's controllers): nothing of a deposed leader (loops, verification threads) survives to
race the new one. A graceful stop (SIGTERM) stops the leading operator first, then releases
the Lease, so a standby takes over at its next retry instead of waiting the Lease out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Final

import kopf

from mlkube.builders.rbac import LEADER_LEASE
from mlkube.controllers.leader import Elector
from mlkube.handlers import webhooks
from mlkube.handlers.clients import kube
from mlkube.reconcile.leader_lease import LeaseTiming

log = logging.getLogger(__name__)
EXIT_LOST: Final = 3  # the leader could not renew the Lease: the kubelet restarts it


@dataclass(frozen=True)
class ElectionConfig:
    name: str
    namespace: str
    identity: str
    timing: LeaseTiming

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ElectionConfig:
        env = dict(os.environ if env is None else env)
        defaults = LeaseTiming()

        def seconds(key: str, default: float) -> float:
            raw = env.get(key, "").strip()
            return float(raw) if raw else default

        return cls(
            name=env.get("MLKUBE_LEASE_NAME") or LEADER_LEASE,
            namespace=webhooks.WebhookConfig.from_env(env).namespace,
            # The pod name says which replica leads (kubectl get lease); the suffix tells two
            # runs of one pod apart (a restarted process must not renew its old term).
            identity=f"{env.get('HOSTNAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}",
            timing=LeaseTiming(
                duration=seconds("MLKUBE_LEASE_DURATION_SECONDS", defaults.duration),
                renew_deadline=seconds("MLKUBE_LEASE_RENEW_SECONDS", defaults.renew_deadline),
                retry=seconds("MLKUBE_LEASE_RETRY_SECONDS", defaults.retry),
            ),
        )


class Role:
    """This process's role, for the liveness JSON (`leader`) and the logs."""

    elected = False  # leader election is on (else the process always leads)
    leading = False


@kopf.on.probe(id="leader")
async def leader_probe(**_: Any) -> bool:
    """Informational (never fails): whether this replica reconciles."""
    return Role.leading or not Role.elected


def split_registry(
    source: kopf.OperatorRegistry,
) -> tuple[kopf.OperatorRegistry, kopf.OperatorRegistry]:
    """(serving, leading): the webhooks, probes and start-up in one; the resource handlers in
    the other, which neither configures nor starts an admission server, nor reports probes."""
    serving, leading = kopf.OperatorRegistry(), kopf.OperatorRegistry()
    for activity in source._activities.get_all_handlers():
        serving._activities.append(activity)
        if activity.fn is not webhooks.configure_webhooks and activity.activity != "probe":
            leading._activities.append(activity)
    for handler in source._webhooks.get_all_handlers():
        serving._webhooks.append(handler)
    for indexing in source._indexing.get_all_handlers():
        leading._indexing.append(indexing)
    for watching in source._watching.get_all_handlers():
        leading._watching.append(watching)
    for spawning in source._spawning.get_all_handlers():
        leading._spawning.append(spawning)
    for changing in source._changing.get_all_handlers():
        leading._changing.append(changing)
    return serving, leading


class LeadingOperator:
    """The resource handlers' Kopf operator in a thread of its own."""

    def __init__(self, registry: kopf.OperatorRegistry, kopf_args: dict[str, Any]) -> None:
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None
        self._args = {**kopf_args, "registry": registry, "stop_flag": self.stop_flag}
        self._thread = threading.Thread(target=self._run, name="mlkube-leading", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(kopf.operator(**self._args))
        except BaseException as err:  # reported by the supervisor, which then stops the rest
            self.error = err

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    async def stop(self) -> None:
        self.stop_flag.set()
        if self._thread.ident is not None:
            await asyncio.to_thread(self._thread.join)


async def _elect(elector: Elector, leader_now: asyncio.Event, lost: asyncio.Event) -> None:
    """Acquire, then renew every retry period; `lost` when renewal failed past the deadline."""
    while True:
        held: bool | None
        try:
            held = await asyncio.to_thread(elector.attempt)
        except Exception as err:  # an API outage: keep trying until the renew deadline
            log.warning(f"leader election: Lease round failed: {type(err).__name__}: {err}")
            held = None
        if held:
            leader_now.set()
        # Deposed (another replica holds it, or won a write race) or silent past the deadline.
        if leader_now.is_set() and (held is False or (held is None and elector.expired())):
            lost.set()
            return
        await asyncio.sleep(elector.timing.retry)


async def run_elected(kopf_args: dict[str, Any], config: ElectionConfig) -> int:
    """Serve webhooks at once; lead once elected; stop in order. The process's exit code."""
    Role.elected = True
    serving_registry, leading_registry = split_registry(kopf.get_default_registry())
    elector = Elector(kube(), name=config.name, namespace=config.namespace,
                      identity=config.identity, timing=config.timing)  # fmt: skip
    log.info(f"leader election: {config.identity} on Lease {config.namespace}/{config.name}")
    stop_serving, serving_ready, shutdown = asyncio.Event(), asyncio.Event(), asyncio.Event()
    leader_now, lost = asyncio.Event(), asyncio.Event()
    # Created before the serving operator: its exit sweep leaves older tasks alone.
    election = asyncio.create_task(_elect(elector, leader_now, lost), name="mlkube election")
    serving = asyncio.create_task(kopf.operator(
        **kopf_args, registry=serving_registry, stop_flag=stop_serving, ready_flag=serving_ready,
    ), name="mlkube serving")  # fmt: skip
    await _first(serving, serving_ready.wait())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # ours from now on (Kopf took them at start)
        loop.add_signal_handler(sig, shutdown.set)
    leading: LeadingOperator | None = None
    code = 0
    await _first(serving, shutdown.wait(), leader_now.wait(), lost.wait())
    if leader_now.is_set() and not (serving.done() or shutdown.is_set() or lost.is_set()):
        Role.leading = True
        leading = LeadingOperator(leading_registry, {**kopf_args, "liveness_endpoint": None})
        leading.start()
        while not (serving.done() or shutdown.is_set() or lost.is_set()) and leading.alive():
            await _first(serving, shutdown.wait(), lost.wait(), asyncio.sleep(1))
        if not leading.alive() and not shutdown.is_set():
            log.error(f"leading operator ended: {leading.error!r}")
            code = 1
    if lost.is_set():
        # Exit at once, like client-go's controllers: a graceful Kopf stop could still write
        # after a standby (which waits the full duration, longer than the renew deadline)
        # has taken over. Webhooks are served by the other replicas meanwhile.
        log.error("leader election: lost the Lease (deposed, or not renewed in time); exiting")
        logging.shutdown()
        os._exit(EXIT_LOST)
    election.cancel()
    await asyncio.gather(election, return_exceptions=True)
    if leading is not None:
        await leading.stop()
        Role.leading = False
    if elector.leading:  # also when elected just as the stop began: never make standbys wait
        try:
            if await asyncio.to_thread(elector.release):
                log.info(f"leader election: released Lease {config.namespace}/{config.name}")
        except Exception as err:  # the Lease then expires on its own
            log.warning(f"leader election: release failed: {err}")
    stop_serving.set()
    (outcome,) = await asyncio.gather(serving, return_exceptions=True)
    if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
        log.error(f"serving operator failed: {outcome!r}")
        code = 1
    return code


async def _first(*waits: Any) -> None:
    """Wait until the first of these tasks/coroutines finishes; cancel the rest it created."""
    tasks = [w if isinstance(w, asyncio.Future) else asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task, wait in zip(tasks, waits, strict=True):
        if task is not wait and not task.done():
            task.cancel()
