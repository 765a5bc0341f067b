"""Run a Pipeline's steps here, one at a time in DAG order, as the operator would decide them.

Each container step is the pod's three programs as processes (localrun/pipeline.py): `step
inputs` downloads and verifies every artifact input, the user's command runs under the
contract's wrapper, `step outputs` uploads and digests the outputs into the local artifact store
(file://, the cache dir) and writes the summary. The cache is the operator's (same key, same
entry layout `<store>/<namespace>/_mlkube/pipeline-cache/<hex>.json`, same verdict code): a hit
needs an entry younger than maxAge whose artifact outputs still exist with their digests.

Built-in steps: `evaluate` is a pure gate over upstream metrics (a compareWith has no serving
Model here: it passes as "no baseline", said in the message); registerModel, deploy and batch
need the cluster and are Skipped with that message. Skips follow the planner's rule: a step
needing outputs of a skipped step is skipped, one that only dependsOn it runs.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import PipelineSpec, Step
from mlkube.cli.pipeline_local_cache import LocalCache, content_digest
from mlkube.cli.pipeline_local_procs import run_attempt
from mlkube.localrun.pipeline import (
    LocalStep,
    LocalStepError,
    ResolvedInput,
    resolve_input,
    resolve_step,
)
from mlkube.reconcile.pipeline_dag import ancestors, graph_of, topological_order
from mlkube.reconcile.pipeline_gate import evaluate_gate
from mlkube.reconcile.pipeline_params import typed_parameters
from mlkube.reconcile.pipeline_retry import backoff_delay

NEEDS_CLUSTER: Final = "skipped locally (needs the cluster)"


def _stamp(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LocalPipeline:
    def __init__(
        self, spec: PipelineSpec, *, run: str, namespace: str, parameters: Mapping[str, str],
        store: Path, workdir: Path, policy: str = "Default",
        show: Callable[[Mapping[str, Any]], None] = lambda status: None,
        image_digests: tuple[tuple[str, str], ...] = (),
        sleep: Callable[[float], None] | None = None,
        model_of: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:  # fmt: skip
        self.spec = spec
        self.run, self.uid, self.namespace = run, str(uuid.uuid4()), namespace
        self.parameters = dict(parameters)
        self.store_dir = store.absolute()
        self.store = self.store_dir.as_uri()
        self.workdir = workdir
        self.policy = policy
        self.show = show
        self.image_digests = image_digests
        self.sleep = sleep or time.sleep
        self.cache = LocalCache(self.store_dir, namespace)
        self.model_of = model_of
        self.graph = graph_of(spec.steps)
        self.steps: dict[str, dict[str, Any]] = {s.name: {"name": s.name, "phase": "Pending"}
                                                 for s in spec.steps}  # fmt: skip
        self.notes: list[str] = []
        self.phase = "Running"
        self.started = self.ended = _stamp(dt.datetime.now(dt.UTC))

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        done = sum(s["phase"] in ("Succeeded", "Failed", "Skipped", "Cancelled")
                   for s in self.steps.values())  # fmt: skip
        status = {"phase": self.phase, "progress": f"{done}/{len(self.steps)}",
                  "steps": list(self.steps.values()), "parameters": self.parameters,
                  "startTime": self.started}  # fmt: skip
        if self.phase != "Running":
            status["completionTime"] = self.ended
        return status

    def _set(self, name: str, **fields: Any) -> None:
        self.steps[name].update({k: v for k, v in fields.items() if v is not None})
        self.show(self.status())

    def _finish(self, name: str, phase: str, message: str | None = None) -> None:
        now = _stamp(dt.datetime.now(dt.UTC))
        self.steps[name].setdefault("startTime", now)
        self._set(name, phase=phase, completionTime=now, message=message)

    # -- the run -----------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        failed = bad = False
        soft: set[str] = set()  # skipped by when or locally: dependsOn-only dependents still run
        for name in topological_order(self.graph):
            step = self.spec.step(name)
            assert step is not None
            why = self._blocked(step, soft, failed)
            if why is not None:
                soft.add(name)
                self._finish(name, "Skipped", why)
                continue
            if not self._when(step):
                soft.add(name)
                continue
            self.steps[name]["startTime"] = _stamp(dt.datetime.now(dt.UTC))
            if step.type == "container":
                self._container(step)
            elif step.type == "evaluate":
                self._evaluate(step)
            else:
                soft.add(name)
                self._finish(name, "Skipped", f"{step.type}: {NEEDS_CLUSTER}")
            if self.steps[name]["phase"] == "Failed" and not step.continue_on_failure:
                bad = True
                failed = failed or self.spec.fail_fast
        self.ended = _stamp(dt.datetime.now(dt.UTC))
        self.phase = "Failed" if bad else "Succeeded"
        self.show(self.status())
        return self.status()

    def _blocked(self, step: Step, soft: set[str], fail_fast_hit: bool) -> str | None:
        if fail_fast_hit:
            return "an earlier step failed (failFast)"
        for dep in step.dependencies():
            phase = self.steps[dep]["phase"]
            if phase in ("Failed", "Cancelled") or (phase == "Skipped" and dep not in soft):
                return f"dependency {dep} {phase}"
        consumed = {ref.step for _, ref in step.references()}
        for dep in sorted(consumed & soft):
            return f"needs step {dep}, which was skipped"
        return None

    def _when(self, step: Step) -> bool:
        if not step.when:
            return True
        # Imported here: it builds its CEL environment at import (0.3 s on every CLI start).
        from mlkube.reconcile.pipeline_when import WhenError, evaluate_when, step_view

        typed = typed_parameters(self.spec.parameters, self.parameters)
        upstream = {a: step_view(self.steps[a]) for a in ancestors(self.graph, step.name)}
        try:
            if evaluate_when(step.when, typed, upstream):
                return True
        except WhenError as err:
            self._finish(step.name, "Failed", str(err))
            return True  # Failed, not skipped: the caller sees the phase
        self._finish(step.name, "Skipped", f"when {step.when} is false")
        return False

    def _evaluate(self, step: Step) -> None:
        """The operator's gate over the recorded metrics; a compareWith has no serving Model
        here, so it is judged as the first model of an endpoint is (no baseline)."""
        assert step.evaluate is not None
        metrics = {name: dict(st.get("metrics") or {}) for name, st in self.steps.items()}
        label = ""
        if step.evaluate.compare_with is not None:
            label = f"endpoint {step.evaluate.compare_with.endpoint}, not compared locally,"
        result = evaluate_gate(step.evaluate, metrics, None, label)
        self._finish(
            step.name,
            "Succeeded" if result.passed else "Failed",
            ("gate passed: " if result.passed else "gate failed: ") + result.message,
        )

    # -- a container step --------------------------------------------------------------------
    def _container(self, step: Step) -> None:
        st = self.steps[step.name]
        try:
            inputs = [resolve_input(step, i, self.parameters, self.steps, content_digest,
                                    self.model_of)
                      for i in range(len(step.inputs))]  # fmt: skip
            local = self._resolve(step, inputs, 1)
        except (LocalStepError, OSError, ValueError) as err:
            self._finish(step.name, "Failed", str(err))
            return
        if local.image_note and local.image_note not in self.notes:
            self.notes.append(local.image_note)
        entry, reason = self.cache.lookup(step, local.key, self.policy)
        if entry is not None:
            st.update(outputs=list(entry.get("outputs") or []),
                      metrics=dict(entry.get("metrics") or {}),
                      cache={"hit": True, "key": local.key, "sourceRun": entry.get("sourceRun"),
                             "reason": reason})  # fmt: skip
            self._finish(step.name, "Succeeded")
            return
        timeout = parse_duration(step.timeout).total_seconds() if step.timeout else None
        limit = step.retry.limit
        for attempt in range(1, limit + 2):
            if attempt > 1:
                local = self._resolve(step, inputs, attempt)
                delay = backoff_delay(step.retry.backoff, attempt - 1).total_seconds()
                self._set(step.name, phase="Running", message=f"retry in {delay:g}s")
                self.sleep(delay)
            st.pop("message", None)
            self._set(step.name, phase="Running", attempts=attempt,
                      cache={"hit": False, "key": local.key, "reason": reason})  # fmt: skip
            result = run_attempt(local, self.workdir, timeout)
            if result.error is None:
                st.update(outputs=result.outputs, metrics=result.metrics)
                self.cache.record(step, local.key, self.run, result.outputs, result.metrics)
                self._finish(step.name, "Succeeded")
                return
            st["message"] = result.error
        self._finish(step.name, "Failed", st.get("message"))

    def _resolve(self, step: Step, inputs: list[ResolvedInput], attempt: int) -> LocalStep:
        root = self.workdir / step.name / f"a{attempt}"
        return resolve_step(step, inputs, parameters=self.parameters, namespace=self.namespace,
                            run=self.run, uid=self.uid, attempt=attempt, store=self.store,
                            root=root, image_digests=self.image_digests)  # fmt: skip
