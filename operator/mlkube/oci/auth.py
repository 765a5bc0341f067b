"""Registry credentials and auth challenges.

Credentials come from a docker config JSON (`~/.docker/config.json`, or the
`kubernetes.io/dockerconfigjson` Secret mounted into the build pod): `auths` keyed by registry
host (or an `https://host/...` URL), each with `auth` (base64 `user:password`) or
`username`/`password`. A registry answers 401 with a `WWW-Authenticate` challenge: `Basic`
(send the credentials on every request) or `Bearer realm=…,service=…,scope=…` (trade the
credentials, or nothing for anonymous pulls, for a token at the realm).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlkube.oci.errors import OciError
from mlkube.oci.reference import DOCKER_HUB, DOCKER_HUB_API

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB, DOCKER_HUB_API)
_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r})"


def _host_of(key: str) -> str:
    if "://" in key:
        return urlsplit(key).netloc
    return key.split("/", 1)[0]


def parse_docker_config(data: bytes | str) -> dict[str, Credentials]:
    """Credentials by registry host from a docker config JSON (Docker Hub under docker.io)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise OciError(f"docker config is not JSON: {exc}") from exc
    auths = doc.get("auths", {}) if isinstance(doc, dict) else {}
    if not isinstance(auths, dict):
        raise OciError("docker config: `auths` is not an object")
    found: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode()
            except ValueError as exc:
                raise OciError(f"docker config: `auth` of {key} is not base64: {exc}") from exc
            user, _, password = decoded.partition(":")
        if not user:
            continue  # identity tokens (OAuth refresh) are not supported
        host = _host_of(key)
        found[DOCKER_HUB if key in _HUB_KEYS or host in _HUB_KEYS else host] = Credentials(
            str(user), str(password or "")
        )
    return found


def load_docker_config(path: str | os.PathLike[str] | None = None) -> dict[str, Credentials]:
    """Credentials from `path`, else $DOCKER_CONFIG/config.json or ~/.docker/config.json;
    no file means no credentials (anonymous)."""
    if path is None:
        base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
        path = Path(base) / "config.json"
    file = Path(path)
    if file.is_dir():  # a mounted Secret directory
        file = file / ".dockerconfigjson"
    if not file.exists():
        return {}
    return parse_docker_config(file.read_bytes())


def credentials_for(creds: dict[str, Credentials], registry: str) -> Credentials | None:
    if registry in (DOCKER_HUB_API, "index.docker.io"):
        registry = DOCKER_HUB
    return creds.get(registry)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: basic | bearer
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """The first challenge of a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)
