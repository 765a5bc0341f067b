"""How a `Kube` sends one request: urllib3 directly (`PoolTransport`, the operator's), or the
official client's ApiClient (`ClientTransport`: kubeconfigs with exec plugins or auth
providers, and the CLI).

Both return the raw answer and raise ApiError / ApiUnreachable alike, so `Kube` is one class.
The operator uses `PoolTransport` because importing the official client costs ~9 MiB of RSS
and 260 modules for a configuration object, a pool and a kubeconfig reader
(docs/benchmarks/operator-scale.md, "Eleventh session").
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson
import urllib3

from mlkube.k8s.connection import Connection
from mlkube.k8s.errors import ApiError, ApiUnreachable

TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
TOKEN_TTL = 60.0  # how long a token file's content is used before it is read again
USER_AGENT = {"User-Agent": "mlkube-operator"}  # what audit logs show


class Transport(Protocol):
    host: str

    def call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: Any = None,
    ) -> bytes: ...


class PoolTransport:
    """urllib3 with one pool of kept-alive connections to the API server."""

    def __init__(self, conn: Connection, pool_size: int = 4) -> None:
        self.host = conn.server
        self._conn = conn
        self._token = conn.token
        self._token_read = 0.0
        self._lock = threading.Lock()
        tls: dict[str, Any] = {}
        if conn.server.startswith("https:"):
            tls = {
                "cert_reqs": ssl.CERT_NONE if conn.insecure else ssl.CERT_REQUIRED,
                "ca_certs": conn.ca_file,
                "cert_file": conn.cert_file,
                "key_file": conn.key_file,
            }
            if conn.tls_server_name:
                tls["server_hostname"] = conn.tls_server_name
            if conn.insecure:
                tls["assert_hostname"] = False
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=max(1, pool_size), **tls)
        if conn.username is not None and conn.password is not None:
            pair = base64.b64encode(f"{conn.username}:{conn.password}".encode()).decode()
            self._basic = {"Authorization": f"Basic {pair}"}  # made once, not per request
        else:
            self._basic = {}
        self._timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=TIMEOUT)

    def _auth(self) -> dict[str, str]:
        conn = self._conn
        if conn.token_file:
            now = time.monotonic()
            if self._token is None or now - self._token_read > TOKEN_TTL:
                with self._lock:
                    try:
                        with open(conn.token_file, encoding="utf-8") as handle:
                            self._token = handle.read().strip()
                    except OSError:
                        if self._token is None:  # never read: nothing to send
                            raise
                    self._token_read = now  # a failed re-read keeps the last good token
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        return self._basic

    def call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: Any = None,
    ) -> bytes:
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        if body is not None and not isinstance(body, (bytes, str)):
            body = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        try:
            resp = self._pool.request(
                method, url, body=body, headers={**headers, **self._auth(), **USER_AGENT},
                timeout=self._timeout, redirect=False,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise ApiUnreachable(self.host, reason(exc)) from exc
        except OSError as exc:  # the token file is gone
            raise ApiUnreachable(self.host, str(exc)) from exc
        if not 200 <= resp.status < 300:
            raise api_error(resp.status, str(resp.reason), resp.data)
        return bytes(resp.data)


class ClientTransport:
    """The official client's ApiClient (its auth plugins, proxies and token refresh)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client
        self.host = str(api_client.configuration.host)

    def call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: Any = None,
    ) -> bytes:
        from kubernetes import client  # only on this path: the operator never imports it

        method_, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        try:
            resp = self.api.call_api(
                method_, url, header_params=headers, body=body, _request_timeout=TIMEOUT
            )
            raw: bytes = resp.read()
        except client.ApiException as exc:
            raise api_error(int(exc.status or 0), str(exc.reason), exc.body) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ApiUnreachable(self.host, reason(exc)) from exc
        if not 200 <= resp.status < 300:
            raise api_error(resp.status, str(resp.reason), raw)
        return raw


def api_error(status: int, reason_: str, body: bytes | str | None) -> ApiError:
    """An ApiError from a Kubernetes Status document, falling back to the raw body."""
    message = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        doc = json.loads(message or "{}")
        reason_ = doc.get("reason", reason_)
        message = doc.get("message", message)
    except (ValueError, AttributeError):  # not JSON, or JSON that is not a Status
        pass
    return ApiError(status, reason_, message)


def reason(exc: urllib3.exceptions.HTTPError) -> str:
    """The root cause without urllib3's pool/connection reprs ("[Errno 111] Connection refused")."""
    cause: BaseException = getattr(exc, "reason", None) or exc
    return re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", str(cause))
