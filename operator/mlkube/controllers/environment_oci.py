"""The controller's `Registry` port over `mlkube.oci` (docs/environments.md §2.2).

Tags resolve with a manifest HEAD (no layer is read); a reusable build is found by its tag
and its config labels (`mlkube.envbuild.reuse`: the key must match, the labels give the
packages, Python, serving contract and packaged model). The client's errors become
`RegistryError`: a registry that cannot answer now may answer later (the controller retries
with backoff), an invalid reference never will (`permanent`).
"""

from __future__ import annotations

from typing import Any

from mlkube.controllers.environment_ports import RegistryError
from mlkube.envbuild.reuse import find_build
from mlkube.oci.client import Client
from mlkube.oci.errors import InvalidReference, OciError
from mlkube.oci.reference import parse


class OciRegistry:
    def __init__(self, client: Client) -> None:
        self.client = client

    def digest(self, reference: str) -> str | None:
        try:
            found = self.client.head_manifest(parse(reference))
        except InvalidReference as err:
            raise RegistryError(str(err), permanent=True) from err
        except OciError as err:
            raise RegistryError(str(err)) from err
        return found.digest if found is not None else None

    def existing_build(self, repository: str, key: str) -> dict[str, Any] | None:
        try:
            found = find_build(self.client, repository, key)
        except (OciError, ValueError) as err:
            raise RegistryError(f"cannot look for build {key} in {repository}: {err}") from err
        if found is None:
            return None
        return {
            "image": found.image, "imageDigest": found.digest, "sizeBytes": found.size_bytes,
            "packages": found.packages, "python": found.python or None,
            "serving": found.serving or None, "packagedModel": found.packaged_model,
        }  # fmt: skip
