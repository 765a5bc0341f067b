"""Real router processes (and stand-in model servers) for an endpoint on the kwok control plane.

kwok pods run nothing and have fake IPs, so the test plays kubelet, cluster DNS and kube-proxy
for the endpoint's router pods (the operator's own Deployment, created with kwok's hands-off
annotation, see `router_deployment`): each router pod gets its own loopback address, where a
REAL `python -m mlkube_serving router` process listens on the contract ports (traffic 8080,
metrics 8082), and is marked Ready there, so the operator verifies, scrapes and pushes to it
as it would in a cluster. The "kubelet" copies the router ConfigMap into the file the router
watches every `sync_seconds` (a real kubelet takes up to a minute) and mounts the push key
Secret, so the operator's signed pushes are taken too; the "DNS" is a shim in the
router process that sends the upstream `<deployment service>.<ns>.svc.cluster.local:80` to
the loopback port of a stand-in model server (`SERVER`): a tiny HTTP server answering 200 or
500 as its mode file says, and logging the time of every request it answers.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkube.builders.endpoint_router_push import read_push_key
from mlkube.builders.names import (
    COMPONENT_ROUTER,
    pod_selector,
    push_secret_name,
    router_name,
    selector_string,
)
from mlkube.contract import ROUTER_CONFIG_FILE, ROUTER_HTTP_PORT, ROUTER_METRICS_PORT
from mlkube.devcluster.procs import free_port
from mlkube.k8s import ApiError, Kube
from support.operator import stop_process
from support.waiting import wait_for

KWOK_HANDS_OFF = {"kwok.x-k8s.io/status": "custom"}

# The router with the cluster's name resolution replaced: upstream host -> loopback port.
ROUTER_SHIM = """
import json, os, sys
from mlkube_serving._http import client
upstreams = json.loads(os.environ["MLKUBE_TEST_UPSTREAMS"])
original = client.PoolRegistry.get
def get(self, host, port, *args, **kwargs):
    if host in upstreams:
        host, port = "127.0.0.1", int(upstreams[host])
    return original(self, host, port, *args, **kwargs)
client.PoolRegistry.get = get
from mlkube_serving.router.main import main
sys.exit(main(sys.argv[1:]))
"""

# A model server stand-in: 200 with its name and prediction 1.0 ("ok") or 0.0 ("wrong"), or
# 500 ("fail"), as its mode file says; every answered POST is logged as "<unix time> <status>".
SERVER = """
import http.server, json, sys, time
name, port, mode_file, log_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
log = open(log_file, "a", buffering=1)
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(200, {"ready": True})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        mode = open(mode_file).read().strip()
        if mode == "slow":
            time.sleep(0.2)
        status = 500 if mode == "fail" else 200
        value = 0.0 if mode == "wrong" else 1.0
        log.write(f"{time.time():.3f} {status}\\n")
        self.answer(status, {"deployment": name, "outputs": [{"name": "predict",
                    "shape": [1], "datatype": "FP64", "data": [value]}]})
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@dataclass
class StandInServer:
    name: str
    port: int
    mode_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def set_mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    def answered(self) -> list[tuple[float, int]]:
        """(unix time, status) of every request answered so far."""
        if not self.log_file.exists():
            return []
        rows = [line.split() for line in self.log_file.read_text().splitlines() if line]
        return [(float(t), int(s)) for t, s in rows]


@contextlib.contextmanager
def stand_in_servers(work: Path, modes: dict[str, str]) -> Iterator[dict[str, StandInServer]]:
    """One stand-in server per deployment name, in the given mode ("ok", "fail", "wrong"
    (other predictions) or "slow" (200 after 0.2 s))."""
    servers: dict[str, StandInServer] = {}
    try:
        for name, mode in modes.items():
            folder = work / f"server-{name}"
            folder.mkdir(parents=True, exist_ok=True)
            mode_file, log_file, port = folder / "mode", folder / "requests.log", free_port()
            mode_file.write_text(mode)
            argv = [sys.executable, "-c", SERVER, name, str(port), str(mode_file), str(log_file)]
            process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            servers[name] = StandInServer(name, port, mode_file, log_file, process)
        for server in servers.values():
            url = f"http://127.0.0.1:{server.port}/v2/health/ready"
            wait_for(lambda u=url: _get(u) == 200, timeout=20, interval=0.05,
                     what=f"stand-in server {url}")  # fmt: skip
        yield servers
    finally:
        for server in servers.values():
            stop_process(server.process, 5)


def _get(url: str, timeout: float = 1.0) -> int | None:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status)
    return None


