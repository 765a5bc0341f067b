"""A token service for the test registry's Bearer auth (distribution `auth: token`).

The registry answers 401 `Bearer realm=…,service=…,scope=…`; clients fetch a JWT here
(RS256, the signing certificate in the `x5c` header, its self-signed root in the registry's
`rootcertbundle`). Basic credentials are checked; anonymous callers get pull only, and
`requests` records every scope asked for, so tests can see what the client requested.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE, ISSUER = "mlkube-test-registry", "mlkube-test-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    url: str
    cert_file: Path
    requests: list[tuple[str | None, list[str]]] = field(default_factory=list)  # (user, scopes)


def _certificate(tmp: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlkube-test-token")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp / "token-root.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _jwt(
    key: rsa.RSAPrivateKey, cert: x509.Certificate, sub: str, access: list[dict[str, object]]
) -> str:
    header = {
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()],
    }
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": sub,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 60,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": access,
    }
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing}.{_b64(signature)}"


@contextmanager
def running_token_service(tmp: Path, username: str, password: str) -> Iterator[TokenService]:
    key, cert, cert_file = _certificate(tmp)
    service = TokenService("", cert_file)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            user = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                given = base64.b64decode(header[6:]).decode()
                if given != f"{username}:{password}":
                    self.send_response(401)
                    self.end_headers()
                    return
                user = username
            scopes = query.get("scope", [])
            service.requests.append((user, scopes))
            access = []
            for scope in scopes:
                kind, name, actions = scope.split(":")
                allowed = actions.split(",") if user else ["pull"]
                access.append({"type": kind, "name": name, "actions": allowed})
            body = json.dumps({"token": _jwt(key, cert, user or "", access)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
