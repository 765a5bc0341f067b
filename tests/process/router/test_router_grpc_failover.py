"""The router's gRPC failover and in-flight byte budget, as processes: a real router process in
front of gRPC echo servers on loopback (in this process, so each call they get is counted)
and ports with nothing listening (a deployment that cannot be reached)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from router_harness import Router

from mlkube.devcluster.procs import free_port
from support.waiting import wait_for

HEADER = "x-mlkube-deployment"
METHOD = "/test.Echo/Call"
MiB = 1024 * 1024


class EchoUpstream:
    """A gRPC server answering every unary method with `<name>:<request size>`, after
    `x-test-delay` seconds when the call asks, or failing with `fail` (the upstream's own
    status); it records each call it receives."""

    def __init__(self, name: str, fail: grpc.StatusCode | None = None) -> None:
        self.name, self.fail = name, fail
        self.calls = 0
        self._lock = threading.Lock()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.max_receive_message_length", -1)],
        )
        self.server.add_generic_rpc_handlers((self,))  # type: ignore[arg-type]
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def service(self, details: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(self._call)

    def _call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls += 1
        asked = dict(context.invocation_metadata())
        time.sleep(float(asked.get("x-test-delay", 0)))
        if self.fail is not None:
            context.abort(self.fail, f"{self.name} refuses this call")
        return f"{self.name}:{len(request)}".encode()

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture
def echo() -> Iterator[Any]:
    made: list[EchoUpstream] = []

    def make(name: str, fail: grpc.StatusCode | None = None) -> EchoUpstream:
        made.append(EchoUpstream(name, fail))
        return made[-1]

    yield make
    for upstream in made:
        upstream.stop()


def grpc_config(ports: dict[str, int], traffic: dict[str, int], **extra: Any) -> dict[str, Any]:
    """Each deployment's HTTP side is a dead port: only gRPC is exercised here."""
    deployments = {
        name: {"url": f"http://127.0.0.1:{free_port()}", "grpcPort": port}
        for name, port in ports.items()
    }
    return {"version": 1, "endpoint": "credit", "deployments": deployments, "traffic": traffic,
            **extra}  # fmt: skip


def start_grpc_router(start_router: Any, doc: dict[str, Any]) -> tuple[Router, grpc.Channel]:
    port = free_port()
    router = start_router(doc, wait_ready=False, extra_args=("--grpc-port", str(port)))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    return router, channel


