"""The node's model store hands pods exactly the S3 credentials and nothing else."""

from __future__ import annotations

import base64
from pathlib import Path

from mlkube.contract import ENV_S3_ENDPOINT_URL
from mlkube.devcluster.realnode_store import (
    SECRET_NAME,
    STORE_ENDPOINT,
    build_storage_secret,
    client_env,
    minio_argv,
)


def test_secret_carries_the_credentials_only() -> None:
    secret = build_storage_secret("default", "s3cr3t")
    assert secret["metadata"] == {"name": SECRET_NAME, "namespace": "default"}
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert set(data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}


def test_clients_use_the_store_on_the_bridge() -> None:
    assert client_env("x")[ENV_S3_ENDPOINT_URL] == STORE_ENDPOINT
    assert STORE_ENDPOINT.startswith("http://10.86.0.1:")


def test_minio_listens_on_the_bridge_and_its_console_on_loopback() -> None:
    argv = minio_argv(Path("/bin/minio"), Path("/w/node/store"))
    assert argv[argv.index("--address") + 1] == "10.86.0.1:9000"
    assert argv[argv.index("--console-address") + 1].startswith("127.0.0.1:")
