"""`python -m mlkube_serving router`: run the endpoint router (one or several worker processes).

With one worker the process serves traffic and metrics itself. With more, the parent binds the
listening socket, forks the workers (each a uvicorn server on that shared socket) and serves
the metrics port from a prometheus multiprocess directory, so one scrape sees every worker.
Port and worker defaults come from the contract's env names, so the operator's Deployment only
sets environment variables.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from types import FrameType

from mlkube.contract import (
    ENV_GRPC_PORT,
    ENV_HTTP_PORT,
    ENV_METRICS_PORT,
    ENV_ROUTER_CONFIG,
    ENV_ROUTER_PUSH_KEY,
    ENV_WORKERS,
    ROUTER_HTTP_PORT,
    ROUTER_METRICS_PORT,
)
from mlkube_serving.router.errors import ConfigError

log = logging.getLogger("mlkube_serving.router")
GRACEFUL_SHUTDOWN_SECONDS = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlkube_serving router",
        description="Route an endpoint's traffic across its deployments (split, mirror, target).",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get(ENV_ROUTER_CONFIG),
        help=f"router config JSON file (env {ENV_ROUTER_CONFIG})",
    )
    parser.add_argument(
        "--push-key-file",
        default=os.environ.get(ENV_ROUTER_PUSH_KEY),
        help=f"HMAC key file that enables signed config pushes (env {ENV_ROUTER_PUSH_KEY})",
    )
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(ENV_HTTP_PORT, ROUTER_HTTP_PORT)),
        help=f"traffic port (env {ENV_HTTP_PORT}, default {ROUTER_HTTP_PORT})",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get(ENV_METRICS_PORT, ROUTER_METRICS_PORT)),
        help=f"Prometheus port, 0 disables (env {ENV_METRICS_PORT}, default {ROUTER_METRICS_PORT})",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=int(os.environ.get(ENV_GRPC_PORT) or 0),
        help=f"also proxy gRPC (the Open Inference Protocol) on this port, 0: off "
        f"(env {ENV_GRPC_PORT})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get(ENV_WORKERS, "1")),
        help=f"worker processes (env {ENV_WORKERS}, default 1)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--check", action="store_true", help="validate the config file and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.config:
        print(f"error: no config: pass --config or set {ENV_ROUTER_CONFIG}", file=sys.stderr)
        return 2
    if args.check:
        return check_config(args.config)
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    if args.workers == 1:
        return serve(args, sockets=None, serve_metrics=True)
    return supervise(args)


def check_config(path: str) -> int:
    from mlkube_serving.router.config import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"ok: endpoint {config.endpoint!r}, deployments {', '.join(config.deployments)}")
    return 0


def serve(
    args: argparse.Namespace, sockets: list[socket.socket] | None, serve_metrics: bool
) -> int:
    """Run one uvicorn worker (imports prometheus_client only now: multiprocess env is set)."""
    import uvicorn
    from prometheus_client import start_http_server

    from mlkube_serving.router.app import RouterApp
    from mlkube_serving.router.metrics import AgreementRatioCollector, RouterMetrics
    from mlkube_serving.router.push import ENV_PUSH_SHARE

    metrics = RouterMetrics()
    if serve_metrics and args.metrics_port:
        metrics.registry.register(AgreementRatioCollector(metrics.source_for_ratio()))
        start_http_server(args.metrics_port, addr=args.host, registry=metrics.registry)
    app = RouterApp(
        args.config,
        metrics=metrics,
        push_key_file=args.push_key_file,
        push_share=os.environ.get(ENV_PUSH_SHARE),
        grpc_port=args.grpc_port,
        host=args.host,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        interface="asgi3",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    return 0 if server.started else 1


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def supervise(args: argparse.Namespace) -> int:
    """Fork `args.workers` workers on one socket; serve merged metrics; stop them all together."""
    metrics_dir = tempfile.mkdtemp(prefix="mlkube-router-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # A push reaches one worker: it hands the accepted config to the others through this file.
    from mlkube_serving.router.push import ENV_PUSH_SHARE

    os.environ[ENV_PUSH_SHARE] = os.path.join(metrics_dir, "pushed-config.json")
    sock = bind_socket(args.host, args.port)
    children: set[int] = set()
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = serve(args, sockets=[sock], serve_metrics=False)
            finally:
                os._exit(code)
        children.add(pid)
    sock.close()

    stopping = False

    def stop_children(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)
    if args.metrics_port:
        start_merged_metrics(args.host, args.metrics_port, metrics_dir)
    code = 0
    try:
        while children:
            pid, status = os.wait()
            children.discard(pid)
            if not stopping:
                # A worker died on its own: stop the rest so Kubernetes restarts the whole pod.
                log.error("router worker %d exited (status %d); stopping", pid, status)
                code = 1
                stop_children(signal.SIGTERM, None)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return code


def start_merged_metrics(host: str, port: int, metrics_dir: str) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    from mlkube_serving.router.metrics import AgreementRatioCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    merged = MultiProcessCollector(None, path=metrics_dir)  # type: ignore[no-untyped-call]
    registry.register(AgreementRatioCollector(merged))
    start_http_server(port, addr=host, registry=registry)
