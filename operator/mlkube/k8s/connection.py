"""Where the API server is and how to authenticate, read without the `kubernetes` package.

The operator process needs only what its own identity uses: a service account in a pod, or a
kubeconfig with a token, token file, client certificate or basic auth (what `make dev` writes).
Anything else (exec credential plugins, auth providers, proxies) returns None from
`from_kubeconfig`, and the caller uses the official client, which handles it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_KEYS = {
    "token", "tokenFile", "client-certificate", "client-certificate-data", "client-key",
    "client-key-data", "username", "password", "extensions",
}  # fmt: skip
CLUSTER_KEYS = {
    "server", "certificate-authority", "certificate-authority-data",
    "insecure-skip-tls-verify", "tls-server-name", "disable-compression", "extensions",
}  # fmt: skip


class KubeconfigError(ValueError):
    """A kubeconfig that names what does not exist (no context, no cluster)."""


@dataclass(frozen=True)
class Connection:
    server: str
    namespace: str = "default"
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    # Re-read on use: a projected service-account token is rotated by the kubelet.
    token_file: str | None = None
    username: str | None = None
    password: str | None = None


def find() -> Connection | None:
    """$KUBECONFIG, else the pod's service account, else ~/.kube/config (as the official
    client's loaders choose); None when the kubeconfig needs the official client."""
    path = os.environ.get("KUBECONFIG")
    return (None if path else in_cluster()) or from_kubeconfig(path)


def in_cluster() -> Connection | None:
    """The pod's service account, as client-go finds it (the Service's address from the
    environment, no DNS); None outside a pod."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token = SA_DIR / "token"
    if not host or not token.exists():
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    ca = SA_DIR / "ca.crt"
    namespace = read_text(SA_DIR / "namespace") or "default"
    return Connection(
        server=f"https://{host}:{port}",
        namespace=namespace,
        ca_file=str(ca) if ca.exists() else None,
        token_file=str(token),
    )


def from_kubeconfig(paths: str | None = None, context: str | None = None) -> Connection | None:
    """The chosen (or current) context of the kubeconfig files (os.pathsep-separated, the
    first definition of a name wins, as kubectl merges them); None when it needs more than
    this module reads (exec plugins, auth providers, proxies)."""
    files = [
        Path(p).expanduser() for p in (paths or "~/.kube/config").split(os.pathsep) if p.strip()
    ]
    merged: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {
        "contexts": {}, "clusters": {}, "users": {}
    }  # fmt: skip
    current = None
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        current = current or doc.get("current-context")
        for section, key in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in doc.get(section) or []:
                if not isinstance(item, dict) or not item.get("name"):
                    raise KubeconfigError(f"kubeconfig {path}: a {key} without a name")
                merged[section].setdefault(item["name"], (item.get(key) or {}, path.parent))
    name = context or current
    if not name or name not in merged["contexts"]:
        raise KubeconfigError(f"kubeconfig {paths or '~/.kube/config'}: no context {name!r}")
    ctx = merged["contexts"][name][0]
    if ctx.get("cluster") not in merged["clusters"]:
        raise KubeconfigError(f"kubeconfig context {name!r}: no cluster {ctx.get('cluster')!r}")
    cluster, cluster_dir = merged["clusters"][ctx["cluster"]]
    user, user_dir = merged["users"].get(ctx.get("user") or "", ({}, Path(".")))
    if set(user) - USER_KEYS or set(cluster) - CLUSTER_KEYS:
        return None
    if not cluster.get("server"):
        raise KubeconfigError(f"kubeconfig cluster {ctx['cluster']!r}: no server")
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        namespace=str(ctx.get("namespace") or "default"),
        ca_file=_file(cluster, "certificate-authority", cluster_dir),
        insecure=cluster.get("insecure-skip-tls-verify") is True,  # "false" must not turn it off
        tls_server_name=cluster.get("tls-server-name"),
        cert_file=_file(user, "client-certificate", user_dir),
        key_file=_file(user, "client-key", user_dir),
        token=user.get("token"),
        token_file=_path(user["tokenFile"], user_dir) if user.get("tokenFile") else None,
        username=user.get("username"),
        password=user.get("password"),
    )


def _file(section: dict[str, Any], key: str, base: Path) -> str | None:
    """A file's path: `key` relative to its kubeconfig, or `key`-data written to a private
    temporary file (ssl loads certificates and keys from files only)."""
    if section.get(f"{key}-data"):
        data = base64.b64decode(section[f"{key}-data"])
        fd, name = tempfile.mkstemp(prefix="mlkube-kube-", suffix=".pem")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        atexit.register(_remove, name)
        return name
    return _path(section[key], base) if section.get(key) else None


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def _path(value: str, base: Path) -> str:
    return str(base / Path(value).expanduser())


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
