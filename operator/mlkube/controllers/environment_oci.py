"""The controller's `Registry` port over `mlkube.oci` (docs/environments.md §2.2).

Tags resolve with a manifest HEAD (no layer is read); a reused build's package list comes
from its config blob's labels. The client's errors become `RegistryError`: a registry that
cannot answer now may answer later (the controller retries with backoff), an invalid
reference never will (`permanent`).
"""

from __future__ import annotations

import json

from mlkube.controllers.environment_ports import RegistryError
from mlkube.oci.client import Client
from mlkube.oci.errors import InvalidReference, NotFound, OciError
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

    def labels(self, reference: str) -> dict[str, str]:
        try:
            ref = parse(reference)
            image = self.client.get_image(ref)
            config = json.loads(self.client.get_blob(ref, image.config.digest))
        except NotFound:
            return {}
        except (OciError, ValueError) as err:
            raise RegistryError(f"cannot read the config of {reference}: {err}") from err
        labels = (config.get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()}
