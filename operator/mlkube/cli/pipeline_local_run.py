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
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlparse

from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import PipelineSpec, Step
from mlkube.builders import pipeline_contract as pc
from mlkube.builders.pipeline_json import ContractError
from mlkube.builders.pipeline_summary import parse_summary
from mlkube.localrun.pipeline import (
    LocalStep,
    LocalStepError,
    ResolvedInput,
    resolve_input,
    resolve_step,
    step_program,
)
from mlkube.reconcile import pipeline_cache as keys
from mlkube.reconcile.pipeline_dag import ancestors, graph_of, topological_order
from mlkube.reconcile.pipeline_gate import Comparison, Threshold, decide
from mlkube.reconcile.pipeline_params import typed_parameters
from mlkube.reconcile.pipeline_retry import backoff_delay
from mlkube.reconcile.pipeline_when import WhenError, evaluate_when, step_view

NEEDS_CLUSTER: Final = "skipped locally (needs the cluster)"
CACHE_DIR: Final = "_mlkube/pipeline-cache"


def _stamp(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def _digest(uri: str) -> str:
    from mlkube.storage import compute_digest

    return compute_digest(uri).digest


class LocalPipeline:
    def __init__(
        self, spec: PipelineSpec, *, run: str, namespace: str, parameters: Mapping[str, str],
        store: Path, workdir: Path, policy: str = "Default",
        show: Callable[[Mapping[str, Any]], None] = lambda status: None,
        image_digests: tuple[tuple[str, str], ...] = (),
        sleep: Callable[[float], None] | None = None,
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
        self.sleep = sleep or __import__("time").sleep
        self.graph = graph_of(spec.steps)
        self.steps: dict[str, dict[str, Any]] = {s.name: {"name": s.name, "phase": "Pending"}
                                                 for s in spec.steps}  # fmt: skip
        self.notes: list[str] = []
        self.phase = "Running"

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        done = sum(s["phase"] in ("Succeeded", "Failed", "Skipped", "Cancelled")
                   for s in self.steps.values())  # fmt: skip
        return {"phase": self.phase, "progress": f"{done}/{len(self.steps)}",
                "steps": list(self.steps.values()), "parameters": self.parameters}  # fmt: skip

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
            self._set(name, phase="Running",
                      startTime=_stamp(dt.datetime.now(dt.UTC)))  # fmt: skip
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
            return f"needs outputs of step {dep}, which was skipped"
        return None

    def _when(self, step: Step) -> bool:
        if not step.when:
            return True
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
        block = step.evaluate
        assert block is not None

        def metric(ref_step: str, name: str) -> float | None:
            value = (self.steps[ref_step].get("metrics") or {}).get(name)
            return None if value is None else float(value)

        thresholds = [Threshold(m.name, m.from_.step, metric(m.from_.step, m.name),
                                m.min, m.max) for m in block.metrics]  # fmt: skip
        comparison = None
        if block.compare_with is not None:
            c = block.compare_with
            comparison = Comparison(c.metric, c.from_.step, metric(c.from_.step, c.metric),
                                    None, f"endpoint {c.endpoint} not compared locally",
                                    c.higher_is_better, c.min_improvement)  # fmt: skip
        verdict = decide(thresholds, comparison)
        self._finish(step.name, "Succeeded" if verdict.passed else "Failed", verdict.message)

    # -- a container step --------------------------------------------------------------------
    def _container(self, step: Step) -> None:
        st = self.steps[step.name]
        try:
            inputs = [resolve_input(step, i, self.parameters, self.steps, _digest)
                      for i in range(len(step.inputs))]  # fmt: skip
            local = self._resolve(step, inputs, 1)
        except (LocalStepError, OSError, ValueError) as err:
            self._finish(step.name, "Failed", str(err))
            return
        if local.image_note and local.image_note not in self.notes:
            self.notes.append(local.image_note)
        reason = self._cache(step, local.key)
        if st["phase"] == "Succeeded":
            return
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
            error = self._attempt(step, local)
            if error is None:
                self._record(step, local.key)
                self._finish(step.name, "Succeeded")
                return
            st["message"] = error
        self._finish(step.name, "Failed", st.get("message"))

    def _resolve(self, step: Step, inputs: list[ResolvedInput], attempt: int) -> LocalStep:
        root = self.workdir / step.name / f"a{attempt}"
        return resolve_step(step, inputs, parameters=self.parameters, namespace=self.namespace,
                            run=self.run, uid=self.uid, attempt=attempt, store=self.store,
                            root=root, image_digests=self.image_digests)  # fmt: skip

    def _entry_path(self, key: str) -> Path:
        return self.store_dir / self.namespace / CACHE_DIR / f"{key.split(':', 1)[-1]}.json"

    def _cache(self, step: Step, key: str) -> str:
        """Serve the step from the cache when the verdict says hit; the reason either way."""
        path = self._entry_path(key)
        entry = None
        if path.is_file():
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                entry = None
        now = dt.datetime.now(dt.UTC)
        max_age = parse_duration(step.cache.max_age)
        common: dict[str, Any] = dict(key=key, now=now, max_age=max_age,
                                      max_age_text=step.cache.max_age, policy=self.policy,
                                      enabled=step.cache.enabled)  # fmt: skip
        early = keys.cache_precheck(entry, **common)
        if early is not None or not isinstance(entry, dict):
            return early or keys.NO_ENTRY
        checks: dict[str, keys.OutputState] = {}
        for out in keys.artifact_outputs(entry):
            uri = str(out.get("uri") or "")
            if not uri.startswith("file://") or not _path(uri).exists():
                checks[str(out.get("name"))] = "missing"
                continue
            same = _digest(uri) == out.get("digest")
            checks[str(out.get("name"))] = "ok" if same else "changed"
        hit, reason = keys.cache_verdict(entry, checks=checks, **common)
        if hit:
            self.steps[step.name].update(
                outputs=list(entry.get("outputs") or []), metrics=dict(entry.get("metrics") or {}),
                cache={"hit": True, "key": key, "sourceRun": entry.get("sourceRun"),
                       "reason": reason},
            )  # fmt: skip
            self._finish(step.name, "Succeeded")
        return reason

    def _record(self, step: Step, key: str) -> None:
        st = self.steps[step.name]
        entry = {
            "v": 1,
            "key": key,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sourceRun": self.run,
            "step": step.name,
            "maxAgeSeconds": parse_duration(step.cache.max_age).total_seconds(),
            "outputs": st.get("outputs") or [],
            "metrics": st.get("metrics") or {},
        }
        if step.cache.enabled:
            path = self._entry_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(entry, indent=1), encoding="utf-8")

    def _attempt(self, step: Step, local: LocalStep) -> str | None:
        """The three processes of one attempt; None on success, else why it failed."""
        root = Path(local.env[pc.ENV_STEP_ROOT])
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        base = {**os.environ, pc.ENV_STEP: local.manifest.to_json(), pc.ENV_STEP_ROOT: str(root)}
        tag = f"{step.name}-a{local.manifest.attempt}"
        term = root / "termination-log"
        root.mkdir(parents=True, exist_ok=True)
        env = {**base, pc.ENV_TERMINATION_LOG: str(term)}
        if _run(step_program("inputs"), env, logs / f"{tag}-inputs.log") != 0:
            return "inputs: " + _read(term, logs / f"{tag}-inputs.log")
        # `python` in a step command is this interpreter (as the dev pod executor maps it).
        path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        main_env = {**os.environ, "PATH": path, **local.env}
        timeout = parse_duration(step.timeout).total_seconds() if step.timeout else None
        code = _run(local.main_argv, main_env, logs / f"{tag}-main.log", timeout)
        if code != 0:
            tail = _tail(logs / f"{tag}-main.log")
            return f"main exited {code}" + (f": {tail}" if tail else "")
        term.unlink(missing_ok=True)
        if _run(step_program("outputs"), env, logs / f"{tag}-outputs.log") != 0:
            return "outputs: " + _read(term, logs / f"{tag}-outputs.log")
        return self._collect(step, local, term)

    def _collect(self, step: Step, local: LocalStep, term: Path) -> str | None:
        stored = _path(pc.summary_uri(local.manifest.prefix))
        text = stored.read_text(encoding="utf-8") if stored.is_file() else _read(term, term)
        try:
            summary = parse_summary(text)
        except ContractError as err:
            return f"unreadable step summary: {err}"
        if not summary.succeeded:
            return summary.error or "the step reported no success"
        outputs = []
        for out in summary.outputs:
            body = {"name": out.name, "type": out.type, "uri": out.uri, "digest": out.digest,
                    "value": out.value, "size": out.size}  # fmt: skip
            outputs.append({k: v for k, v in body.items() if v is not None})
        self.steps[step.name].update(outputs=outputs, metrics=summary.metrics)
        return None


def _run(argv: list[str], env: Mapping[str, str], log: Path, timeout: float | None = None) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            out.write(f"\nmlkube: killed after the step timeout ({timeout:g}s)\n".encode())
            return 124
        except BaseException:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


def _read(first: Path, fallback: Path) -> str:
    try:
        text = first.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or _tail(fallback)
