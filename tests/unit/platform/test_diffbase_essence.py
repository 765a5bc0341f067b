"""Kopf's diff-base stays far below the 256 KiB annotations limit for any CRD-valid object.

Before, the whole spec went into the `mlkube.dev/last-handled-configuration` annotation: a
Model with 64 lineage parameters of 4 KiB (valid per the CRD) needed more than the API server
allows for all annotations together, and every patch of the object failed.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any, cast

import kopf
import orjson
from kopf._cogs.structs.diffs import diff  # the function Kopf computes handler diffs with

from mlkube.api.common import MAX_MAP_ENTRIES, MAX_TEXT
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.model import ModelSpec
from mlkube.builders.model_audit import changed_paths
from mlkube.handlers.settings import (
    PROGRESS_MESSAGE_LIMIT,
    BoundedProgressStorage,
    CompactDiffBaseStorage,
)
from mlkube.reconcile.essence import (
    MARK,
    SUBTREE_LIMIT,
    TOTAL_LIMIT,
    compact_essence,
    digest_of,
    json_size,
)

ANNOTATIONS_LIMIT = 256 * 1024


def tensor(i: int) -> dict[str, Any]:
    return {"name": f"t{i:04d}-" + "n" * 200, "datatype": "FP32", "shape": [-1] + [1024] * 31}


def largest_model_spec() -> dict[str, Any]:
    """A Model spec near the CRD's limits (fits etcd's 1.5 MiB request limit)."""
    spec = {
        "modelName": "m" * 63,
        "version": "v" * 63,
        "framework": "sklearn",
        "artifact": {"uri": "s3://" + "a" * 2000},
        "description": "d" * MAX_TEXT,
        "properties": {f"key-{i:02d}": "p" * 256 for i in range(MAX_MAP_ENTRIES)},
        "lineage": {
            "parameters": {f"param-{i:02d}": "q" * MAX_TEXT for i in range(MAX_MAP_ENTRIES)},
            "metrics": {f"metric-{i:02d}": 0.5 for i in range(MAX_MAP_ENTRIES)},
        },
        "signature": {
            "inputs": [tensor(i) for i in range(600)],
            "outputs": [tensor(i) for i in range(600)],
        },
    }
    ModelSpec.model_validate(spec)  # really CRD-valid
    return spec


def essence(spec: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {"spec": spec, "metadata": {"labels": {"a": "b"}, "annotations": annotations}}


def test_a_small_object_is_kept_as_is() -> None:
    small = essence({"modelName": "m", "artifact": {"uri": "s3://b/m"}}, note="x")
    assert compact_essence(small) == small


def test_a_model_at_the_limits_fits_the_annotation() -> None:
    big = essence(largest_model_spec(), note="n" * 100_000)
    assert json_size(big) > ANNOTATIONS_LIMIT  # what Kopf stored before
    compact = compact_essence(big)
    assert json_size(compact) <= TOTAL_LIMIT
    spec = compact["spec"]
    assert isinstance(spec, dict)
    assert spec["modelName"] == "m" * 63 and spec["framework"] == "sklearn"
    signature = spec["signature"]
    assert isinstance(signature, dict) and str(signature["inputs"]).startswith(MARK)
    lineage = spec["lineage"]
    assert isinstance(lineage, dict) and str(lineage["parameters"]).startswith(MARK)
    assert compact_essence(copy.deepcopy(big)) == compact  # deterministic: no phantom diffs


def test_a_change_inside_a_digested_field_is_a_diff_at_its_path() -> None:
    before = largest_model_spec()
    after = copy.deepcopy(before)
    after["lineage"]["parameters"]["param-07"] = "changed"
    after["description"] = "short now"
    changes = diff(compact_essence(essence(before)), compact_essence(essence(after)))
    paths = changed_paths([(op, field[1:], old, new) for op, field, old, new in changes])
    assert sorted(paths) == ["spec.description", "spec.lineage.parameters"]
    assert diff(compact_essence(essence(before)), compact_essence(essence(before))) == ()


def test_every_subtree_below_the_stanzas_is_bounded() -> None:
    compact = compact_essence(essence(largest_model_spec()))
    for stanza in compact.values():
        assert isinstance(stanza, dict)
        for value in stanza.values():
            assert json_size(value) <= SUBTREE_LIMIT
    text = json.dumps(compact)
    assert "q" * 100 not in text


def _body(spec: dict[str, Any]) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "mlkube.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "m", "namespace": "ns", "annotations": {"team": "a"}},
            "spec": spec,
            "status": {"phase": "Ready"},
        }
    )


def test_the_operator_stores_a_compact_diff_base_and_bounded_progress() -> None:
    diffbase = CompactDiffBaseStorage(prefix="mlkube.dev", key="last-handled-configuration")
    body = _body(largest_model_spec())
    patch = kopf.Patch()
    diffbase.store(body=body, patch=patch, essence=diffbase.build(body=body))
    stored = patch["metadata"]["annotations"]["mlkube.dev/last-handled-configuration"]
    assert len(stored) <= TOTAL_LIMIT
    assert json.loads(stored)["metadata"] == {"annotations": {"team": "a"}}

    progress = BoundedProgressStorage(prefix="mlkube.dev")
    record = kopf.ProgressRecord(started="2026-01-01T00:00:00Z", retries=3, message="e" * 100_000)
    patch = kopf.Patch()
    progress.store(key=kopf.HandlerId("reconcile_model"), record=record, body=body, patch=patch)
    encoded = patch["metadata"]["annotations"]["mlkube.dev/reconcile_model"]
    assert len(json.loads(encoded)["message"]) <= PROGRESS_MESSAGE_LIMIT
    assert json.loads(encoded)["retries"] == 3


def test_an_endpoint_with_large_env_values_fits_too() -> None:
    env = [{"name": f"VAR_{i}", "value": "v" * MAX_TEXT} for i in range(16)]
    spec = {
        "deployments": [{"name": f"d{i}", "model": "m", "env": env} for i in range(16)],
        "traffic": {"d0": 100},
    }
    OnlineEndpointSpec.model_validate(spec)
    big = essence(spec)
    assert json_size(big) > ANNOTATIONS_LIMIT
    compact = compact_essence(big)
    assert json_size(compact) <= TOTAL_LIMIT
    spec_out = compact["spec"]
    assert isinstance(spec_out, dict) and spec_out["traffic"] == {"d0": 100}
    assert str(spec_out["deployments"]).startswith(MARK)


def test_the_diff_base_is_kopfs_essence_built_without_copying_status() -> None:
    """The slim build (status and system metadata never deep-copied) gives exactly Kopf's
    essence: same labels, annotations, spec and top-level stanzas; the body is not changed."""
    body_raw: dict[str, Any] = {
        "apiVersion": "mlkube.dev/v1alpha1",
        "kind": "OnlineEndpoint",
        "metadata": {
            "name": "e", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 3,
            "labels": {"team": "a"},
            "annotations": {
                "note": "x",
                "mlkube.dev/last-handled-configuration": "{}",
                "mlkube.dev/reconcile_endpoint": "{}",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 50,
        },
        "spec": {"deployments": [{"name": "blue", "model": "m"}], "traffic": {"blue": 100}},
        "data": {"extra": [1, 2, 3]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}] * 50},
    }  # fmt: skip
    before = copy.deepcopy(body_raw)
    ours = CompactDiffBaseStorage(prefix="mlkube.dev", key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix="mlkube.dev", key="last-handled-configuration")
    for raw in (body_raw, {**body_raw, "metadata": {"name": "bare"}}):
        body = kopf.Body(cast(kopf.RawBody, raw))
        assert ours.build(body=body) == kopfs.build(body=body)
    built = ours.build(body=kopf.Body(cast(kopf.RawBody, body_raw)))
    assert built["metadata"]["labels"] == {"team": "a"}
    annotations = built["metadata"]["annotations"]
    assert annotations["note"] == "x"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert "status" not in built and built["data"] == {"extra": [1, 2, 3]}
    assert body_raw == before


def _reference_compact(value: object, depth: int, keep_depth: int, limit: int) -> object:
    """The compaction rule as first written (every node measured, bottom-up)."""
    if isinstance(value, dict):
        value = {k: _reference_compact(v, depth + 1, keep_depth, limit) for k, v in value.items()}
    elif isinstance(value, list):
        value = [_reference_compact(v, depth + 1, keep_depth, limit) for v in value]
    if depth >= keep_depth and json_size(value) > limit:
        return digest_of(value)
    return value


def test_compaction_measures_only_what_can_be_over_the_limit_with_the_same_result() -> None:
    rng = random.Random(15)

    def tree(depth: int) -> object:
        if depth > 4 or rng.random() < 0.3:
            return "s" * rng.choice([1, 10, 100, 1000, 3000])
        if rng.random() < 0.5:
            return [tree(depth + 1) for _ in range(rng.randint(0, 5))]
        return {f"k{i}": tree(depth + 1) for i in range(rng.randint(0, 5))}

    for _ in range(200):
        spec = tree(2)
        raw = {"spec": spec, "metadata": {"annotations": {"a": "b" * rng.choice([1, 5000])}}}
        want = {k: _reference_compact(v, 1, 2, SUBTREE_LIMIT) for k, v in raw.items()}
        if json_size(want) > TOTAL_LIMIT:
            want = {k: _reference_compact(v, 1, 1, SUBTREE_LIMIT) for k, v in raw.items()}
        assert compact_essence(raw) == want


def test_kopfs_watch_events_are_decoded_by_orjson_and_kopf_uses_nothing_else_of_json() -> None:
    """Kopf's API module is given an object with only `loads`: if a Kopf upgrade uses more of
    `json` there, this fails instead of the operator's watches."""
    import inspect

    from kopf._cogs.clients import api as kopf_api

    from mlkube.handlers.settings import decode_watch_events_fast

    used = set(re.findall(r"\bjson\.(\w+)", inspect.getsource(kopf_api)))
    assert used == {"loads"}, used
    decode_watch_events_fast()
    line = b'{"type":"ADDED","object":{"metadata":{"name":"x"},"spec":{"n":1.5}}}'
    assert kopf_api.json.loads(line.decode()) == json.loads(line)
    assert kopf_api.json.loads is orjson.loads
