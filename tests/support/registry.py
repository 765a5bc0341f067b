"""A real OCI registry (distribution v3 `cmd/registry`, hack/registry/build.sh) as a process.

`running_registry` starts it on a free loopback port with a temporary storage directory,
plain HTTP, optionally with htpasswd Basic auth (bcrypt, as the registry requires), and stops
it. The binary comes from MLKUBE_REGISTRY_BIN, else hack/registry/build.sh is run (cached).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlkube.devcluster.procs import free_port
from support.registry_token import ISSUER, SERVICE, TokenService

ROOT = Path(__file__).resolve().parents[2]
TEST_USER, TEST_PASSWORD = "builder", "s3cret-push"  # the auth registry fixtures' account


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:port
    storage: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def registry_binary() -> str:
    found = os.environ.get("MLKUBE_REGISTRY_BIN")
    if found:
        return found
    out = subprocess.run(
        ["bash", str(ROOT / "hack/registry/build.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _htpasswd(path: Path, username: str, password: str) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    path.write_text(f"{username}:{hashed}\n")


def _config(port: int, storage: Path, htpasswd: Path | None, token: TokenService | None) -> str:
    lines = [
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: '127.0.0.1:{port}', secret: mlkube-test-secret}}",
    ]
    if htpasswd is not None:
        lines.append(f"auth: {{htpasswd: {{realm: mlkube-test, path: {htpasswd}}}}}")
    if token is not None:
        lines.append(
            f"auth: {{token: {{realm: '{token.url}', service: {SERVICE}, issuer: {ISSUER}, "
            f"rootcertbundle: {token.cert_file}}}}}"
        )
    return "\n".join(lines) + "\n"


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"registry exited with {process.returncode}:\n{output}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401 with auth on: it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"registry at {url} not ready after {timeout}s")


@contextlib.contextmanager
def running_registry(
    *,
    username: str | None = None,
    password: str | None = None,
    binary: str | None = None,
    token: TokenService | None = None,
) -> Iterator[Registry]:
    """A registry process for the duration of the block: Basic auth (htpasswd) when username
    is set, Bearer auth through `token` (support/registry_token.py) when given."""
    exe = binary or registry_binary()
    with tempfile.TemporaryDirectory(prefix="mlkube-registry-") as tmp:
        base = Path(tmp)
        storage = base / "storage"
        storage.mkdir()
        htpasswd = None
        if username is not None and token is None:
            htpasswd = base / "htpasswd"
            _htpasswd(htpasswd, username, password or "")
        port = free_port()
        config = base / "config.yml"
        config.write_text(_config(port, storage, htpasswd, token))
        process = subprocess.Popen(
            [exe, "serve", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        )
        try:
            _wait(f"http://127.0.0.1:{port}/v2/", process)
            yield Registry(f"127.0.0.1:{port}", storage, username, password)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
