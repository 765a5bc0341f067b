"""The plain V2 shortcut (protocols/v2_plain.py) against the general path (`v2.infer`): for
any body it answers, the same bytes; bodies of the plain shape it does answer; anything else
is left to the general path. Real models (ONNX-accelerated and plain scikit-learn)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from mlkube_serving import app as app_module
from mlkube_serving.dataplane import DataPlane
from mlkube_serving.drift.bodies import decode_samples
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_lane import BODIES_BUDGET, SAMPLE_BYTES
from mlkube_serving.errors import ServingError, render_error
from mlkube_serving.protocols import Call, Reply, v2, v2_plain
from mlkube_serving.protocols.v2_plain import infer_plain
from mlkube_serving.runtimes import create_runtime
from mlkube_serving.runtimes.sklearn import SklearnRuntime
from mlkube_serving.tensors import Tensor
from support.serving import N_FEATURES, make_data, v2_body
from support.serving_asgi import make_app

MODELS = ("forest", "logistic", "labels", "regressor", "native")
BINARY = (b"inference-header-content-length", b"0")


@pytest.fixture(scope="module")
def dataplane(
    forest_dir: Path, logistic_dir: Path, monkeypatch_module: pytest.MonkeyPatch
) -> DataPlane:
    X, y = make_data()
    plane = DataPlane()
    plane.load_model("forest", None, create_runtime(str(forest_dir)))
    plane.load_model("logistic", "3", create_runtime(str(logistic_dir)))
    labels = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=1)
    labelled = SklearnRuntime("labels", labels.fit(X, np.where(y == 1, "good", "bad")))
    labelled.load()
    plane.load_model("labels", None, labelled)
    regressor = SklearnRuntime("regressor", LinearRegression().fit(X, y * 2.5))
    regressor.load()
    plane.load_model("regressor", None, regressor)
    monkeypatch_module.setenv("MLKUBE_ONNX_ACCELERATION", "0")
    native = SklearnRuntime("native", RandomForestClassifier(n_estimators=3).fit(X, y))
    native.load()
    monkeypatch_module.delenv("MLKUBE_ONNX_ACCELERATION")
    plane.load_model("native", None, native)
    for entry in plane._models.values():
        entry.ready = True
    return plane


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def general(plane: DataPlane, model: str, version: str | None, body: bytes,
            headers: list[tuple[bytes, bytes]]) -> Reply:  # fmt: skip
    try:
        return v2.infer(Call(plane, model, version, body, headers))
    except ServingError as exc:
        status, text = render_error(exc)
        return Reply(status, text)


def as_tuple(reply: Reply) -> tuple[Any, ...]:
    return reply.status, reply.body, reply.headers, reply.content_type


values = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(2**40), 2**40)
odd_values = st.sampled_from([True, None, "1.5", "x", [1.0], {}, 2**63 - 1, -(2**63), 1e300])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]], bool]:
    """A request body and headers, and whether it is of the plain shape (nothing perturbed)."""
    plain = True
    rows = draw(st.integers(1, 4))
    width = N_FEATURES
    data: Any = [[draw(values) for _ in range(width)] for _ in range(rows)]
    if draw(st.booleans()):
        data = [v for row in data for v in row]  # flat data is plain too
    shape: Any = [rows, width]
    tensor: dict[str, Any] = {"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}
    payload: dict[str, Any] = {"inputs": [tensor]}
    if draw(st.booleans()):
        payload["id"] = draw(st.text(max_size=8))
    headers = [(b"host", b"x"), (b"content-type", b"application/json")]
    for change in draw(st.lists(st.integers(0, 13), max_size=3)):
        plain = False
        if change == 0:
            odd_shapes = [[rows * width], [rows, width, 1], [0, width], [rows, width + 1],
                          [True, width], [rows]]  # fmt: skip
            tensor["shape"] = draw(st.sampled_from(odd_shapes))
        elif change == 1:
            tensor["datatype"] = draw(st.sampled_from(["FP32", "INT64", "BYTES", "fp64", 5]))
        elif change == 2:
            tensor["name"] = draw(st.sampled_from([3, None, ["a"]]))
        elif change == 3:
            tensor["parameters"] = draw(st.sampled_from([{}, {"binary_data_size": 0}]))
        elif change == 4:
            payload["id"] = draw(st.sampled_from([7, None, ["x"]]))
        elif change == 5:
            payload["outputs"] = draw(st.sampled_from([[{"name": "predict"}], [], "x"]))
        elif change == 6:
            payload["parameters"] = draw(st.sampled_from([{}, {"binary_data_output": True}]))
        elif change in (7, 8, 11) and "data" not in tensor:
            pass
        elif change == 7:
            data = tensor["data"]
            flat = data[0] if data and isinstance(data[0], list) else data
            if flat:  # change 8 may have emptied it
                flat[draw(st.integers(0, len(flat) - 1))] = draw(odd_values)
        elif change == 8:
            tensor["data"] = tensor["data"][:-1] or [[]]
        elif change == 9:
            headers.append(BINARY)
        elif change == 10:
            payload["inputs"] = [tensor, dict(tensor, name="input-1")]
        elif change == 11:
            del tensor["data"]
            tensor["extra"] = 1
        elif change == 12:
            odd = draw(st.sampled_from([[payload], "inputs", {"inputs": tensor}]))
            return orjson.dumps(odd), headers, False
        else:
            return b'{"inputs": [', headers, False
    return orjson.dumps(payload), headers, plain


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(case=bodies(), model=st.sampled_from(MODELS), version=st.sampled_from([None, "3", "4"]))
def test_the_shortcut_answers_exactly_as_the_general_path(
    dataplane: DataPlane, case: tuple[bytes, list[tuple[bytes, bytes]], bool], model: str,
    version: str | None,
) -> None:  # fmt: skip
    body, headers, plain = case
    version = version if model == "logistic" else None
    expected = general(dataplane, model, version, body, headers)
    answered = infer_plain(dataplane, model, version, body, headers)
    if answered is not None:
        assert as_tuple(answered) == as_tuple(expected)
        assert expected.status == 200
    if plain and version != "4" and expected.status == 200:
        # The plain shape is answered by the shortcut, not just left to the general path.
        assert answered is not None, body


def test_the_answer_is_the_model_s(dataplane: DataPlane) -> None:
    X, _ = make_data()
    body = orjson.dumps(v2_body(X[:3], id="r1"))
    answered = infer_plain(dataplane, "labels", None, body, [])
    assert answered is not None
    decoded = orjson.loads(answered.body)
    runtime = dataplane.get("labels").runtime
    assert isinstance(runtime, SklearnRuntime)
    assert decoded["outputs"][0]["data"] == runtime.estimator.predict(X[:3]).tolist()
    assert decoded["outputs"][0]["datatype"] == "BYTES" and decoded["id"] == "r1"


def test_models_not_ready_draining_or_without_a_plain_predictor_go_the_general_way(
    dataplane: DataPlane, onnx_dir: Path
) -> None:
    X, _ = make_data()
    body = orjson.dumps(v2_body(X[:1]))
    entry = dataplane.get("forest")
    entry.ready = False
    try:
        assert infer_plain(dataplane, "forest", None, body, []) is None
    finally:
        entry.ready = True
    dataplane.draining = True
    try:
        assert infer_plain(dataplane, "forest", None, body, []) is None
    finally:
        dataplane.draining = False
    assert infer_plain(dataplane, "forest", None, body, []) is not None
    onnx = DataPlane()
    onnx.load_model("onnx", None, create_runtime(str(onnx_dir)))
    onnx.get("onnx").ready = True
    assert onnx.get("onnx").runtime.plain_predict is None
    assert infer_plain(onnx, "onnx", None, body, []) is None
    assert infer_plain(dataplane, "unknown", None, body, []) is None


class Recorder:
    rate = 1.0
    bodies = None  # no body lane: the shortcut offers samples as tensors

    def __init__(self) -> None:
        self.offers: list[tuple[Any, ...]] = []

    def coin(self) -> float:
        return 0.0

    def offer(self, model: str, names: list[str] | None, inputs: list[Tensor],
              outputs: list[Tensor], n_features: int | None = None) -> None:  # fmt: skip
        shown = [(t.name, t.datatype, t.data.tolist()) for t in (*inputs, *outputs)]
        self.offers.append((model, names, shown, n_features))


def test_the_drift_hook_gets_what_the_general_path_gives_it(dataplane: DataPlane) -> None:
    X, _ = make_data()
    body = orjson.dumps(v2_body(X[:2]))
    sink = Recorder()
    dataplane.sink = sink
    try:
        assert infer_plain(dataplane, "forest", None, body, []) is not None
        general(dataplane, "forest", None, body, [])
    finally:
        dataplane.sink = None
    assert len(sink.offers) == 2
    assert sink.offers[0] == sink.offers[1]
    assert sink.offers[0][2][0][2] == X[:2].tolist()


def test_the_app_records_plain_answers_and_keeps_payload_logging_on_the_general_path(
    forest_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = make_app(forest_dir, name="forest", inline_max_bytes=4096)
    served.dataplane.get("forest").ready = True
    X, _ = make_data()
    body = orjson.dumps(v2_body(X[:1]))
    route = served.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"10")])
    assert route is None  # the lane is shut until the models loaded
    served.open_inline_lane()
    route = served.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"10")])
    assert route is not None
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(app_module.metrics, "observe_request", lambda *a: seen.append(a))
    shortcut: list[bytes] = []
    real = app_module.infer_plain

    def spy(*args: Any) -> Reply | None:
        reply = real(*args)
        shortcut.append(b"" if reply is None else reply.body)
        return reply

    monkeypatch.setattr(app_module, "infer_plain", spy)
    reply = served.serve_inline(route, [], body)
    assert reply.status == 200 and shortcut == [reply.body]
    assert [a[:3] for a in seen] == [("forest", "v2", 200)]
    served.payload_log = object()  # type: ignore[assignment]
    monkeypatch.setattr(served, "_record", lambda *a: seen.append(("recorded",)))
    again = served.serve_inline(route, [], body)
    assert again.body == reply.body and len(shortcut) == 1 and seen[-1] == ("recorded",)


class Captured(DriftHook):
    """A drift hook whose deliveries are kept (bodies as the sidecar would receive them)."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", 1.0, coin=lambda: 0.0)
        self.sent: list[bytes] = []

    async def _post(self, body: bytes, head: bytes) -> bool:
        self.sent.append(body)
        return True