def mark_ready(kube: Kube, pod: dict[str, Any], ip: str) -> None:
    """What the kubelet and CNI report for a running, Ready pod at `ip`."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    running = [
        {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
         "started": True, "state": {"running": {"startedAt": now}}}
        for c in pod["spec"]["containers"]
    ]  # fmt: skip
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
              "startTime": now, "conditions": conditions, "containerStatuses": running}  # fmt: skip
    kube.patch("v1", "Pod", pod["metadata"]["name"], {"status": status},
               pod["metadata"]["namespace"], subresource="status")  # fmt: skip


@dataclass
class RouterPod:
    name: str
    ip: str
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{ROUTER_HTTP_PORT}"

    def config_state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/-/config", timeout=2) as response:
            state: dict[str, Any] = json.load(response)
        return state

    def log(self) -> str:
        path = self.folder / "router.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class LocalRouters:
    """Runs the endpoint's router pods as local processes (see the module docstring)."""

    kube: Kube
    namespace: str
    endpoint: str
    ips: list[str]
    work: Path
    upstreams: dict[str, int]
    sync_seconds: float = 0.5
    env: dict[str, str] = field(default_factory=dict)
    pods: dict[str, RouterPod] = field(default_factory=dict)
    syncs: list[tuple[float, str]] = field(default_factory=list)  # (time, config text) copied
    _stop: threading.Event = field(default_factory=threading.Event)
    _errors: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        last_sync = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sync >= self.sync_seconds:
                    last_sync = time.monotonic()
                    self._sync_config()
                self._adopt_pods()
            except ApiError:
                pass  # the API server is busy: next round
            except BaseException as err:
                self._errors.append(err)
                return
            self._stop.wait(0.1)

    def check(self) -> None:
        assert not self._errors, f"local routers failed: {self._errors!r}"

    def _config_text(self) -> str | None:
        cm = self.kube.get("v1", "ConfigMap", router_name(self.endpoint), self.namespace)
        return None if cm is None else str((cm.get("data") or {}).get(ROUTER_CONFIG_FILE))

    def _sync_config(self) -> None:
        text = self._config_text()
        for pod in self.pods.values():
            path = pod.folder / ROUTER_CONFIG_FILE
            if text is not None and (not path.exists() or path.read_text() != text):
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text)
                tmp.replace(path)  # a new inode, as the kubelet's symlink swap gives
                self.syncs.append((time.time(), text))

    def _adopt_pods(self) -> None:
        selector = selector_string(pod_selector(self.endpoint, COMPONENT_ROUTER))
        live = self.kube.list("v1", "Pod", self.namespace, label_selector=selector)
        names = {p["metadata"]["name"] for p in live if not p["metadata"].get("deletionTimestamp")}
        for name in [n for n in self.pods if n not in names]:
            stop_process(self.pods.pop(name).process, 5)
        for pod in live:
            name = pod["metadata"]["name"]
            if name in self.pods or name not in names:
                continue
            text = self._config_text()
            free = [ip for ip in self.ips if ip not in {p.ip for p in self.pods.values()}]
            # A kubelet starts no pod before its Secret volumes exist: the push key Secret too
            # (a router started without it refuses every push until it restarts).
            secret = self.kube.get("v1", "Secret", push_secret_name(self.endpoint), self.namespace)
            key = read_push_key(secret)
            if text is None or not free or key is None:
                continue
            self.pods[name] = self._start(name, free[0], text, key)
            mark_ready(self.kube, pod, free[0])

    def _start(self, name: str, ip: str, text: str, key: bytes) -> RouterPod:
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ROUTER_CONFIG_FILE).write_text(text)
        # The push key Secret, mounted as the kubelet would (the operator's signed pushes).
        (folder / "push-key").write_bytes(key)
        push = ["--push-key-file", str(folder / "push-key")]
        argv = [sys.executable, "-c", ROUTER_SHIM, "--config", str(folder / ROUTER_CONFIG_FILE),
                "--host", ip, "--port", str(ROUTER_HTTP_PORT),
                "--metrics-port", str(ROUTER_METRICS_PORT), "--log-level", "warning",
                *push]  # fmt: skip
        env = {**os.environ, **self.env, "MLKUBE_TEST_UPSTREAMS": json.dumps(self.upstreams)}
        with open(folder / "router.log", "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        pod = RouterPod(name, ip, folder, process)
        wait_for(lambda: process.poll() is not None or _get(pod.url + "/healthz") == 200,
                 timeout=20, interval=0.05, what=f"router {name} on {ip}")  # fmt: skip
        assert process.poll() is None, pod.log()
        return pod


@contextlib.contextmanager
def local_routers(routers: LocalRouters) -> Iterator[LocalRouters]:
    thread = threading.Thread(target=routers.run, name="local-routers", daemon=True)
    thread.start()
    try:
        yield routers
    finally:
        routers._stop.set()
        thread.join(timeout=10)
        for pod in routers.pods.values():
            stop_process(pod.process, 5)


def loopback_ips(count: int, seed: int) -> list[str]:
    """Addresses in 127.0.0.0/8 unlikely to be used by another test run on this machine."""
    base = 100 + seed % 100
    return [f"127.{base}.{(seed // 100) % 250 + 1}.{i + 1}" for i in range(count)]
