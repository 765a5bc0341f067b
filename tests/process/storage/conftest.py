"""Real servers for storage tests: an S3-compatible server and a static HTTP server, each a
separate process on a free loopback port.

S3 server choice: MinIO when a `minio` binary is available (env MLKUBE_MINIO_BIN or PATH),
else moto's S3 server (`python -m moto.server`, from the dev extra). Force one with
MLKUBE_TEST_S3_SERVER=minio|moto (forcing minio without a binary fails loudly).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mlkube.devcluster.procs import free_port

ACCESS_KEY = "mlkube-test"
SECRET_KEY = "mlkube-test-secret"  # MinIO wants >= 8 characters


@dataclass(frozen=True)
class S3Server:
    kind: str  # "minio" or "moto"
    endpoint: str


def wait_http(
    url: str, process: subprocess.Popen[bytes], timeout: float = 30.0, need_ok: bool = False
) -> None:
    """Poll until `url` answers (with 2xx if `need_ok`) or fail with the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            if not need_ok:
                return
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready after {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def choose_s3_server() -> tuple[str, str | None]:
    wanted = os.environ.get("MLKUBE_TEST_S3_SERVER", "auto")
    minio = os.environ.get("MLKUBE_MINIO_BIN") or shutil.which("minio")
    if wanted == "minio" and not minio:
        raise RuntimeError("MLKUBE_TEST_S3_SERVER=minio but no minio binary (MLKUBE_MINIO_BIN)")
    if wanted == "moto" or not minio:
        return "moto", None
    return "minio", minio


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    kind, minio = choose_s3_server()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mlkube-s3-") as data_dir:
        if minio is not None:
            env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
            command = [minio, "server", data_dir, "--quiet", "--address", f"127.0.0.1:{port}"]
            command += ["--console-address", f"127.0.0.1:{free_port()}"]
            ready = f"{endpoint}/minio/health/live"
        else:
            env = dict(os.environ)
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            ready = f"{endpoint}/moto-api/"
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=data_dir
        )
        try:
            wait_http(ready, process, need_ok=minio is not None)
            yield S3Server(kind, endpoint)
        finally:
            stop(process)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; credentials and endpoint only through the standard env variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLKUBE_S3_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import s3fs

    bucket = f"mlkube-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(
        skip_instance_cache=True, client_kwargs={"endpoint_url": s3_server.endpoint}
    )
    fs.mkdir(bucket)
    return bucket


@pytest.fixture(scope="session")
def http_root() -> Iterator[tuple[str, str]]:
    """(directory, base URL) of a `python -m http.server` process serving that directory."""
    with tempfile.TemporaryDirectory(prefix="mlkube-http-") as root:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/", process)
            yield root, base
        finally:
            stop(process)


@pytest.fixture(scope="session")
def hostile_http() -> Iterator[str]:
    """Base URL of tests/support/hostile_http.py: endless and dripping bodies, redirects."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "support", "hostile_http.py")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, script, str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/nothing", process)
        yield base
    finally:
        stop(process)