def received(hook: Captured) -> dict[str, tuple[Any, Any, int]]:
    """Per model, what the sidecar reads from the hook's deliveries: rows, predictions and
    samples, in order."""
    asyncio.run(hook.flush())
    seen: dict[str, list[Any]] = {}
    for body in hook.sent:
        batch = decode_samples(body)
        assert batch.invalid == 0
        seen.setdefault(batch.model, []).append(batch)
    return {
        model: (
            np.concatenate([b.rows for b in batches]),
            np.concatenate([b.predictions for b in batches]),
            sum(b.samples for b in batches),
        )
        for model, batches in seen.items()
    }


def test_the_drift_hook_keeps_the_same_samples_through_its_body_lane(
    dataplane: DataPlane,
) -> None:
    """`DriftHook.offer_plain` (the shortcut keeps the request and reply bodies) against
    `offer` (the general path copies rows): the sidecar reads the same rows, predictions
    and sample counts from both, across lane switches (forest labels, regressor floats)."""
    X, _ = make_data()
    hooks = [Captured() for _ in range(2)]
    bodies = [orjson.dumps(v2_body(X[i : i + rows])) for i, rows in enumerate([1, 1, 3, 1, 2])]
    try:
        for model in ("forest", "regressor", "forest"):
            for body in bodies:
                dataplane.sink = hooks[0]
                assert infer_plain(dataplane, model, None, body, []) is not None
                dataplane.sink = hooks[1]
                general(dataplane, model, None, body, [])
    finally:
        dataplane.sink = None
    assert len(hooks[0]._body_lanes) == 2 and not hooks[0]._lanes  # every sample as bodies
    assert hooks[0].pending() == hooks[1].pending() == 15
    plain, copied = received(hooks[0]), received(hooks[1])
    assert plain.keys() == copied.keys() == {"forest", "regressor"}
    for model, (rows, predictions, samples) in plain.items():
        want_rows, want_predictions, want_samples = copied[model]
        twice = model == "forest"  # offered twice as often
        assert samples == want_samples == (10 if twice else 5)
        assert rows.shape == (16 if twice else 8, N_FEATURES)
        assert np.array_equal(rows, want_rows)
        assert predictions.dtype.kind == want_predictions.dtype.kind
        assert np.array_equal(predictions, want_predictions)


