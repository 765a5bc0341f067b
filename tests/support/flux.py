"""Flux's source-controller and kustomize-controller as processes (hack/flux builds them from
the Go module proxy), and the loopback MinIO bucket they read manifests from: what
`make test-gitops` runs docs/deploy-flux.md's Kustomization with. Loopback only, no leader
election, metrics/health/artifact ports free ones; a missing build fails loudly."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlkube.devcluster.procs import free_port
from mlkube.k8s import Kube
from support.gitops import REPO

ACCESS_KEY = "mlkube-flux"
SECRET_KEY = "mlkube-flux-secret"  # MinIO wants >= 8 characters
FLUX_NAMESPACE = "flux-system"
CONTROLLERS = ("source-controller", "kustomize-controller")


def flux_bin_dir() -> Path:
    """MLKUBE_FLUX_BIN (hack/test-gitops sets it), else build or reuse hack/flux's build."""
    override = os.environ.get("MLKUBE_FLUX_BIN")
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(REPO / "hack" / "flux" / "build.sh")],
                         stdout=subprocess.PIPE, text=True, check=True)  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1]).parent


def minio_binary() -> Path:
    override = os.environ.get("MLKUBE_MINIO_BIN")
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(REPO / "hack" / "minio" / "build.sh")],
                         stdout=subprocess.PIPE, text=True, check=True)  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `url` until it answers 2xx; fail with the process's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited {process.returncode}:\n{tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def started(command: list[str], log: Path, ready: str, env: dict[str, str]) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(ready, process, log, timeout=60)
            yield
        finally:
            stop(process)


@dataclass(frozen=True)
class MinioBucket:
    endpoint: str  # host:port, as a Flux Bucket's spec.endpoint
    name: str

    def client(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, skip_instance_cache=True,
                                 client_kwargs={"endpoint_url": f"http://{self.endpoint}",
                                                "region_name": "us-east-1"})  # fmt: skip

    def put(self, key: str, objects: list[dict[str, Any]]) -> None:
        with self.client().open(f"{self.name}/{key}", "w") as out:
            out.write(yaml.safe_dump_all(objects))


@contextlib.contextmanager
def minio_bucket(workdir: Path, name: str = "mlkube-gitops") -> Iterator[MinioBucket]:
    port = free_port()
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
    data = workdir / "minio"
    data.mkdir()
    command = [str(minio_binary()), "server", str(data), "--quiet", "--address",
               f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{free_port()}"]  # fmt: skip
    ready = f"http://127.0.0.1:{port}/minio/health/live"
    with started(command, workdir / "minio.log", ready, env):
        bucket = MinioBucket(f"127.0.0.1:{port}", name)
        bucket.client().mkdir(name)
        yield bucket


def apply_flux_crds(kube: Kube, bin_dir: Path, timeout: float = 30.0) -> list[str]:
    """The CRDs the controllers' modules ship (config/crd/bases), Established."""
    names = []
    for path in sorted((bin_dir / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        kube.apply(doc, field_manager="mlkube-tests")
        names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while not _established(kube, name):
            assert time.monotonic() < deadline, f"CRD {name} not Established"
            time.sleep(0.1)
    return names


def _established(kube: Kube, name: str) -> bool:
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@dataclass(frozen=True)
class FluxControllers:
    logs: dict[str, Path]

    def output(self) -> str:
        return "\n".join(f"--- {name}\n{tail(log, 60)}" for name, log in self.logs.items())


@contextlib.contextmanager
def flux_controllers(bin_dir: Path, kubeconfig: Path, workdir: Path) -> Iterator[FluxControllers]:
    """Both controllers watching all namespaces; source-controller serves its artifacts on a
    loopback port, which is also the address it advertises to kustomize-controller."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": FLUX_NAMESPACE}
    logs = {name: workdir / f"{name}.log" for name in CONTROLLERS}
    storage = f"127.0.0.1:{free_port()}"
    common = ["--watch-all-namespaces=true", "--enable-leader-election=false",
              "--events-addr=", "--log-level=debug"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        for name in CONTROLLERS:
            health = f"127.0.0.1:{free_port()}"
            args = [str(bin_dir / name), *common, f"--metrics-addr=127.0.0.1:{free_port()}",
                    f"--health-addr={health}"]  # fmt: skip
            if name == "source-controller":
                (workdir / "artifacts").mkdir()
                args += [f"--storage-path={workdir / 'artifacts'}", f"--storage-addr={storage}",
                         f"--storage-adv-addr={storage}"]  # fmt: skip
            stack.enter_context(started(args, logs[name], f"http://{health}/readyz", env))
        yield FluxControllers(logs)


def request_reconcile(kube: Kube, api_version: str, kind: str, name: str) -> None:
    """What `flux reconcile` does: a new reconcile.fluxcd.io/requestedAt annotation."""
    stamp = f"{time.time():.6f}"
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}}
    kube.patch(api_version, kind, name, patch, FLUX_NAMESPACE)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None
