"""A cluster's default artifact store: where `mlkube model register` copies a local model when
no `--store` is given, as Azure ML copies a registered model into the workspace's storage.

It lives in the kubeconfig context, as the extension `mlkube.dev/artifact-store` (kubectl and
the client libraries ignore extensions): switching context switches store, and the store's
credentials sit where the cluster's own credentials already do (a 0600 file). `mlkube dev up`
writes it for the dev cluster's MinIO; for another cluster add it once
(docs/artifact-storage.md). Pure: building and parsing only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.contract import ENV_S3_ENDPOINT_URL

EXTENSION: Final = "mlkube.dev/artifact-store"
# Extension key -> the S3 client environment variable it feeds (the CLI's uploads and
# run-local's storage initializers read the store with these).
_ENV_KEYS: Final = {
    "endpointUrl": ENV_S3_ENDPOINT_URL,
    "accessKeyId": "AWS_ACCESS_KEY_ID",
    "secretAccessKey": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_DEFAULT_REGION",
}


class DefaultStoreError(ValueError):
    """The kubeconfig names a default store that cannot be used."""


@dataclass(frozen=True)
class DefaultStore:
    uri: str  # store prefix, e.g. s3://mlkube-dev
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None

    def client_env(self) -> dict[str, str]:
        """Environment for S3 clients of this store (only what is set)."""
        values = self._fields()
        return {env: values[key] for key, env in _ENV_KEYS.items() if values.get(key)}

    def holds(self, uri: str) -> bool:
        """Whether `uri` lies in this store: its credentials apply to it."""
        prefix = self.uri.rstrip("/")
        return uri == prefix or uri.startswith(prefix + "/")

    def _fields(self) -> dict[str, str]:
        pairs = (
            ("endpointUrl", self.endpoint_url),
            ("accessKeyId", self.access_key_id),
            ("secretAccessKey", self.secret_access_key),
            ("region", self.region),
        )
        return {key: value for key, value in pairs if value}


def build_extension(store: DefaultStore) -> dict[str, Any]:
    """The named extension for a kubeconfig context's `extensions` list."""
    return {"name": EXTENSION, "extension": {"uri": store.uri, **store._fields()}}


def with_extension(kubeconfig: Mapping[str, Any], store: DefaultStore) -> dict[str, Any]:
    """The kubeconfig with the store set on its current context (replacing an older one)."""
    current = kubeconfig.get("current-context")
    contexts = []
    for named in kubeconfig.get("contexts") or []:
        if named.get("name") == current:
            context = dict(named.get("context") or {})
            others = [e for e in context.get("extensions") or [] if e.get("name") != EXTENSION]
            context["extensions"] = [*others, build_extension(store)]
            named = {**named, "context": context}
        contexts.append(named)
    return {**kubeconfig, "contexts": contexts}


def find_default_store(context: Mapping[str, Any] | None) -> DefaultStore | None:
    """The store a kubeconfig context (`{"name": ..., "context": {...}}`) names, if any."""
    for named in ((context or {}).get("context") or {}).get("extensions") or []:
        if isinstance(named, Mapping) and named.get("name") == EXTENSION:
            return parse_extension(named.get("extension"))
    return None


def parse_extension(value: object) -> DefaultStore:
    if not isinstance(value, Mapping) or not isinstance(value.get("uri"), str):
        raise DefaultStoreError(f"kubeconfig extension {EXTENSION} needs a string 'uri'")
    uri = value["uri"].rstrip("/")
    if "://" not in uri:
        raise DefaultStoreError(f"{EXTENSION} uri {uri!r} must be a store URI, e.g. s3://bucket")
    fields = {}
    for key in _ENV_KEYS:
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise DefaultStoreError(f"{EXTENSION} {key} must be a string")
        fields[key] = item
    return DefaultStore(
        uri=uri,
        endpoint_url=fields["endpointUrl"],
        access_key_id=fields["accessKeyId"],
        secret_access_key=fields["secretAccessKey"],
        region=fields["region"],
    )