def test_a_sample_the_body_lane_does_not_take_goes_the_copying_way(
    dataplane: DataPlane,
) -> None:
    """A request and reply over `SAMPLE_BYTES` or a full body lane: the sample still reaches
    the sidecar (through the row lane), nothing is lost or doubled."""
    X, _ = make_data()
    hook = Captured()
    one, many = (orjson.dumps(v2_body(X[:rows])) for rows in (1, 50))
    assert len(many) > SAMPLE_BYTES > 2 * len(one)
    dataplane.sink = hook
    try:
        assert infer_plain(dataplane, "forest", None, one, []) is not None
        assert infer_plain(dataplane, "forest", None, many, []) is not None
        lane = hook.bodies
        lane.limit = 2  # full now
        assert infer_plain(dataplane, "forest", None, one, []) is not None
    finally:
        dataplane.sink = None
    assert len(lane.items) == 2 and hook.pending() == 3
    rows, _, samples = received(hook)["forest"]
    assert samples == 3  # lanes deliver in their own order: compare the rows as a set
    expected = np.concatenate([X[:1], X[:50], X[:1]])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, expected))


def test_the_inline_body_lane_keeps_what_offer_plain_keeps(dataplane: DataPlane) -> None:
    """`infer_plain` keeps a sample in the hook's body lane inline; `DriftHook.offer_plain`
    is the same rule as a method. Fed the same bodies (small and big ones, past the lane's
    count and byte limits), both hooks hold the same items and bytes, wake their senders at
    the same sample and hand the same samples to the copying way."""
    X, _ = make_data()
    small, big = (orjson.dumps(v2_body(X[:rows])) for rows in (1, 18))
    assert len(small) < len(big) < SAMPLE_BYTES < 2 * len(big)
    inline, method = Captured(), Captured()
    entry = dataplane.get("forest")
    names, width = entry.runtime.feature_names, entry.runtime.n_features
    copied: Counter[str] = Counter()  # samples the lane did not take, per hook

    def count(*args: Any) -> None:
        copied["inline"] += 1

    inline.offer_rows = count  # type: ignore[method-assign]
    by_method = inline.offer_plain

    def called(*args: Any) -> bool:
        copied["inline offer_plain"] += 1
        return by_method(*args)

    inline.offer_plain = called  # type: ignore[method-assign]

    def offer(body: bytes) -> None:
        dataplane.sink = inline
        try:
            reply = infer_plain(dataplane, "forest", None, body, [])
        finally:
            dataplane.sink = None
        assert reply is not None
        if not method.offer_plain("forest", names, width, body, reply.body):
            copied["method"] += 1

    offer(small)  # binds each hook's lane to the model
    history: dict[str, list[tuple[int, int, bool]]] = {"inline": [], "method": []}
    sizes = [small] * 5 + [big] * 3 + [orjson.dumps(v2_body(X[:30]))] + [small] * 3
    for limit in (8, 4096):  # full by count, then by bytes (big bodies fill BODIES_BUDGET)
        for hook in (inline, method):
            hook.bodies.items.clear()
            hook.bodies.held = 0
            hook.bodies.limit = limit
            hook._wake.clear()
        for body in sizes * (1 if limit == 8 else 140):
            offer(body)
            for label, hook in (("inline", inline), ("method", method)):
                lane = hook.bodies
                history[label].append((len(lane.items), lane.held, hook._wake.is_set()))
        assert inline.bodies.items == method.bodies.items
        assert inline._wake.is_set()
    assert history["inline"] == history["method"]
    assert copied["inline"] == copied["method"] > 140  # the 30-row ones, the full lanes'
    assert max(held for _, held, _ in history["inline"]) <= BODIES_BUDGET
    assert history["inline"][7][0] == 8  # the count limit held
    # the inline path kept the rest: the method ran for each refusal and twice for the first
    # sample (binding the lane, then keeping the sample in it)
    assert copied["inline offer_plain"] == 2 + copied["inline"]


