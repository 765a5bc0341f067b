"""The benchmark's stand-in for the kubelet and the step's own reporting, the same for both
controllers, so the figures are controller overhead and nothing else.

Step pods of both systems carry `kwok.x-k8s.io/status: custom` (Argo: the Workflow's
`podMetadata`; mlkube: MLKUBE_BATCH_POD_ANNOTATIONS), so kwok leaves them alone and this
watcher completes each one as soon as the scheduler has bound it, with one status write as a
kubelet reports a finished pod (podexec_status, the dev pod executor's kubelet-shaped status).
What the step's sidecar reports comes with it, as each system's contract asks:
  - Argo: its `wait` container creates a WorkflowTaskResult and labels it
    `report-outputs-completed=true` (workflow/executor/taskresult.go); the controller holds a
    Succeeded pod's node until it sees that. One create, already complete, stands in for both.
  - mlkube: the `outputs` container writes the step summary as its termination message
    (docs/pipelines.md §2); it is in the same status write.
Times are taken on arrival of the watch events: `seen` (pod ADDED), `done` (status written).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kwatch import watch

from mlkube.devcluster import podexec_status as st
from mlkube.k8s import ApiError, Kube

CUSTOM = {"kwok.x-k8s.io/status": "custom"}
ARGO_WORKFLOW = "workflows.argoproj.io/workflow"
ARGO_NODE_ID = "workflows.argoproj.io/node-id"
ARGO_NODE_NAME = "workflows.argoproj.io/node-name"
MLKUBE_RUN = "mlkube.dev/pipeline-run"
MLKUBE_STEP = "mlkube.dev/pipeline-step"
SUMMARY = {"exitCode": 0, "outputs": []}  # a step with no declared outputs


@dataclass
class StepPod:
    name: str
    run: str  # the Workflow or PipelineRun
    step: str  # Argo's node name ("wf.s3") or mlkube's step name
    seen: float  # pod ADDED event arrived (monotonic)
    bound: float = 0.0  # nodeName seen
    done: float = 0.0  # our Succeeded status write returned


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def succeeded_status(pod: dict[str, Any], messages: dict[str, str]) -> dict[str, Any]:
    """The merge patch a kubelet writes for a pod whose containers all exited 0."""
    now = _now()
    spec = pod["spec"]
    inits = [
        st.container_status(c, st.terminated(0, now, now)) for c in spec.get("initContainers") or []
    ]
    mains = [
        st.container_status(c, st.terminated(0, now, now, messages.get(c["name"], "")))
        for c in spec["containers"]
    ]
    return st.pod_status(pod, "Succeeded", inits, mains, now, now)


class StepCompleter:
    """Completes the benchmark's step pods in one namespace (a watch in a thread)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.pods: dict[str, StepPod] = {}  # by uid
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True, name="step-completer")

    def __enter__(self) -> StepCompleter:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()

    def by_run(self, run: str) -> list[StepPod]:
        with self.lock:
            return sorted((p for p in self.pods.values() if p.run == run), key=lambda p: p.seen)

    def _run(self) -> None:
        path = self.kube.path("v1", "Pod", self.namespace)
        try:
            for kind, pod, arrived in watch(self.kube, path, self.stop):
                if kind != "DELETED":
                    self._on_pod(pod, arrived)
        except Exception as err:  # reported by check(), not lost in a thread
            self.errors.append(f"step completer stopped: {err!r}")

    def check(self) -> None:
        if self.errors:
            raise RuntimeError("; ".join(self.errors))

    def _on_pod(self, pod: dict[str, Any], arrived: float) -> None:
        meta = pod["metadata"]
        annotations = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        if annotations.get("kwok.x-k8s.io/status") != "custom":
            return
        uid = meta["uid"]
        with self.lock:
            step = self.pods.get(uid)
            if step is None:
                if ARGO_WORKFLOW in labels:
                    run, name = labels[ARGO_WORKFLOW], annotations.get(ARGO_NODE_NAME, "")
                else:
                    run, name = labels.get(MLKUBE_RUN, ""), labels.get(MLKUBE_STEP, "")
                step = self.pods[uid] = StepPod(meta["name"], run, name, arrived)
        phase = (pod.get("status") or {}).get("phase")
        if step.done or not pod["spec"].get("nodeName") or phase in ("Succeeded", "Failed"):
            return
        if meta.get("deletionTimestamp"):
            return
        step.bound = arrived
        try:
            self._complete(pod)
        except ApiError as err:
            if err.status != 404:  # a pod deleted meanwhile (cancel) is no error
                self.errors.append(f"completing {meta['name']}: {err}")
            return
        step.done = time.monotonic()

    def _complete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        messages: dict[str, str] = {}
        if ARGO_WORKFLOW in labels:
            self._argo_task_result(pod)
        else:
            messages["outputs"] = json.dumps(SUMMARY)
        self.kube.patch(
            "v1",
            "Pod",
            meta["name"],
            succeeded_status(pod, messages),
            self.namespace,
            subresource="status",
        )

    def _argo_task_result(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        workflow = meta["labels"][ARGO_WORKFLOW]
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Workflow"]
        result = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTaskResult",
            "metadata": {
                "name": meta["annotations"][ARGO_NODE_ID],
                "namespace": self.namespace,
                "labels": {
                    ARGO_WORKFLOW: workflow,
                    "workflows.argoproj.io/report-outputs-completed": "true",
                },
                "ownerReferences": [
                    {k: o[k] for k in ("apiVersion", "kind", "name", "uid")} for o in owners
                ],
            },
        }
        try:
            self.kube.create(result)
        except ApiError as err:
            if err.status != 409:
                raise
