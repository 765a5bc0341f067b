"""The real node's model store: MinIO (hack/minio/build.sh) on the bridge address, so pods'
storage initializers download real artifacts over S3, and the host-side operator verifies the
same objects. file:// artifacts, which the kwok mode uses, are not reachable from pods.

Dev-only credentials, generated per node start, are kept in the node's state file and handed
to pods through the Secret `mlkube-dev-storage` (the operator's MLKUBE_STORAGE_SECRET).
"""

from __future__ import annotations

import base64
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlkube.contract import ENV_S3_ENDPOINT_URL
from mlkube.devcluster.realnode_config import BRIDGE_ADDRESS

STORE_PORT = 9000
STORE_ENDPOINT = f"http://{BRIDGE_ADDRESS}:{STORE_PORT}"
BUCKET = "mlkube-dev"
SECRET_NAME = "mlkube-dev-storage"
ACCESS_KEY = "mlkube-dev"


def minio_binary(hack: Path) -> Path:
    result = subprocess.run(
        ["bash", str(hack / "minio" / "build.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"MinIO build failed (exit {result.returncode}), see above")
    return Path(result.stdout.strip().splitlines()[-1])


def minio_argv(binary: Path, data_dir: Path) -> list[str]:
    return [str(binary), "server", str(data_dir), "--quiet",
            "--address", f"{BRIDGE_ADDRESS}:{STORE_PORT}",
            "--console-address", f"127.0.0.1:{STORE_PORT + 1}"]  # fmt: skip


def minio_env(secret_key: str) -> dict[str, str]:
    return {
        "MINIO_ROOT_USER": ACCESS_KEY,
        "MINIO_ROOT_PASSWORD": secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_CALLHOME_ENABLE": "off",
    }


def client_env(secret_key: str) -> dict[str, str]:
    """What an S3 client (operator, CLI upload, storage initializer) needs for the store."""
    return {
        ENV_S3_ENDPOINT_URL: STORE_ENDPOINT,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def build_storage_secret(namespace: str, secret_key: str) -> dict[str, Any]:
    """The Secret the operator puts into serving pods (envFrom) for the store's credentials."""
    data = {
        k: base64.b64encode(v.encode()).decode()
        for k, v in client_env(secret_key).items()
        if k.startswith("AWS_")
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace},
        "type": "Opaque",
        "data": data,
    }


def store_ready() -> bool:
    try:
        with urllib.request.urlopen(f"{STORE_ENDPOINT}/minio/health/live", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def create_bucket(secret_key: str, timeout: float = 30.0) -> None:
    import s3fs  # only the real node needs an S3 client in the launcher

    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY, secret=secret_key, client_kwargs={"endpoint_url": STORE_ENDPOINT}
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not fs.exists(BUCKET):
                fs.mkdir(BUCKET)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
