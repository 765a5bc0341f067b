"""Image references (`[registry/]repository[:tag][@digest]`) as docker and containerd read them.

A first component with a dot, a colon or `localhost` is a registry; otherwise the image is on
Docker Hub (`docker.io`, reached at `registry-1.docker.io`) and one-component names live under
`library/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlkube.oci.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPO = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise InvalidReference(f"not a sha256 digest: {digest!r}")
    return digest


@dataclass(frozen=True)
class Reference:
    registry: str  # as written (docker.io for Docker Hub)
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host:port to send HTTP requests to."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def ref(self) -> str:
        """What to ask the manifests endpoint for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, check_digest(digest))

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(text: str) -> Reference:
    """Parse an image reference; a missing tag and digest means `latest`."""
    rest, digest = text.strip(), None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        check_digest(digest)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag {tag!r} in image reference {text!r}")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, rest
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or not _REPO.match(repository):
        raise InvalidReference(f"invalid repository {repository!r} in image reference {text!r}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)
