"""Start a LocalPlan as processes on loopback and stop them again (see package docstring)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from mlkube.contract import ENV_DRIFT_PROFILE
from mlkube.devcluster import procs
from mlkube.localrun.plan import LocalDrift, LocalPlan, local_router_config, local_server_env

READY_PATH = "/v2/health/ready"


class LocalRunError(RuntimeError):
    """A local data-plane process failed to start; the message carries its log tail."""


class LocalEndpoint:
    def __init__(self, plan: LocalPlan, workdir: Path, router_port: int | None = None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.router_port = router_port or procs.free_port()
        self.router_metrics_port = procs.free_port()
        self.server_ports = {s.deployment: (procs.free_port(), procs.free_port())
                             for s in plan.servers}  # fmt: skip
        self.drift_ports = {s.deployment: (procs.free_port(), procs.free_port())
                            for s in plan.servers if s.drift is not None}  # fmt: skip
        self.pids: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    def server_url(self, deployment: str) -> str:
        return f"http://127.0.0.1:{self.server_ports[deployment][0]}"

    def server_metrics_url(self, deployment: str) -> str:
        return f"http://127.0.0.1:{self.server_ports[deployment][1]}/metrics"

    @property
    def router_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.router_metrics_port}/metrics"

    def start(self, timeout: float = 60.0) -> None:
        try:
            self._start(timeout)
        except Exception:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        logs = self.workdir / "logs"
        deadline = time.monotonic() + timeout
        for server in self.plan.servers:
            if server.drift is not None:
                self._start_sidecar(server.deployment, server.drift, deadline)
            model_dir = self.workdir / "models" / server.deployment
            self._initialize(server.artifact_uri, server.digest, model_dir, verified=True)
            http, metrics = self.server_ports[server.deployment]
            drift = self.drift_ports.get(server.deployment)
            env = local_server_env(server, model_dir=str(model_dir), http_port=http,
                                   metrics_port=metrics,
                                   drift_port=drift[0] if drift else None)  # fmt: skip
            self.pids[server.deployment] = procs.spawn(
                server.deployment, [sys.executable, "-m", "mlkube_serving", "serve"], logs, env
            )
        for server in self.plan.servers:
            self._wait(server.deployment, self.server_url(server.deployment) + READY_PATH,
                       deadline)  # fmt: skip
        keys_file = None
        if self.plan.keys:
            keys_path = self.workdir / "keys"
            keys_path.write_text("\n".join(self.plan.keys) + "\n")
            keys_path.chmod(0o600)
            keys_file = str(keys_path)
        config = local_router_config(
            self.plan.router_config, {d: p[0] for d, p in self.server_ports.items()}, keys_file
        )
        config_path = self.workdir / "router.json"
        config_path.write_text(json.dumps(config, indent=2))
        self.pids["router"] = procs.spawn("router", [
            sys.executable, "-m", "mlkube_serving", "router", "--config", str(config_path),
            "--host", "127.0.0.1", "--port", str(self.router_port),
            "--metrics-port", str(self.router_metrics_port),
        ], logs)  # fmt: skip
        self._wait("router", self.url + "/readyz", deadline)

    def drift_url(self, deployment: str) -> str:
        return f"http://127.0.0.1:{self.drift_ports[deployment][0]}"

    def _start_sidecar(self, deployment: str, drift: LocalDrift, deadline: float) -> None:
        """The pod's drift sidecar: baseline fetched and verified, then the sidecar itself."""
        profile_dir = self.workdir / "baselines" / deployment
        # A baseline is JSON data (never executed): checked when it carries a digest.
        self._initialize(drift.baseline_uri, drift.baseline_digest, profile_dir, verified=False)
        port, metrics = self.drift_ports[deployment]
        name = f"{deployment}-drift"
        self.pids[name] = procs.spawn(name, [
            sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", str(metrics),
        ], self.workdir / "logs", {**drift.env, ENV_DRIFT_PROFILE: str(profile_dir)})  # fmt: skip
        self._wait(name, self.drift_url(deployment) + "/healthz", deadline)

    def _initialize(self, uri: str, digest: str | None, dest: Path, *, verified: bool) -> None:
        initialize_artifact(uri, digest, dest, self.workdir, verified=verified)

    def _wait(self, name: str, url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not procs.alive(self.pids[name]):
                break
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        log = procs.tail(self.workdir / "logs" / f"{name}.log")
        raise LocalRunError(f"{name} did not become ready at {url}; log:\n{log}")

    def stop_process(self, name: str) -> None:
        pid = self.pids.pop(name, None)
        if pid is not None:
            procs.stop(pid)

    def stop(self) -> None:
        pids = list(self.pids.values())
        self.pids.clear()
        procs.stop_all(pids)

    def __enter__(self) -> LocalEndpoint:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def initialize_artifact(
    uri: str, digest: str | None, dest: Path, workdir: Path, *, verified: bool
) -> None:
    """The init container's job, by the same program: download and verify the artifact.

    `verified`: the bytes will be loaded as a model (possibly unpickled), so a digest is
    required and checked before any process loads them (endpoint and batch run-local)."""
    if verified and not digest:
        raise LocalRunError(f"refusing to load {uri} without a verified digest")
    args = [
        sys.executable,
        "-m",
        "mlkube_serving",
        "storage-initializer",
        "--uri",
        uri,
        "--dest",
        str(dest),
        "--termination-log",
        str(workdir / "no-log"),
    ]
    if digest:
        args += ["--digest", digest]
    run = subprocess.run(args, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise LocalRunError(f"storage initializer failed for {uri}: {run.stderr.strip()}")
