"""The samples `mlkube dev up` installs: crds/samples/, with each sample Model's artifact
pointed at the bundled example model (examples/models/<modelName>/<version>/), uploaded to a
file:// store inside the dev workdir so the local operator can read and verify it.

The sample BatchEndpoint gets sample input in the store (devcluster/batch_samples.py) and its
schedules point there, suspended (a dev cluster does not score every night on its own); the
sample BatchJob is not created (its input exists nowhere here; `mlkube batch invoke` runs one).
The sample Pipeline's inputs (training code and labelled data: devcluster/pipeline_samples.py)
are uploaded to the store and its steps run the dev cluster's serving image; the sample
PipelineRun is not created (`mlkube pipeline run credit-retrain` starts one)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml

from mlkube.api.samples import SAMPLE_BASELINE_URI
from mlkube.contract import (
    API_VERSION,
    KIND_BATCH_ENDPOINT,
    KIND_BATCH_JOB,
    KIND_MODEL,
    KIND_PIPELINE,
    KIND_PIPELINE_RUN,
)
from mlkube.devcluster import batch_samples, pipeline_samples
from mlkube.devcluster.cluster import REPO_ROOT
from mlkube.k8s import Kube
from mlkube.storage import publish

SAMPLES = REPO_ROOT / "crds" / "samples"
EXAMPLE_MODELS = REPO_ROOT / "examples" / "models"
NAMESPACE = "default"


def load_samples(directory: Path = SAMPLES) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    # Models first: endpoints reference them.
    return sorted(docs, key=lambda d: d["kind"] != KIND_MODEL)


def localize_model(doc: dict[str, Any], store: Path | str, samples_dir: Path) -> dict[str, Any]:
    """The sample with its artifact uploaded from examples/ into the store (a local folder, or
    a store URI such as the real node's s3://), and its drift baseline (the sample training
    data's profile, built under `samples_dir`) when it names the sample one."""
    spec = doc["spec"]
    source = EXAMPLE_MODELS / spec["modelName"] / spec["version"]
    if not source.is_dir():
        raise FileNotFoundError(
            f"no example artifact for sample {doc['metadata']['name']} at {source}"
        )
    prefix = store.as_uri() if isinstance(store, Path) else store.rstrip("/")
    uri, _ = publish(str(source), prefix, namespace=NAMESPACE,
                     name=spec["modelName"], version=spec["version"])  # fmt: skip
    spec = {**spec, "artifact": {"uri": uri}}
    if (spec.get("baseline") or {}).get("uri") == SAMPLE_BASELINE_URI:
        profile = pipeline_samples.write_baseline(samples_dir / "baseline")
        name = f"{spec['modelName']}-baseline"
        uri, facts = publish(str(profile), prefix, namespace=NAMESPACE, name=name,
                             version=spec["version"])  # fmt: skip
        spec["baseline"] = {"uri": uri, "digest": facts.digest}
    return {**doc, "spec": spec}


def localize_batch_endpoint(doc: dict[str, Any], input_uri: str) -> dict[str, Any]:
    """The sample BatchEndpoint with its schedules reading the sample input, suspended."""
    schedules = [
        {**s, "input": {**s["input"], "uri": input_uri}, "suspend": True}
        for s in doc["spec"].get("schedules") or []
    ]
    return {**doc, "spec": {**doc["spec"], "schedules": schedules}}


SAMPLE_INPUTS = "file:///var/lib/mlkube/samples/"  # where crds/samples/ Pipelines read


def localize_pipeline(
    doc: dict[str, Any], inputs: dict[str, str], image: str | None, triggers: bool = True
) -> dict[str, Any]:
    """The sample Pipeline reading the uploaded sample inputs, its container steps running
    `image` (the dev cluster's serving image) when one is given; without its triggers when
    `triggers` is false (a test suite that drives traffic through `credit` for other reasons)."""

    def input_of(item: dict[str, Any]) -> dict[str, Any]:
        uri = item.get("uri", "")
        if not uri.startswith(SAMPLE_INPUTS):
            return item
        folder = uri[len(SAMPLE_INPUTS) :].strip("/")
        return {**item, "uri": inputs[folder]}

    steps = []
    for step in doc["spec"]["steps"]:
        step = {**step, "inputs": [input_of(i) for i in step.get("inputs") or []]}
        if image and step.get("image"):
            step["image"] = image
        steps.append(step)
    spec = {**doc["spec"], "steps": steps}
    if not triggers:
        spec.pop("triggers", None)
    return {**doc, "spec": spec}


def install_samples(
    kube: Kube,
    workdir: Path,
    timeout: float = 60.0,
    store_uri: str | None = None,
    step_image: str | None = None,
    pipeline_triggers: bool = True,
) -> None:
    models = []
    store = store_uri or (workdir / "store").as_uri()
    inputs = batch_samples.upload_inputs(workdir / "samples" / "batch", store)
    pipeline_inputs = pipeline_samples.upload_inputs(workdir / "samples" / "pipelines", store)
    for uri in [*inputs.values(), *pipeline_inputs.values()]:
        print(f"sample input {uri}", file=sys.stderr)
    for doc in load_samples():
        name = doc["metadata"]["name"]
        if doc["kind"] in (KIND_BATCH_JOB, KIND_PIPELINE_RUN) or kube.get(
            doc["apiVersion"], doc["kind"], name, NAMESPACE
        ):
            continue
        if doc["kind"] == KIND_MODEL:
            doc = localize_model(doc, store_uri or workdir / "store", workdir / "samples")
            models.append(name)
        elif doc["kind"] == KIND_BATCH_ENDPOINT:
            doc = localize_batch_endpoint(doc, inputs[batch_samples.CLEAN])
        elif doc["kind"] == KIND_PIPELINE:
            doc = localize_pipeline(doc, pipeline_inputs, step_image, pipeline_triggers)
        kube.create({**doc, "metadata": {**doc["metadata"], "namespace": NAMESPACE}})
        print(f"created {doc['kind']} {NAMESPACE}/{name}", file=sys.stderr)
    deadline = time.monotonic() + timeout
    for name in models:
        while (phase := _phase(kube, name)) not in ("Ready", "Failed"):
            if time.monotonic() > deadline:
                print(f"warning: Model {name} not Ready after {timeout}s", file=sys.stderr)
                return
            time.sleep(0.2)
        print(f"Model {NAMESPACE}/{name}: {phase}", file=sys.stderr)


def _phase(kube: Kube, name: str) -> str | None:
    obj = kube.get(API_VERSION, KIND_MODEL, name, NAMESPACE) or {}
    phase: str | None = obj.get("status", {}).get("phase")
    return phase
