"""What the server does, independent of HTTP: hold models, answer health and metadata, infer.

Protocol adapters translate their wire formats into `InferenceRequest`s and call this; it never
sees a header or a status line, so one dataplane serves V2, KServe V1, Seldon and Azure ML alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mlkube_serving import __version__
from mlkube_serving.errors import ModelNotFound, ModelNotReady
from mlkube_serving.runtimes.base import ModelRuntime
from mlkube_serving.tensors import InferenceRequest, InferenceResponse, Tensor

log = logging.getLogger(__name__)

SERVER_NAME = "mlkube"
EXTENSIONS = ["binary_tensor_data"]
WARMUP_ROUNDS = 3


class SampleSink(Protocol):
    """Receives served requests off the hot path (the drift hook).

    The dataplane flips the sink's coin itself (`coin() < rate`) and calls `offer` only for
    sampled requests: an unsampled request then costs a C call and a comparison, not a Python
    call with five arguments (a fifth of a microsecond inside a busy server, most of what the
    hook cost at its default rate)."""

    rate: float
    coin: Callable[[], float]
    # The drift hook's current body lane (`drift_lane.BodyLane`), which the plain V2 shortcut
    # appends to inline; None for a sink without one.
    bodies: Any

    def offer(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        outputs: list[Tensor],
        n_features: int | None = None,
    ) -> None: ...


@dataclass
class ModelEntry:
    """A served model: its runtime and whether it finished loading and warming up."""

    name: str
    version: str | None
    runtime: ModelRuntime
    ready: bool = False
    load_seconds: float = 0.0


def warm_up(runtime: ModelRuntime) -> None:
    """Run a few predictions so the first real request does not pay for lazy initialisation."""
    for rows in (1, 8):
        sample = runtime.sample_inputs(rows)
        if sample is None:
            return
        for _ in range(WARMUP_ROUNDS):
            try:
                runtime.predict(sample, None)
            except Exception as exc:  # a model may reject synthetic data; that is not fatal
                log.warning("warm-up of %s skipped: %s", runtime.model_path, exc)
                return


class DataPlane:
    """Models by name, health, metadata and inference."""

    def __init__(self, sink: SampleSink | None = None) -> None:
        self._models: dict[str, ModelEntry] = {}
        self.sink = sink
        self.draining = False

    def load_model(self, name: str, version: str | None, runtime: ModelRuntime) -> ModelEntry:
        """Load, warm up and register a model; it is ready only after both succeed."""
        entry = ModelEntry(name, version, runtime)
        self._models[name] = entry
        started = time.perf_counter()
        runtime.load()
        warm_up(runtime)
        entry.load_seconds = time.perf_counter() - started
        entry.ready = True
        log.info(
            "model %s loaded in %.2fs, runtime %s (%s)",
            name,
            entry.load_seconds,
            runtime.active_runtime,
            runtime.runtime_note,
        )
        return entry

    @property
    def models(self) -> list[ModelEntry]:
        return list(self._models.values())

    def has_model(self, name: str | None) -> bool:
        return name in self._models

    @property
    def inline_safe(self) -> bool:
        """True when every runtime is fast library code that may run on the event loop."""
        return all(entry.runtime.inline_safe for entry in self._models.values())

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return (
            not self.draining and bool(self._models) and all(e.ready for e in self._models.values())
        )

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        entry = self._models.get(name)
        if entry is None:
            raise ModelNotFound(f"model {name!r} not found")
        if version is not None and version != entry.version:
            served = f"version {entry.version!r}" if entry.version else "no versions"
            raise ModelNotFound(f"model {name!r} has no version {version!r} (serving {served})")
        return entry

    def plain_entry(self, name: str, version: str | None) -> ModelEntry | None:
        """The model when it can answer v2_plain's shortcut now: served, ready, not draining,
        with a plain predictor and a known feature count; else None (the general path)."""
        entry = self._models.get(name)
        if entry is None or not entry.ready or self.draining:
            return None
        if version is not None and version != entry.version:
            return None
        runtime = entry.runtime
        if runtime.plain_predict is None or runtime.n_features is None:
            return None
        return entry

    def default_model(self) -> ModelEntry:
        """The model for protocols whose paths name none (Seldon, Azure ML /score)."""
        for entry in self._models.values():
            return entry
        raise ModelNotFound("no model is loaded")

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return self.get(name, version).ready and not self.draining

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        entry = self.get(name, version)
        runtime = entry.runtime
        return {
            "name": entry.name,
            "versions": [entry.version] if entry.version else [],
            "platform": runtime.active_runtime,
            "inputs": [spec.to_dict() for spec in runtime.inputs],
            "outputs": [spec.to_dict() for spec in runtime.outputs],
            "parameters": {
                "framework": runtime.framework,
                "runtime": runtime.active_runtime,
                "runtime_note": runtime.runtime_note,
                "feature_names": runtime.feature_names,
            },
        }

    def infer(self, name: str, version: str | None, request: InferenceRequest) -> InferenceResponse:
        entry = self.get(name, version)
        return self.infer_entry(entry, request)

    def infer_entry(self, entry: ModelEntry, request: InferenceRequest) -> InferenceResponse:
        if not entry.ready or self.draining:
            raise ModelNotReady(f"model {entry.name!r} is not ready")
        outputs = entry.runtime.predict(request.inputs, request.outputs)
        # `respond`, inlined: this is every unbatched request's path.
        sink = self.sink
        if sink is not None and sink.coin() < sink.rate:
            runtime = entry.runtime
            sink.offer(entry.name, runtime.feature_names, request.inputs, outputs,
                       runtime.n_features)  # fmt: skip
        return InferenceResponse(entry.name, entry.version, outputs, request.id)

    def predict_entry(self, entry: ModelEntry, request: InferenceRequest) -> list[Tensor]:
        """The runtime's outputs for `request` (batching: a merged request), nothing else."""
        if not entry.ready or self.draining:
            raise ModelNotReady(f"model {entry.name!r} is not ready")
        return entry.runtime.predict(request.inputs, request.outputs)

    def respond(
        self, entry: ModelEntry, request: InferenceRequest, outputs: list[Tensor]
    ) -> InferenceResponse:
        """The response to `request` given its outputs; the drift hook samples it here."""
        sink = self.sink
        if sink is not None and sink.coin() < sink.rate:
            runtime = entry.runtime
            sink.offer(entry.name, runtime.feature_names, request.inputs, outputs,
                       runtime.n_features)  # fmt: skip
        return InferenceResponse(entry.name, entry.version, outputs, request.id)
