"""The operator's API client without the `kubernetes` package (k8s/connection.py,
k8s/transport.py): kubeconfigs read as kubectl merges them, requests over real HTTP(S) to a
local server (TLS with a CA and a client certificate), errors as the official client's, and
the operator process importing no `kubernetes` module."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.devcluster.pki import generate_pki
from mlkube.k8s import ApiError, ApiUnreachable, Kube, connection, transport
from mlkube.k8s.connection import Connection, KubeconfigError

REPO = Path(__file__).resolve().parents[3]


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def config(
    server: str = "https://127.0.0.1:6443",
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    namespace: str | None = None,
    name: str = "dev",
) -> dict[str, Any]:
    ctx: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": name, "user": user or {"token": "t0"}}],
        "contexts": [{"name": name, "context": ctx}],
        "current-context": name,
    }


# -- kubeconfig ---------------------------------------------------------------------------


def test_a_token_kubeconfig_reads_server_token_namespace_and_a_relative_ca(
    tmp_path: Path,
) -> None:
    (tmp_path / "pki").mkdir()
    path = write_config(
        tmp_path / "config",
        config(cluster={"certificate-authority": "pki/ca.crt"}, namespace="team-a"),
    )
    conn = connection.from_kubeconfig(str(path))
    assert conn == Connection(
        server="https://127.0.0.1:6443",
        namespace="team-a",
        ca_file=str(tmp_path / "pki" / "ca.crt"),
        token="t0",
    )


def test_data_fields_become_private_files(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    b64 = base64.b64encode(pem).decode()
    path = write_config(
        tmp_path / "config",
        config(
            user={"client-certificate-data": b64, "client-key-data": b64},
            cluster={"certificate-authority-data": b64},
        ),
    )
    conn = connection.from_kubeconfig(str(path))
    assert conn is not None and conn.ca_file and conn.cert_file and conn.key_file
    for name in (conn.ca_file, conn.cert_file, conn.key_file):
        assert Path(name).read_bytes() == pem
        assert Path(name).stat().st_mode & 0o077 == 0  # readable by this user only
    assert conn.token is None


def test_merged_files_first_definition_wins_and_context_can_be_chosen(tmp_path: Path) -> None:
    first = write_config(tmp_path / "a", config(server="https://first:1", name="dev"))
    second_doc = config(server="https://second:2", name="dev")
    other = config(server="https://other:3", name="other", namespace="o")
    for key in ("clusters", "users", "contexts"):
        second_doc[key] += other[key]
    second_doc["current-context"] = "other"
    second = write_config(tmp_path / "b", second_doc)
    paths = os.pathsep.join([str(first), str(second)])
    current = connection.from_kubeconfig(paths)
    assert current is not None and current.server == "https://first:1"
    chosen = connection.from_kubeconfig(paths, context="other")
    assert chosen is not None and (chosen.server, chosen.namespace) == ("https://other:3", "o")


def test_exec_plugins_and_proxies_are_left_to_the_official_client(tmp_path: Path) -> None:
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}}
    exec_config = write_config(tmp_path / "e", config(user=exec_user))
    assert connection.from_kubeconfig(str(exec_config)) is None
    proxied = config(cluster={"proxy-url": "http://proxy:3128"})
    assert connection.from_kubeconfig(str(write_config(tmp_path / "p", proxied))) is None


def test_a_missing_context_says_which(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", config())
    with pytest.raises(KubeconfigError, match="no context 'nope'"):
        connection.from_kubeconfig(str(path), context="nope")


def test_in_cluster_uses_the_service_environment_and_the_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "SA_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert connection.in_cluster() is None  # no token: not in a pod
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("mlkube-system")
    (tmp_path / "ca.crt").write_text("ca")
    conn = connection.in_cluster()
    assert conn == Connection(
        server="https://10.96.0.1:443",
        namespace="mlkube-system",
        ca_file=str(tmp_path / "ca.crt"),
        token_file=str(tmp_path / "token"),
    )
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    conn = connection.in_cluster()
    assert conn is not None and conn.server == "https://[fd00::1]:443"


# -- requests over HTTP -------------------------------------------------------------------


class Recorded(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]
    answer: tuple[int, bytes]

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        peer = getattr(self.connection, "getpeercert", lambda: None)()
        self.seen.append({
            "method": self.command, "path": self.path, "headers": dict(self.headers),
            "body": self.rfile.read(length) if length else b"", "peer_cert": bool(peer),
        })  # fmt: skip
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _any

    def log_message(self, *_: Any) -> None:
        pass


def new_handler(answer: tuple[int, bytes]) -> type[Recorded]:
    class Handler(Recorded):
        seen: list[dict[str, Any]] = []  # a fresh list per server

    Handler.answer = answer
    return Handler


@pytest.fixture
def server() -> Iterator[tuple[ThreadingHTTPServer, type[Recorded]]]:
    handler = new_handler((200, b"{}"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler
    httpd.shutdown()
    httpd.server_close()


def light(server: ThreadingHTTPServer, **fields: Any) -> Kube:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return Kube(transport=transport.PoolTransport(Connection(server=url, **fields)))


def test_requests_carry_query_headers_token_and_a_json_body(
    server: tuple[ThreadingHTTPServer, type[Recorded]],
) -> None:
    httpd, handler = server
    handler.answer = (200, b'{"kind": "ConfigMap", "data": {"a": "1"}}')
    kube = light(httpd, token="secret-token")
    got = kube.request(
        "PATCH", "/api/v1/namespaces/ns/configmaps/c", body={"data": {"a": "1"}, 7: "x"},
        content_type="application/merge-patch+json", query=[("fieldManager", "a b")],
    )  # fmt: skip
    assert got == {"kind": "ConfigMap", "data": {"a": "1"}}
    (seen,) = handler.seen
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/api/v1/namespaces/ns/configmaps/c?fieldManager=a+b"
    assert seen["headers"]["Authorization"] == "Bearer secret-token"
    assert seen["headers"]["Content-Type"] == "application/merge-patch+json"
    assert json.loads(seen["body"]) == {"data": {"a": "1"}, "7": "x"}


def test_a_status_answer_becomes_an_api_error_with_its_reason(
    server: tuple[ThreadingHTTPServer, type[Recorded]],
) -> None:
    httpd, handler = server
    status = {"kind": "Status", "reason": "AlreadyExists", "message": 'models "m" exists'}
    handler.answer = (409, json.dumps(status).encode())
    with pytest.raises(ApiError) as err:
        light(httpd, token="t").request("POST", "/apis/x/v1/models", body={})
    assert (err.value.status, err.value.reason) == (409, "AlreadyExists")
    assert 'models "m" exists' in str(err.value)
    handler.answer = (500, b"not json")
    with pytest.raises(ApiError, match=r"500 .*not json"):
        light(httpd, token="t").request("GET", "/api/v1")


def test_a_refused_connection_is_unreachable_in_one_line() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        kube = Kube(transport=transport.PoolTransport(Connection(f"http://127.0.0.1:{port}")))
        with pytest.raises(ApiUnreachable, match="Connection refused") as err:
            kube.request("GET", "/api/v1")
    assert f"cannot reach the API server at http://127.0.0.1:{port}" in str(err.value)


def test_a_token_file_is_read_again_after_its_ttl(
    server: tuple[ThreadingHTTPServer, type[Recorded]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpd, handler = server
    token = tmp_path / "token"
    token.write_text("first\n")
    kube = light(httpd, token_file=str(token))
    kube.request("GET", "/api/v1")
    token.write_text("second")
    kube.request("GET", "/api/v1")  # within the TTL: the token read before
    monkeypatch.setattr(transport, "TOKEN_TTL", -1.0)
    kube.request("GET", "/api/v1")
    auths = [s["headers"]["Authorization"] for s in handler.seen]
    assert auths == ["Bearer first", "Bearer first", "Bearer second"]


def test_basic_auth_when_there_is_no_token(
    server: tuple[ThreadingHTTPServer, type[Recorded]],
) -> None:
    httpd, handler = server
    light(httpd, username="admin", password="pw").request("GET", "/api/v1")
    expected = "Basic " + base64.b64encode(b"admin:pw").decode()
    assert handler.seen[0]["headers"]["Authorization"] == expected


def test_pod_log_asks_for_text(server: tuple[ThreadingHTTPServer, type[Recorded]]) -> None:
    httpd, handler = server
    handler.answer = (200, b"line 1\nline 2\n")
    text = light(httpd, token="t").pod_log("ns", "p", "main", tail_lines=5)
    assert text == "line 1\nline 2\n"
    assert handler.seen[0]["path"] == "/api/v1/namespaces/ns/pods/p/log?container=main&tailLines=5"
    assert handler.seen[0]["headers"]["Accept"] == "*/*"


def test_tls_verifies_the_server_and_presents_the_client_certificate(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path / "pki")
    handler = new_handler((200, b'{"ok": true}'))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki.serving_cert, pki.serving_key)
    tls.load_verify_locations(pki.ca_cert)
    tls.verify_mode = ssl.CERT_REQUIRED  # a client certificate signed by the CA, or no TLS
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        server = f"https://127.0.0.1:{httpd.server_address[1]}"
        ca = {"certificate-authority-data": base64.b64encode(pki.ca_cert.read_bytes()).decode()}
        key = base64.b64encode(pki.serving_key.read_bytes()).decode()
        user = {"client-certificate": "pki/apiserver.crt", "client-key-data": key}
        good = write_config(tmp_path / "good", config(server, user=user, cluster=ca))
        conn = connection.from_kubeconfig(str(good))
        assert conn is not None
        assert Kube(transport=transport.PoolTransport(conn)).request("GET", "/api") == {"ok": True}
        assert handler.seen[-1]["peer_cert"]  # the server saw the client certificate
        untrusted = connection.from_kubeconfig(
            str(write_config(tmp_path / "bad", config(server, user=user)))
        )
        assert untrusted is not None
        with pytest.raises(ApiUnreachable, match="certificate verify failed"):
            Kube(transport=transport.PoolTransport(untrusted)).request("GET", "/api")
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the operator process -----------------------------------------------------------------


def test_the_operator_process_imports_no_kubernetes_module(tmp_path: Path) -> None:
    """`mlkube operator`'s imports with a token kubeconfig: every handler module loads with
    the official client blocked, and its Kube speaks urllib3."""
    path = write_config(tmp_path / "config", config())
    code = (
        "import sys\n"
        "from mlkube.cli.operator_cmd import skip_official_client\n"
        "skip_official_client()\n"
        "import mlkube.handlers.main\n"
        "from mlkube.handlers.clients import kube\n"
        "print(type(kube().transport).__name__)\n"
        "loaded = [m for m, v in sys.modules.items() if m.split('.')[0] == 'kubernetes' and v]\n"
        "print(sorted(loaded))\n"
    )
    env = {**os.environ, "KUBECONFIG": str(path), "PYTHONPATH": str(REPO / "operator")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["PoolTransport", "[]"]


def test_an_exec_kubeconfig_keeps_the_official_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"}}
    monkeypatch.setenv("KUBECONFIG", str(write_config(tmp_path / "c", config(user=exec_user))))
    assert connection.find() is None
    assert type(Kube.light().transport).__name__ == "ClientTransport"


def test_an_unreadable_kubeconfig_leaves_the_official_client_importable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlkube.cli.operator_cmd import skip_official_client

    monkeypatch.delitem(sys.modules, "kubernetes", raising=False)
    for text in (None, "clusters: [{cluster: {}}]\n"):  # missing, then malformed
        path = tmp_path / "config"
        if text is not None:
            path.write_text(text)
        monkeypatch.setenv("KUBECONFIG", str(path))
        skip_official_client()
        assert sys.modules.get("kubernetes", "absent") is not None


def test_insecure_only_when_literally_true(tmp_path: Path) -> None:
    quoted = config(cluster={"insecure-skip-tls-verify": "false"})
    conn = connection.from_kubeconfig(str(write_config(tmp_path / "q", quoted)))
    assert conn is not None and conn.insecure is False
    real = config(cluster={"insecure-skip-tls-verify": True})
    conn = connection.from_kubeconfig(str(write_config(tmp_path / "t", real)))
    assert conn is not None and conn.insecure is True


def test_a_token_file_that_cannot_be_read_again_keeps_the_last_token(
    server: tuple[ThreadingHTTPServer, type[Recorded]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpd, handler = server
    token = tmp_path / "token"
    token.write_text("good")
    kube = light(httpd, token_file=str(token))
    kube.request("GET", "/api/v1")
    token.unlink()
    monkeypatch.setattr(transport, "TOKEN_TTL", -1.0)
    kube.request("GET", "/api/v1")
    assert [s["headers"]["Authorization"] for s in handler.seen] == ["Bearer good"] * 2
    assert handler.seen[0]["headers"]["User-Agent"] == "mlkube-operator"
    never = light(httpd, token_file=str(token))  # never read: no token to send
    with pytest.raises(ApiUnreachable, match="No such file"):
        never.request("GET", "/api/v1")
