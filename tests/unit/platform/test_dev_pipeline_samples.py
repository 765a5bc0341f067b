"""What `make dev` sets up for pipelines: deterministic labelled training data whose label rule
a logistic model can learn, the sample Pipeline reading the uploaded inputs with the dev
cluster's image, and the image digests that make its steps cacheable without a registry."""

from __future__ import annotations

import csv
from pathlib import Path

from mlkube.cli.samples import load_samples, localize_pipeline
from mlkube.devcluster import image_digests, pipeline_samples


def test_training_data_is_deterministic_and_labelled(tmp_path: Path) -> None:
    first = pipeline_samples.write_training(tmp_path / "a")
    second = pipeline_samples.write_training(tmp_path / "b")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)
    rows = [row for n in names for row in csv.DictReader((first / n).open())]
    assert len(rows) == pipeline_samples.FILES * pipeline_samples.ROWS
    labels = {row["default"] for row in rows}
    assert labels == {"0", "1"}
    # Both classes are well represented (a constant label would make the gate meaningless).
    share = sum(row["default"] == "1" for row in rows) / len(rows)
    assert 0.3 < share < 0.7


def test_sample_pipeline_reads_the_uploaded_inputs_with_the_dev_image() -> None:
    [doc] = [d for d in load_samples() if d["kind"] == "Pipeline"]
    uploaded = {
        pipeline_samples.CODE: "s3://dev/samples/credit-retrain-code/",
        pipeline_samples.TRAINING: "s3://dev/samples/credit-training/",
    }
    local = localize_pipeline(doc, uploaded, "localhost/mlkube-serving:abc")
    container = [s for s in local["spec"]["steps"] if s.get("image")]
    assert container, "the sample has container steps"
    uris = {i["uri"] for s in container for i in s.get("inputs") or [] if "uri" in i}
    assert uris == set(uploaded.values())
    assert {s["image"] for s in container} == {"localhost/mlkube-serving:abc"}
    # Without a dev image (kwok mode) the sample keeps its own image reference.
    kept = localize_pipeline(doc, uploaded, None)
    assert {s["image"] for s in kept["spec"]["steps"] if s.get("image")} == {
        s["image"] for s in doc["spec"]["steps"] if s.get("image")
    }


def test_ctr_listing_gives_the_digest_of_the_wanted_refs_only() -> None:
    listing = (
        "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        "localhost/mlkube-serving:abc application/vnd.docker.distribution.manifest.v2+json"
        " sha256:" + "1" * 64 + " 1.1 GiB linux/amd64 -\n"
        "localhost/other:1 application/vnd.oci.image.manifest.v1+json sha256:"
        + "2" * 64
        + " 3 MiB linux/amd64 -\n"
    )
    found = image_digests.parse_ctr_listing(listing, {"localhost/mlkube-serving:abc"})
    assert found == {"localhost/mlkube-serving:abc": "sha256:" + "1" * 64}
    assert image_digests.setting({"b": "sha256:2", "a": "sha256:1"}) == "a=sha256:1,b=sha256:2"


def test_source_digest_moves_with_the_code_a_step_runs(tmp_path: Path) -> None:
    code = tmp_path / "serving-image" / "mlkube_serving"
    code.mkdir(parents=True)
    (code / "app.py").write_text("print(1)\n")
    before = image_digests.source_digest(tmp_path)
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert image_digests.source_digest(tmp_path) == before  # bytecode is not source
    (code / "app.py").write_text("print(2)\n")
    assert image_digests.source_digest(tmp_path) != before


def test_the_sample_green_model_gets_the_training_datas_drift_profile(tmp_path: Path) -> None:
    # Shifted traffic on `credit` starts the retrain only if green (drift on) has a baseline.
    import json

    from mlkube.cli.samples import localize_model

    [green] = [d for d in load_samples() if d["metadata"]["name"] == "credit-risk-v4"]
    [endpoint] = [d for d in load_samples() if d["kind"] == "OnlineEndpoint"]
    [dep] = [d for d in endpoint["spec"]["deployments"] if d["model"] == "credit-risk-v4"]
    local = localize_model(green, tmp_path / "store", tmp_path / "samples")
    baseline = local["spec"]["baseline"]
    assert baseline["uri"].startswith((tmp_path / "store").as_uri())
    assert baseline["digest"].startswith("sha256:")
    profile = pipeline_samples.write_baseline(tmp_path / "again")
    document = json.loads(profile.read_bytes())
    assert document["windowSize"] == dep["drift"]["windowSize"]
    assert sorted(f["name"] for f in document["features"]) == sorted(f"f{i}" for i in range(20))
    # Deterministic: a second make dev uploads the same bytes (same digest, create-only).
    first = (tmp_path / "samples" / "baseline" / "credit-risk.profile.json").read_bytes()
    assert profile.read_bytes() == first
