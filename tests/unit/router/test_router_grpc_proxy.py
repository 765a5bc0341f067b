"""The gRPC proxy against scripted channels: the failover rule, pass-through of upstream
errors, and the in-flight byte budget (reserved per call, released however it ends)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from mlkube_serving._http.budget import ByteBudget
from mlkube_serving.router.app import RouterApp
from mlkube_serving.router.grpc_proxy import (
    CHANNELS_PER_UPSTREAM,
    GrpcProxy,
    connect_verdict,
    connected,
    over_budget,
)
from mlkube_serving.router.metrics import RouterMetrics
from mlkube_serving.router.mirror import shadow_cap

State = grpc.ChannelConnectivity
METHOD = "/inference.GRPCInferenceService/ModelInfer"


class FakeChannel:
    """A channel whose connectivity follows `states` (the last one stays) and whose calls
    answer `answer`, raise `error`, or wait forever (`hang`); every sent call is recorded."""

    def __init__(
        self,
        name: str,
        sent: list[str],
        states: tuple[State, ...] = (State.READY,),
        error: grpc.StatusCode | None = None,
        hang: bool = False,
    ) -> None:
        self.name, self.sent, self.states = name, sent, list(states)
        self.error, self.hang = error, hang
        self.metadata: list[list[tuple[str, str]]] = []  # each sent call's metadata

    def get_state(self, try_to_connect: bool = False) -> State:
        return self.states[0]

    async def wait_for_state_change(self, last: State) -> None:
        await asyncio.sleep(0)
        if len(self.states) > 1:
            self.states.pop(0)
        else:
            await asyncio.sleep(3600)  # no further change

    def unary_unary(self, method: str) -> Callable[..., Coroutine[Any, Any, bytes]]:
        async def call(request: bytes, **kwargs: Any) -> bytes:
            self.sent.append(self.name)
            self.metadata.append(list(kwargs.get("metadata") or ()))
            if self.hang:
                await asyncio.sleep(3600)
            if self.error is not None:
                raise grpc.aio.AioRpcError(self.error, details=f"{self.name} says no")
            return self.name.encode() + b":" + request

        return call

    async def close(self) -> None:
        pass


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class FakeContext:
    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.metadata = metadata
        self.initial: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.initial = metadata

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def make_proxy(
    tmp_path: Path,
    channels: dict[str, dict[str, Any]],
    traffic: dict[str, int],
    rand: float = 0.0,
    **overrides: Any,
) -> tuple[GrpcProxy, RouterApp, list[str]]:
    """A proxy over one FakeChannel per deployment (built with `channels[name]`)."""
    doc: dict[str, Any] = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {
            name: {"url": f"http://{name}:8080", "grpcPort": 8081} for name in channels
        },
        "traffic": traffic,
        **overrides,
    }
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(doc))
    app = RouterApp(str(path), metrics=RouterMetrics(), rand=lambda: rand)
    assert app.reload_if_changed()
    proxy = GrpcProxy(app, lambda: rand)
    sent: list[str] = []
    for name, options in channels.items():
        proxy._channels[f"{name}:8081"] = [FakeChannel(name, sent, **options)] * (
            CHANNELS_PER_UPSTREAM
        )
    return proxy, app, sent


def sample(app: RouterApp, name: str, **labels: str) -> float:
    value = app.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_connect_verdict_sends_only_on_ready() -> None:
    verdicts = {state: connect_verdict(state) for state in State}
    assert verdicts == {
        State.READY: True,
        State.TRANSIENT_FAILURE: False,
        State.SHUTDOWN: False,
        State.IDLE: None,
        State.CONNECTING: None,
    }


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((State.READY,), True),
        ((State.TRANSIENT_FAILURE,), False),
        ((State.IDLE, State.CONNECTING, State.READY), True),
        ((State.IDLE, State.CONNECTING, State.TRANSIENT_FAILURE), False),
    ],
)
def test_connected_waits_for_the_connect_attempt_to_end(
    states: tuple[State, ...], expected: bool
) -> None:
    channel: Any = FakeChannel("x", [], states)
    assert asyncio.run(connected(channel, 1.0)) is expected


def test_connected_gives_up_at_the_timeout() -> None:
    channel: Any = FakeChannel("x", [], (State.CONNECTING,))
    with pytest.raises(TimeoutError):
        asyncio.run(connected(channel, 0.05))


def test_over_budget_names_the_limit_and_how_to_raise_it() -> None:
    budget = ByteBudget(1000, "router config maxInflightBytes", "request bodies")
    budget.used = 900
    message = over_budget(budget, 200)
    assert "already holding 900 bytes" in message
    assert "200 more bytes of a gRPC request message would pass the 1000-byte budget" in message
    assert "raise maxInflightBytes in the router config" in message


def test_a_live_call_fails_over_from_a_deployment_that_cannot_connect(tmp_path: Path) -> None:
    dead = {"states": (State.IDLE, State.CONNECTING, State.TRANSIENT_FAILURE)}
    proxy, app, sent = make_proxy(
        tmp_path, {"blue": dead, "green": {}, "red": {}}, {"blue": 60, "green": 40}
    )  # rand 0.0 picks blue first; red has no live traffic, so never a failover target
    context = FakeContext()
    answer = asyncio.run(proxy._call(METHOD, b"req", context))  # type: ignore[arg-type]
    assert answer == b"green:req"
    assert sent == ["green"]
    assert context.initial == (("x-mlkube-deployment", "green"),)
    assert sample(app, "mlkube_router_failovers_total", deployment="blue") == 1
    assert sample(app, "mlkube_router_upstream_errors_total", deployment="blue",
                  reason="unreachable") == 1  # fmt: skip
    assert sample(app, "mlkube_router_requests_total", deployment="green", status="200",
                  kind="live") == 1  # fmt: skip
    assert app.inflight.used == 0


def test_no_reachable_deployment_is_unavailable_with_each_reason(tmp_path: Path) -> None:
    dead = {"states": (State.TRANSIENT_FAILURE,)}
    both = {"blue": 50, "green": 50}
    proxy, app, sent = make_proxy(tmp_path, {"blue": dead, "green": dead}, both)
    with pytest.raises(Aborted) as refused:
        asyncio.run(proxy._call(METHOD, b"req", FakeContext()))  # type: ignore[arg-type]
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details == (
        "no deployment is reachable: blue: cannot connect to blue:8081; "
        "green: cannot connect to green:8081"
    )
    assert sent == []
    assert sample(app, "mlkube_router_failovers_total", deployment="blue") == 1
    assert sample(app, "mlkube_router_failovers_total", deployment="green") == 0
    assert app.inflight.used == 0


def test_a_targeted_call_never_fails_over(tmp_path: Path) -> None:
    dead = {"states": (State.TRANSIENT_FAILURE,)}
    proxy, app, sent = make_proxy(tmp_path, {"blue": dead, "green": {}}, {"blue": 50, "green": 50})
    context = FakeContext((("x-mlkube-deployment", "blue"),))
    with pytest.raises(Aborted) as refused:
        asyncio.run(proxy._call(METHOD, b"req", context))  # type: ignore[arg-type]
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details == "deployment 'blue' is unreachable: cannot connect to blue:8081"
    assert sent == []
    assert sample(app, "mlkube_router_failovers_total", deployment="blue") == 0


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT])
def test_an_error_from_a_sent_call_is_passed_on_never_retried(
    tmp_path: Path, code: grpc.StatusCode
) -> None:
    """UNAVAILABLE too: once sent, the upstream may have processed the call before failing."""
    proxy, app, sent = make_proxy(
        tmp_path, {"blue": {"error": code}, "green": {}}, {"blue": 50, "green": 50}
    )
    context = FakeContext()
    with pytest.raises(Aborted) as failed:
        asyncio.run(proxy._call(METHOD, b"req", context))  # type: ignore[arg-type]
    assert (failed.value.code, failed.value.details) == (code, "blue says no")
    assert sent == ["blue"]
    assert context.initial == (("x-mlkube-deployment", "blue"),)
    assert sample(app, "mlkube_router_failovers_total", deployment="blue") == 0
    assert app.inflight.used == 0


def test_a_deployment_without_a_grpc_port_is_skipped_by_live_calls(tmp_path: Path) -> None:
    proxy, app, sent = make_proxy(tmp_path, {"blue": {}, "green": {}}, {"blue": 50, "green": 50})
    assert app.table is not None
    object.__setattr__(app.table.routes["blue"], "grpc_target", None)
    answer = asyncio.run(proxy._call(METHOD, b"req", FakeContext()))  # type: ignore[arg-type]
    assert answer == b"green:req"
    assert sent == ["green"]
    assert sample(app, "mlkube_router_failovers_total", deployment="blue") == 1


def test_calls_past_the_inflight_budget_are_resource_exhausted(tmp_path: Path) -> None:
    proxy, app, sent = make_proxy(
        tmp_path, {"blue": {"hang": True}}, {"blue": 100}, maxInflightBytes=2048
    )
    request = b"x" * 1500

    async def scenario() -> Aborted:
        held = asyncio.create_task(proxy._call(METHOD, request, FakeContext()))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert app.inflight.used == 1500
        with pytest.raises(Aborted) as refused:
            await proxy._call(METHOD, request, FakeContext())  # type: ignore[arg-type]
        held.cancel()  # the client went away: its bytes come back
        with pytest.raises(asyncio.CancelledError):
            await held
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "maxInflightBytes" in refused.details
    assert sent == ["blue"]  # the refused call was never forwarded
    assert app.inflight.used == 0
    assert sample(app, "mlkube_router_shed_requests_total", reason="request_bytes") == 1
    assert sample(app, "mlkube_router_requests_total", deployment="none", status="429",
                  kind="live") == 1  # fmt: skip


def test_mirror_copies_are_bounded_by_mirror_max_bytes_and_marked(tmp_path: Path) -> None:
    """Copies hold the request and room for twice the live answer in the router's mirror
    budget (one mirrorMaxBytes with HTTP's copies); past it they are shed, counted."""
    request = b"x" * 100
    cost = len(request) + shadow_cap(b"blue:" + request)  # FakeChannel answers name:request
    proxy, app, sent = make_proxy(
        tmp_path, {"blue": {}, "green": {"hang": True}}, {"blue": 100, "green": 0},
        mirror={"green": 100}, mirrorMaxBytes=cost + cost // 2,
    )  # fmt: skip
    spoofed = FakeContext((("x-mlkube-mirrored", "true"), ("x-trace", "1")))
    blue, green = proxy._channels["blue:8081"][0], proxy._channels["green:8081"][0]
    assert isinstance(blue, FakeChannel) and isinstance(green, FakeChannel)

    async def scenario() -> None:
        for context in (spoofed, FakeContext(), FakeContext()):
            assert await proxy._call(METHOD, request, context) == b"blue:" + request  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert app.mirror.budget.used == cost  # one copy held (green hangs), two shed
        await proxy.close()  # cancelled copies give their bytes back
        for _ in range(3):
            await asyncio.sleep(0)
        assert app.mirror.budget.used == 0  # released by close(), not by asyncio.run's end

    asyncio.run(scenario())
    assert sent.count("blue") == 3 and sent.count("green") == 1
    assert app.mirror.budget.used == 0
    assert sample(app, "mlkube_router_mirror_dropped_total", deployment="green",
                  reason="byte_budget") == 2  # fmt: skip
    # A client's own marker is dropped; the copy carries the router's, and the rest.
    assert blue.metadata[0] == [("x-trace", "1")]
    assert green.metadata[0] == [("x-trace", "1"), ("x-mlkube-mirrored", "true")]