def call(
    channel: grpc.Channel, size: int = 10, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[bytes, str]:
    """The answer and the deployment the router says served it."""
    answer, outcome = channel.unary_unary(METHOD).with_call(
        b"x" * size, metadata=metadata, timeout=20
    )
    return answer, dict(outcome.initial_metadata())[HEADER]


def test_live_calls_fail_over_from_a_dead_deployment(start_router: Any, echo: Any) -> None:
    blue = echo("blue")
    doc = grpc_config({"dead": free_port(), "blue": blue.port}, {"dead": 90, "blue": 10})
    router, channel = start_grpc_router(start_router, doc)
    with channel:
        answers = [call(channel) for _ in range(20)]
        assert answers == [(b"blue:10", "blue")] * 20
        assert blue.calls == 20  # each once: the dead one was never sent anything
        failovers = router.metric("mlkube_router_failovers_total", deployment="dead")
        assert failovers >= 10  # dead is chosen first 90% of the time
        assert failovers == router.metric(
            "mlkube_router_upstream_errors_total", deployment="dead", reason="unreachable"
        )
        assert router.metric("mlkube_router_requests_total", deployment="blue", kind="live",
                             status="200") == 20  # fmt: skip

        with pytest.raises(grpc.RpcError) as targeted:  # named: never moved elsewhere
            call(channel, metadata=((HEADER, "dead"),))
        assert targeted.value.code() == grpc.StatusCode.UNAVAILABLE
        reason = targeted.value.details()
        assert reason.startswith("deployment 'dead' is unreachable: cannot connect"), reason
        assert blue.calls == 20
        assert router.metric("mlkube_router_failovers_total") == failovers


def test_no_reachable_deployment_is_unavailable(start_router: Any) -> None:
    doc = grpc_config({"dead": free_port(), "gone": free_port()}, {"dead": 50, "gone": 50})
    router, channel = start_grpc_router(start_router, doc)
    with channel, pytest.raises(grpc.RpcError) as refused:
        call(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details().startswith("no deployment is reachable: ")
    assert "dead: cannot connect" in refused.value.details()
    assert "gone: cannot connect" in refused.value.details()
    assert router.metric("mlkube_router_requests_total", status="503") == 1


@pytest.mark.parametrize("status", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE])
def test_an_upstream_error_status_is_passed_on_not_retried(
    start_router: Any, echo: Any, status: grpc.StatusCode
) -> None:
    """UNAVAILABLE too: a status the upstream sent means it got the call."""
    blue, green = echo("blue", fail=status), echo("green")
    doc = grpc_config({"blue": blue.port, "green": green.port}, {"blue": 50, "green": 50})
    router, channel = start_grpc_router(start_router, doc)
    refused = served = 0
    with channel:
        for _ in range(30):
            try:
                assert call(channel) == (b"green:10", "green")
                served += 1
            except grpc.RpcError as exc:
                assert (exc.code(), exc.details()) == (status, "blue refuses this call")
                refused += 1
    assert refused > 0  # blue was chosen (the chance it never is: 1 in 10^9)
    assert (blue.calls, green.calls) == (refused, served)  # none sent twice
    assert router.metric("mlkube_router_failovers_total") == 0


def test_calls_past_the_inflight_budget_are_resource_exhausted(
    start_router: Any, echo: Any
) -> None:
    slow = echo("slow")
    doc = grpc_config({"slow": slow.port}, {"slow": 100}, maxInflightBytes=2 * MiB)
    router, channel = start_grpc_router(start_router, doc)
    forward = channel.unary_unary(METHOD)
    part = 768 * 1024  # two fit in 2 MiB; while they are held the other three do not
    with channel:
        pending = [
            forward.future(b"x" * part, metadata=(("x-test-delay", "2"),), timeout=20)
            for _ in range(5)
        ]
        outcomes: list[bytes | grpc.RpcError] = []
        for future in pending:
            try:
                outcomes.append(future.result())
            except grpc.RpcError as exc:
                outcomes.append(exc)
        answers = [o for o in outcomes if isinstance(o, bytes)]
        refusals = [o for o in outcomes if isinstance(o, grpc.RpcError)]
        assert answers == [b"slow:%d" % part] * 2
        assert [r.code() for r in refusals] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        assert "would pass the 2097152-byte budget" in refusals[0].details()
        assert "raise maxInflightBytes" in refusals[0].details()
        assert slow.calls == 2
        assert router.metric("mlkube_router_shed_requests_total", reason="request_bytes") == 3
        assert router.metric("mlkube_router_requests_total", deployment="none",
                             status="429") == 3  # fmt: skip

        # Released on cancellation too: the client gives up while the upstream still holds it.
        with pytest.raises(grpc.RpcError) as gave_up:
            forward(b"x" * part, metadata=(("x-test-delay", "3"),), timeout=0.5)
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        # Then all of it is free again: one call of nearly the whole budget fits.
        def whole_budget_fits() -> bool:
            try:
                return forward(b"x" * (2 * MiB - 1024), timeout=20) == b"slow:%d" % (2 * MiB - 1024)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                return False

        wait_for(whole_budget_fits, 5, what="the whole in-flight budget free again")


def test_the_budget_is_released_when_the_upstream_fails(start_router: Any, echo: Any) -> None:
    broken = echo("broken", fail=grpc.StatusCode.INVALID_ARGUMENT)
    doc = grpc_config({"broken": broken.port}, {"broken": 100}, maxInflightBytes=2 * MiB)
    _, channel = start_grpc_router(start_router, doc)
    forward = channel.unary_unary(METHOD)
    with channel:
        for _ in range(3):  # each one fits only if the one before gave its bytes back
            with pytest.raises(grpc.RpcError) as failed:
                forward(b"x" * (2 * MiB - 1024), timeout=20)
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert broken.calls == 3