def test_a_failing_shortcut_or_metrics_call_still_answers(
    forest_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the shortcut falls through to the general path; a failing metrics call keeps
    the shortcut's answer (neither becomes an exception in the parser callback)."""
    served = make_app(forest_dir, name="forest", inline_max_bytes=4096)
    served.open_inline_lane()
    route = served.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"10")])
    assert route is not None
    X, _ = make_data()
    body = orjson.dumps(v2_body(X[:1]))
    expected = served.serve_inline(route, [], body)

    def broken(*_: Any) -> Reply | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app_module, "infer_plain", broken)
    assert as_tuple(served.serve_inline(route, [], body)) == as_tuple(expected)
    monkeypatch.undo()

    def failing(*_: Any) -> None:
        raise OSError("metrics")

    monkeypatch.setattr(app_module.metrics, "observe_request", failing)
    assert as_tuple(served.serve_inline(route, [], body)) == as_tuple(expected)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([1]),
        np.array(["good"]),
        np.array([b"bad"]),
        np.array([True]),
        np.array([0], np.int32),
    ],
)
def test_remembered_answers_are_the_encoded_ones(
    labels: np.ndarray[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(v2_plain, "_answers", {})
    datatype = {"i": "INT64", "U": "BYTES", "S": "BYTES", "b": "BOOL"}[labels.dtype.kind]
    outputs = [Tensor("predict", labels, datatype)]
    fresh = v2_plain._encode("m", "2", None, outputs)
    assert v2_plain._answer("m", "2", None, outputs) == fresh  # encoded, then kept
    assert len(v2_plain._answers) == 1
    assert v2_plain._answer("m", "2", None, [Tensor("predict", labels.copy(), datatype)]) == fresh
    # Another model, version or id is another answer (an id is never kept).
    assert v2_plain._answer("n", "2", None, outputs) == v2_plain._encode("n", "2", None, outputs)
    assert v2_plain._answer("m", None, None, outputs) == v2_plain._encode("m", None, None, outputs)
    with_id = v2_plain._answer("m", "2", "r1", outputs)
    assert orjson.loads(with_id)["id"] == "r1"
    assert len(v2_plain._answers) == 3


def test_floats_and_several_rows_are_never_kept_and_the_memo_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(v2_plain, "_answers", {})
    for outputs in (
        [Tensor("predict", np.array([2.5]), "FP64")],
        [Tensor("predict", np.array([1, 0]), "INT64")],
        [Tensor("predict", np.array([1]), "INT64"), Tensor("p", np.array([1]), "INT64")],
    ):
        assert v2_plain._answer("m", None, None, outputs) == v2_plain._encode(
            "m", None, None, outputs
        )
    assert v2_plain._answers == {}
    monkeypatch.setattr(v2_plain, "ANSWERS_KEPT", 3)
    for label in range(5):
        v2_plain._answer("m", None, None, [Tensor("predict", np.array([label]), "INT64")])
    assert 1 <= len(v2_plain._answers) <= 3
