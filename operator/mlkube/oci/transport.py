"""HTTP for the registry client: one request with the auth dance, redirects and OCI errors.

stdlib `http.client` only (the build tools run in images that may have nothing else). A 401
answers with a challenge: Basic gets the stored credentials, Bearer a token from the realm
for the scopes the call needs (cached per host and scope); the request is then retried once.
Redirects (blob GETs to object storage) are followed for GET/HEAD, without the Authorization
header when they leave the registry's host.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from mlkube.oci.auth import Credentials, credentials_for, parse_challenge
from mlkube.oci.errors import NotFound, OciError, RegistryError, RegistryUnreachable, Unauthorized

USER_AGENT = "mlkube-oci/1"
_REDIRECTS = (301, 302, 303, 307, 308)

Body = bytes | IO[bytes] | None


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class Transport:
    def __init__(
        self,
        *,
        credentials: dict[str, Credentials],
        insecure: frozenset[str],
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.credentials = credentials
        self.insecure = insecure
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._auth: dict[tuple[str, str], str] = {}  # (host, scope) -> Authorization

    def url(self, host: str, path: str) -> str:
        scheme = "http" if host in self.insecure else "https"
        return f"{scheme}://{host}{path}"

    def request(
        self,
        method: str,
        host: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        expect: tuple[int, ...] = (200,),
        sink: IO[bytes] | None = None,
    ) -> Response:
        """Send, answering one auth challenge; raise the typed error unless status in `expect`.

        With `sink`, a 2xx body is copied there instead of kept in memory."""
        url = path_or_url if "://" in path_or_url else self.url(host, path_or_url)
        key = (host, " ".join(scopes))
        sent = dict(headers or {})
        for attempt in (0, 1):
            # Basic auth holds for every scope of a host; tokens are per scope.
            auth = self._auth.get(key) or self._auth.get((host, "*basic*"))
            if auth:
                sent["Authorization"] = auth
            if attempt and body is not None and not isinstance(body, bytes):
                body.seek(0)
            response = self._send(method, url, host, sent, body, sink)
            if response.status != 401 or attempt:
                break
            answer = self._answer(host, response.header("www-authenticate"), scopes)
            self._auth[(host, "*basic*") if answer.startswith("Basic ") else key] = answer
        if response.status not in expect:
            raise _error(method, url, response)
        return response

    def _answer(self, host: str, header: str, scopes: tuple[str, ...]) -> str:
        creds = credentials_for(self.credentials, host)
        challenge = parse_challenge(header)
        if challenge.scheme == "basic":
            if creds is None:
                raise Unauthorized(
                    f"registry {host} wants a username and password and none is configured "
                    "for it (docker config `auths`)",
                    status=401,
                )
            return creds.basic()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise Unauthorized(
                f"registry {host}: unsupported auth challenge {header!r}", status=401
            )
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        wanted = list(scopes) or [challenge.params.get("scope", "")]
        query += [("scope", s) for s in wanted if s]
        realm = challenge.params["realm"]
        token_url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        token_host = urllib.parse.urlsplit(realm).netloc
        auth = {"Authorization": creds.basic()} if creds else {}
        answer = self._send("GET", token_url, token_host, auth, None, None)
        if answer.status != 200:
            who = f"as {creds.username}" if creds else "anonymously"
            raise Unauthorized(
                f"registry {host}: token service {realm} refused {who} for "
                f"{' '.join(wanted)}: HTTP {answer.status} {answer.body[:200]!r}",
                status=answer.status,
            )
        try:
            doc = json.loads(answer.body)
            token = doc.get("token") or doc.get("access_token")
        except ValueError:
            token = None
        if not token:
            raise Unauthorized(f"registry {host}: token service {realm} sent no token", status=200)
        return f"Bearer {token}"

    def _send(
        self,
        method: str,
        url: str,
        host: str,
        headers: dict[str, str],
        body: Body,
        sink: IO[bytes] | None,
    ) -> Response:
        for _ in range(6):
            parts = urllib.parse.urlsplit(url)
            sent = dict(headers)
            sent.setdefault("User-Agent", USER_AGENT)
            if parts.netloc != host:
                sent.pop("Authorization", None)  # never hand registry credentials elsewhere
            if body is None and method in ("PUT", "POST", "PATCH"):
                sent.setdefault("Content-Length", "0")
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    parts.netloc, timeout=self.timeout, context=self.ssl_context
                )
            else:
                conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                conn.request(method, target or "/", body=body, headers=sent)
                raw = conn.getresponse()
                heads = {k.lower(): v for k, v in raw.getheaders()}
                if raw.status in _REDIRECTS and method in ("GET", "HEAD") and "location" in heads:
                    raw.read()
                    url = urllib.parse.urljoin(url, heads["location"])
                    continue
                if sink is not None and 200 <= raw.status < 300:
                    while chunk := raw.read(1 << 20):
                        sink.write(chunk)
                    data = b""
                else:
                    data = raw.read()
            except (OSError, http.client.HTTPException) as exc:
                raise RegistryUnreachable(f"{method} {shown(url)}: {exc}") from exc
            finally:
                conn.close()
            return Response(raw.status, heads, data, url)
        raise RegistryError(f"{method} {shown(url)}: too many redirects", status=0)


def shown(url: str) -> str:
    """A URL fit for messages (which reach logs, Environment status and termination
    messages): no query, fragment or userinfo, where a redirect to object storage carries
    its pre-signed credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _error(method: str, url: str, response: Response) -> OciError:
    code, message = "", response.body[:300].decode(errors="replace").strip()
    try:
        first = json.loads(response.body)["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    text = f"{method} {shown(url)}: HTTP {response.status}" + (f" {code}" if code else "")
    text += f": {message}" if message else ""
    cls = {401: Unauthorized, 403: Unauthorized, 404: NotFound}.get(response.status, RegistryError)
    return cls(text, status=response.status, code=code)
