"""The dev cluster's default artifact store in the kwok mode: MinIO (hack/minio/build.sh) on a
free loopback port, so `mlkube model register` copies models into a store instead of
registering a file where it lies (issue 18). The real-node mode has its own on the bridge
(realnode_store), where pods can reach it; kwok pods run nowhere, and loopback keeps all
traffic on this machine.

The store is a process of the cluster (`mlkube dev down` stops it). Its settings, credentials
included, are written once into the admin kubeconfig's context (mlkube.storage.default_store):
the CLI reads them there, and the operator and the samples get the same values.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from mlkube.devcluster import procs, realnode_store
from mlkube.devcluster.cluster import REPO_ROOT, Cluster, ClusterError
from mlkube.storage.default_store import DefaultStore, with_extension

PROCESS = "store"
BUCKET = realnode_store.BUCKET


def store_path(cluster: Cluster) -> Path:
    return cluster.workdir / "store.json"


def minio_binary() -> Path:
    override = os.environ.get("MLKUBE_MINIO_BIN")
    return Path(override) if override else realnode_store.minio_binary(REPO_ROOT / "hack")


def ensure_store(cluster: Cluster, timeout: float = 60.0) -> DefaultStore:
    """Start the store unless it runs; return its settings."""
    path = store_path(cluster)
    saved = DefaultStore(**json.loads(path.read_text())) if path.exists() else None
    if PROCESS in cluster.state.pids and saved is not None:
        return saved
    port, console = procs.free_port(), procs.free_port()
    # The data survives `down`/`up` (like etcd's): keep its credentials, take a new port.
    secret = saved.secret_access_key if saved and saved.secret_access_key else secrets.token_hex(20)
    store = DefaultStore(
        uri=f"s3://{BUCKET}", endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id=realnode_store.ACCESS_KEY, secret_access_key=secret, region="us-east-1",
    )  # fmt: skip
    data = cluster.workdir / "store-data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [str(minio_binary()), "server", str(data), "--quiet", "--address",
            f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}"]  # fmt: skip
    cluster.add_process(PROCESS, argv, realnode_store.minio_env(secret))
    deadline = time.monotonic() + timeout
    while not _live(f"{store.endpoint_url}/minio/health/live"):
        if not procs.alive(cluster.state.pids[PROCESS]) or time.monotonic() > deadline:
            log = procs.tail(cluster.logs / f"{PROCESS}.log")
            raise ClusterError(f"artifact store (MinIO) did not start; log:\n{log}")
        time.sleep(0.2)
    _create_bucket(store, deadline)
    path.write_text(json.dumps(store.__dict__))
    path.chmod(0o600)
    return store


def write_default_store(kubeconfig: Path, store: DefaultStore) -> None:
    """Name the store as the default of the kubeconfig's current context (the CLI reads it)."""
    doc: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    kubeconfig.write_text(yaml.safe_dump(with_extension(doc, store)))
    kubeconfig.chmod(0o600)


def operator_env(store: DefaultStore) -> dict[str, str]:
    """The operator verifies Models in the store with its credentials, and hands pods the
    credentials Secret (build_storage_secret) as the chart's storageSecret does."""
    return {**store.client_env(), "MLKUBE_STORAGE_SECRET": realnode_store.SECRET_NAME}


def storage_secret(namespace: str, store: DefaultStore) -> dict[str, Any]:
    return realnode_store.build_storage_secret(namespace, store.secret_access_key or "")


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _create_bucket(store: DefaultStore, deadline: float) -> None:
    import s3fs  # only the launcher that starts a store needs an S3 client

    fs = s3fs.S3FileSystem(
        key=store.access_key_id, secret=store.secret_access_key,
        client_kwargs={"endpoint_url": store.endpoint_url},
    )  # fmt: skip
    while True:
        try:
            if not fs.exists(BUCKET):
                fs.mkdir(BUCKET)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
