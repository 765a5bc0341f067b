"""The router as a raw ASGI application: auth, pick a deployment, forward, mirror, account.

No framework on the hot path: one pass over the request headers builds the upstream header
block and finds the targeting and auth headers; the body is forwarded as the bytes received;
the upstream's answer is returned as the bytes it sent. The current `RoutingTable` is read once
per request, so a reload that swaps it never affects requests already in flight.

Memory is bounded in bytes, not requests: live request bodies and upstream answers held at
once (503 past `maxInflightBytes`, counted by reason in `shed_requests`), each upstream answer
(502 past `maxResponseBytes`) and mirror copies (shed past `mirrorMaxBytes`).
`GET /-/config` answers the sha256 of the config file the process serves from, so the
operator reports traffic as applied only once the router has it; `PUT /-/config` is the
operator's signed push of the same bytes (`router.push`), applied at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from mlkube.contract import HEADER_CONFIG_SIGNATURE, HEADER_DEPLOYMENT, ROUTER_CONFIG_STATE_PATH
from mlkube_serving._http.asgi import Receive, Scope, Send, declared_length, read_body, respond
from mlkube_serving._http.budget import ByteBudget
from mlkube_serving._http.client import PoolRegistry, UpstreamResponse, serialize_request
from mlkube_serving._http.errors import ClientDisconnected, ServiceUnavailable
from mlkube_serving.router.asgi import (
    DEPLOYMENT_HEADER,
    DROP_REQUEST,
    DROP_RESPONSE,
    MAX_BODY_BYTES,
    METHODS,
    TARGET_HEADERS,
    WWW_AUTHENTICATE,
)
from mlkube_serving.router.auth import KeyStore, missing_keys_file
from mlkube_serving.router.config import RouterConfig
from mlkube_serving.router.errors import (
    ConfigError,
    NoTraffic,
    PayloadTooLarge,
    RouterError,
    UnknownDeployment,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    render_error,
)
from mlkube_serving.router.health import UpstreamHealth
from mlkube_serving.router.metrics import RouterMetrics
from mlkube_serving.router.mirror import MirrorDispatcher, MirrorJob, reason_of
from mlkube_serving.router.push import MAX_PUSH_BYTES, PushKey, is_stale, judge_push, share
from mlkube_serving.router.table import Route, RoutingTable
from mlkube_serving.router.watch import ConfigWatcher, file_stamp

log = logging.getLogger("mlkube_serving.router")

NO_DEPLOYMENT = "none"
GRPC_GRACE_SECONDS = 5.0  # in-flight gRPC calls finish within this on shutdown
SIGNATURE_HEADER = HEADER_CONFIG_SIGNATURE.encode()


class RouterApp:
    """ASGI callable; `start()`/`stop()` run from lifespan (or directly in tests)."""

    def __init__(
        self,
        config_path: str,
        *,
        metrics: RouterMetrics | None = None,
        rand: Callable[[], float] = random.random,
        watch_interval: float = 1.0,
        push_key_file: str | None = None,
        push_share: str | None = None,
        grpc_port: int = 0,
        host: str = "0.0.0.0",
    ) -> None:
        """`grpc_port`: also proxy gRPC there (grpc_proxy.py); 0: HTTP only."""
        self.config_path = config_path
        self.grpc_port, self.host = grpc_port, host
        self._grpc: tuple[Any, Any] | None = None  # (grpc.aio.Server, GrpcProxy) once started
        self.metrics = metrics if metrics is not None else RouterMetrics()
        self.table: RoutingTable | None = None
        self.config_error: str | None = "config not loaded yet"
        self.reload_error: str | None = None  # why the newest file was not applied, if it was not
        self.keys: KeyStore | None = None
        self._rand = rand
        self._pools = PoolRegistry()
        self._watcher = ConfigWatcher(config_path)
        self._push_key = PushKey(push_key_file) if push_key_file else None
        self._push_share = push_share
        self._shared = ConfigWatcher(push_share) if push_share else None
        self._watch_interval = watch_interval
        self.mirror = MirrorDispatcher(self.metrics)
        self.health = UpstreamHealth(self.metrics)
        # Live request bodies and upstream answers held now; the limit comes from the config.
        self.inflight = ByteBudget(
            0, "router config maxInflightBytes", "request bodies and upstream answers"
        )
        self._tasks: list[asyncio.Task[None]] = []

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.reload_if_changed()
        if self.grpc_port:
            # Imported only when used: grpcio costs memory and start-up time otherwise.
            from mlkube_serving.router.grpc_proxy import start_server

            self._grpc = await start_server(self, self.host, self.grpc_port, self._rand)
        self._tasks = [
            asyncio.create_task(self._watch_forever(), name="router-config-watch"),
            asyncio.create_task(self.health.run(lambda: self.table), name="router-health"),
        ]

    async def stop(self) -> None:
        if self._grpc is not None:
            server, proxy = self._grpc
            await server.stop(GRPC_GRACE_SECONDS)
            await proxy.close()
            self._grpc = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.mirror.drain(timeout=1.0)
        self._pools.close()

    def apply_config(self, config: RouterConfig) -> None:
        """Swap in a new routing table built from `config` (atomic for every request)."""
        table = RoutingTable(config, self._pools)
        keys_file = config.auth.keys_file
        if config.auth.mode == "key" and keys_file is not None:
            if self.keys is None or self.keys.path != keys_file:
                self.keys = KeyStore(keys_file)
            self.keys.refresh()
        previous = self.table.config.source_hash if self.table is not None else None
        self.table = table
        self.config_error = self.reload_error = None
        self.inflight.limit = config.max_inflight_bytes
        self.mirror.budget.limit = config.mirror_max_bytes  # the gRPC copies' bound too
        if previous and previous != config.source_hash:
            self.metrics.config_info.labels(previous).set(0)
        if config.source_hash:
            self.metrics.config_info.labels(config.source_hash).set(1)
        self.metrics.config_revision.set(config.revision)
        self._pools.retain(table.pools())
        self.health.forget_others(table)
        self.health.poke()

    def reload_if_changed(self) -> bool:
        """Load the config file if it changed since the last look; keep the old table on error
        or when the file is older than the served (pushed) revision."""
        if self._shared is not None and file_stamp(self._shared.path) is not None:
            self._reload_from(self._shared, "shared push")  # another worker's accepted push
        return self._reload_from(self._watcher, "file")

    def _reload_from(self, watcher: ConfigWatcher, source: str) -> bool:
        try:
            config = watcher.poll()
        except ConfigError as exc:
            self.metrics.config_reloads.labels("error").inc()
            self.reload_error = exc.message
            if self.table is None:
                self.config_error = exc.message
            log.error("router config not applied (keeping the previous one): %s", exc.message)
            return False
        if config is None:
            return False
        unservable = missing_keys_file(config.auth.mode, config.auth.keys_file)
        if unservable is not None and self.table is not None:
            # Not a refused config (no reload_error): the operator sees this replica on an
            # older config and waits for the rollout to replace it.
            self.metrics.config_reloads.labels("unservable").inc()
            log.warning("router config %s not applied: %s", source, unservable)
            return False
        served = self.table.config if self.table is not None else None
        shared = watcher is self._shared
        if shared and served is not None and served.source_hash == config.source_hash:
            return False  # our own push, shared with the other workers
        if is_stale(config, served):
            self.metrics.config_reloads.labels("stale").inc()
            log.info(
                "router config %s ignored: revision %d is older than the served revision %d",
                source, config.revision, served.revision if served else 0,
            )  # fmt: skip
            return False
        self.apply_config(config)
        self.metrics.config_reloads.labels("ok").inc()
        log.info(
            "router config applied from %s: endpoint=%s revision=%d traffic=%s mirror=%s",
            source,
            config.endpoint,
            config.revision,
            dict(config.traffic),
            dict(config.mirror),
        )
        return True

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            self.reload_if_changed()

    # ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            elif path == "/readyz":
                await self._readyz(send)
            elif path == ROUTER_CONFIG_STATE_PATH:
                if scope["method"] == "PUT":
                    await self._push(scope, receive, send)
                else:
                    await self._config_state(send)
            else:
                await self._proxy(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _readyz(self, send: Send) -> None:
        table = self.table
        if table is None:
            await respond(send, 503, orjson.dumps({"ready": False, "reason": self.config_error}))
            return
        states = self.health.snapshot(table)
        ready = any(states.values())
        body: dict[str, object] = {
            "ready": ready,
            "endpoint": table.config.endpoint,
            "deployments": states,
        }
        if not ready:
            body["reason"] = "no deployment answers its health probe"
        await respond(send, 200 if ready else 503, orjson.dumps(body))

    async def _config_state(self, send: Send) -> None:
        """Which config this process serves from (no auth: it names no secret)."""
        table = self.table
        body: dict[str, object]
        if table is None:
            body = {"loaded": False, "hash": None, "error": self.config_error}
        else:
            config = table.config
            body = {
                "loaded": True,
                "hash": config.source_hash,
                "endpoint": config.endpoint,
                "revision": config.revision,
            }
            if self.reload_error is not None:
                body["error"] = self.reload_error  # still serving the previous config
        await respond(send, 200, orjson.dumps(body))

    async def _push(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The operator's signed config push; judged and applied without awaiting in between,
        so two pushes never interleave."""
        try:
            body = await read_body(receive, MAX_PUSH_BYTES, declared=declared_length(scope))
        except ClientDisconnected:
            return
        except PayloadTooLarge as exc:
            self.metrics.config_pushes.labels("invalid").inc()
            await respond(send, 413, orjson.dumps({"error": exc.message}))
            return
        presented = next((v for k, v in scope["headers"] if k == SIGNATURE_HEADER), None)
        key = self._push_key.current() if self._push_key is not None else None
        served = self.table.config if self.table is not None else None
        answer = judge_push(key, presented, body, served)
        self.metrics.config_pushes.labels(answer.result).inc()
        if answer.config is not None:
            self.apply_config(answer.config)
            config = answer.config
            log.info(
                "router config applied from push: endpoint=%s revision=%d traffic=%s mirror=%s",
                config.endpoint, config.revision, dict(config.traffic), dict(config.mirror),
            )  # fmt: skip
            if self._push_share is not None:
                share(self._push_share, body)
        else:
            log.warning("router config push refused (%d): %s", answer.status, answer.body["error"])
        await respond(send, answer.status, orjson.dumps(answer.body))

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        table = self.table
        if table is None:
            await self._refuse(send, ConfigError(f"router has no config: {self.config_error}"))
            return
        strip_auth = table.auth_required
        target_name: bytes | None = None
        authorization: bytes | None = None
        api_key: bytes | None = None
        lines: list[bytes] = []
        declared: int | None = None
        for name, value in scope["headers"]:
            if name in DROP_REQUEST:
                if name == b"content-length" and value.isdigit():
                    declared = int(value)
                continue
            if name == b"authorization":
                authorization = value
                if strip_auth:
                    continue
            elif name == b"api-key":
                api_key = value
                if strip_auth:
                    continue
            elif name in TARGET_HEADERS and value.strip():
                target_name = value
            lines.append(name + b": " + value + b"\r\n")
        if strip_auth:
            try:
                if self.keys is None:
                    raise ConfigError("key auth is on but no keys file is configured")
                self.keys.authenticate(authorization, api_key)
            except RouterError as exc:
                await self._refuse(send, exc)
                return

        if target_name is not None:
            kind = "targeted"
            route: Route | None = table.routes.get(target_name.decode("latin-1").strip())
            if route is None:
                wanted = target_name.decode("latin-1")
                await self._refuse(
                    send,
                    UnknownDeployment(
                        f"deployment {wanted!r} does not exist in endpoint "
                        f"{table.config.endpoint!r} (valid: {table.valid_names})"
                    ),
                    kind,
                )
                return
        else:
            kind = "live"
            route = table.choose(self._rand())
            if route is None:
                await self._refuse(
                    send,
                    NoTraffic(
                        f"endpoint {table.config.endpoint!r} sends no live traffic to any "
                        f"deployment; target one with the {HEADER_DEPLOYMENT!r} header "
                        f"(valid: {table.valid_names})"
                    ),
                )
                return

        try:
            if declared is not None and declared > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")
            body = await read_body(receive, MAX_BODY_BYTES, budget=self.inflight, declared=declared)
        except ClientDisconnected:
            return  # nobody to answer
        except PayloadTooLarge as exc:
            await self._refuse(send, exc)
            return
        except ServiceUnavailable as exc:
            self.metrics.shed_requests.labels("request_bytes").inc()
            await self._refuse(send, exc)
            return
        answered = 0  # bytes of the upstream answer reserved in `inflight`
        try:
            headers = b"".join(lines)
            method = METHODS.get(scope["method"]) or scope["method"].encode()
            target = scope.get("raw_path") or scope["path"].encode()
            if scope["query_string"]:
                target = target + b"?" + scope["query_string"]
            is_head = method == b"HEAD"

            start = time.perf_counter()
            try:
                route, response = await self._forward(
                    table, route, kind, method, target, headers, body
                )
            except UpstreamError as exc:
                self.metrics.observe_request(route.name, exc.status, kind, -1.0)
                status, payload = render_error(exc)
                await respond(send, status, payload)
                return
            except ServiceUnavailable as exc:  # its answer does not fit the in-flight budget
                self.metrics.shed_requests.labels("response_bytes").inc()
                self.metrics.observe_request(route.name, exc.status, kind, -1.0)
                status, payload = render_error(exc)
                await respond(send, status, payload)
                return
            answered = len(response.body)
            elapsed = time.perf_counter() - start

            if is_head or response.status in (204, 304):
                # No body: keep the upstream's content-length (if any) as the only one.
                out = [(k, v) for k, v in response.headers if k not in DROP_RESPONSE]
                out.extend((k, v) for k, v in response.headers if k == b"content-length")
            else:
                out = [(k, v) for k, v in response.headers if k not in DROP_RESPONSE]
                out.append((b"content-length", str(len(response.body)).encode()))
            out.append((DEPLOYMENT_HEADER, route.name_bytes))
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            await send({"type": "http.response.body", "body": response.body})
            self.metrics.observe_request(route.name, response.status, kind, elapsed)

            if kind == "live" and table.mirrors:
                for shadow in table.pick_mirrors(route.name, self._rand):
                    job = MirrorJob(
                        shadow, method, target, headers, body,
                        response.status, response.body, table.timeout,
                        table.config.agreement_tolerance,
                    )  # fmt: skip
                    self.mirror.submit(
                        job,
                        concurrency=table.config.mirror_concurrency,
                        queue_size=table.config.mirror_queue_size,
                        max_bytes=table.config.mirror_max_bytes,
                    )
        finally:
            self.inflight.used -= len(body) + answered  # release, inline: every request's path

    async def _forward(
        self,
        table: RoutingTable,
        route: Route,
        kind: str,
        method: bytes,
        target: bytes,
        headers: bytes,
        body: bytes,
    ) -> tuple[Route, UpstreamResponse]:
        """Send to `route`; live requests fail over to other live deployments on connect errors.

        A connect error means nothing was sent, so trying another deployment is safe; a
        targeted request names its deployment and is never moved.
        """
        deadline = asyncio.get_running_loop().time() + table.timeout
        failures: list[str] = []
        failed: list[str] = []
        while True:
            data = serialize_request(method, target, route.host_line, headers, body)
            try:
                response = await route.pool.request(
                    data, deadline, head_request=method == b"HEAD", budget=self.inflight
                )
            except UpstreamTimeout as exc:
                self._note_failure(route, exc)
                raise UpstreamTimeout(
                    f"deployment {route.name!r} did not answer within {table.timeout:g} s"
                ) from exc
            except UpstreamUnreachable as exc:
                self._note_failure(route, exc)
                failures.append(f"{route.name}: {exc.message}")
                failed.append(route.name)
                nxt = table.choose_excluding(self._rand(), failed) if kind == "live" else None
                if nxt is not None:  # its failure is counted here, its answer under `nxt`
                    self.metrics.failovers.labels(route.name).inc()
                if nxt is None:
                    if kind != "live":
                        raise UpstreamUnreachable(
                            f"deployment {route.name!r} is unreachable: {exc.message}"
                        ) from exc
                    raise UpstreamUnreachable(
                        "no deployment is reachable: " + "; ".join(failures)
                    ) from exc
                route = nxt
                continue
            except UpstreamError as exc:
                self._note_failure(route, exc)
                raise UpstreamError(f"deployment {route.name!r}: {exc.message}") from exc
            if not self.health.is_up(route.name):
                self.health.mark(route.name, True)
            return route, response

    def _note_failure(self, route: Route, exc: UpstreamError) -> None:
        self.metrics.upstream_errors.labels(route.name, reason_of(exc)).inc()
        if isinstance(exc, UpstreamUnreachable):
            self.health.mark(route.name, False)

    async def _refuse(self, send: Send, exc: RouterError, kind: str = "live") -> None:
        self.metrics.observe_request(NO_DEPLOYMENT, exc.status, kind, -1.0)
        status, payload = render_error(exc)
        extra = [WWW_AUTHENTICATE] if status == 401 else []
        await respond(send, status, payload, extra)
