"""A small generic Kubernetes client: server-side apply, get, list, delete, status patch.

It speaks plain dicts, so builders' manifests go out unchanged and any kind works, CRDs
included. Resource paths come from discovery, cached per group/version. Requests go through a
transport (k8s/transport.py): urllib3 for the operator (`Kube.light`), the official client's
ApiClient for the CLI (kubeconfig exec plugins, auth providers, in-cluster config).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import orjson

from mlkube.contract import FIELD_MANAGER
from mlkube.k8s import connection
from mlkube.k8s.errors import ApiError
from mlkube.k8s.transport import ClientTransport, PoolTransport, Transport

# How old the served kinds may be (a CRD installed or removed is seen within this); a kind
# looked up and not found is asked again after NEGATIVE_TTL (its CRD may be being installed).
DISCOVERY_TTL = 10.0
NEGATIVE_TTL = 1.0


class Kube:
    def __init__(
        self,
        kubeconfig: str | None = None,
        api_client: Any = None,
        context: str | None = None,
        pool_size: int | None = None,
        transport: Transport | None = None,
        default_namespace: str = "default",
    ) -> None:
        """The official client's kubeconfig or in-cluster login (or `api_client`, or a ready
        `transport`). `pool_size`: HTTP connections kept to the API server; at least the
        number of threads calling at once, or urllib3 opens and drops a connection per extra
        call."""
        self.default_namespace = default_namespace
        if transport is None:
            if api_client is None:
                api_client, self.default_namespace = _official_client(
                    kubeconfig, context, pool_size
                )
            transport = ClientTransport(api_client)
        self.transport = transport
        # api_version -> (when discovered, kind -> (plural, namespaced)); a whole entry is
        # replaced at once, so threads read it without a lock.
        self._resources: dict[str, tuple[float, dict[str, tuple[str, bool]]]] = {}

    @classmethod
    def light(cls, pool_size: int | None = None) -> Kube:
        """The operator's client: $KUBECONFIG (else the pod's service account, else
        ~/.kube/config) read and spoken to without the `kubernetes` package; a kubeconfig
        this cannot read (exec plugins, auth providers) falls back to the official client."""
        try:
            found = connection.find()
        except Exception:
            if sys.modules.get("kubernetes", "") is None:  # blocked (cli/operator_cmd.py)
                raise
            return cls(pool_size=pool_size)  # the official client reports it, as before
        if found is None:
            return cls(pool_size=pool_size)
        return cls(
            transport=PoolTransport(found, pool_size or 4), default_namespace=found.namespace
        )

    @property
    def api(self) -> Any:
        """The official client's ApiClient (CLI commands that stream or exec use it)."""
        if not isinstance(self.transport, ClientTransport):
            raise TypeError("this Kube speaks urllib3 directly; it has no ApiClient")
        return self.transport.api

    # -- discovery ---------------------------------------------------------------------
    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from discovery (refreshed on a miss, at most once
        per DISCOVERY_TTL: a kind the cluster does not serve costs no request per call)."""
        found = self._kinds(api_version).get(kind)
        if found is None and self._age(api_version) > NEGATIVE_TTL:
            found = self._kinds(api_version, refresh=True).get(kind)
        if found:
            return found
        raise ApiError(
            404,
            "KindNotServed",
            f"the API server serves no kind {kind} in {api_version} (is its CRD installed?)",
        )

    def _age(self, api_version: str) -> float:
        entry = self._resources.get(api_version)
        return time.monotonic() - entry[0] if entry else float("inf")

    def _kinds(self, api_version: str, refresh: bool = False) -> dict[str, tuple[str, bool]]:
        entry = self._resources.get(api_version)
        if entry is None or refresh:
            entry = (time.monotonic(), self._discover(api_version))
            self._resources[api_version] = entry
        return entry[1]

    def _discover(self, api_version: str) -> dict[str, tuple[str, bool]]:
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = self.request("GET", prefix)
        except ApiError as err:
            if err.status == 404:
                return {}
            raise
        return {
            r["kind"]: (r["name"], bool(r["namespaced"]))
            for r in doc.get("resources", [])
            if "/" not in r["name"]
        }

    def path(
        self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None
    ) -> str:
        plural, namespaced = self.resource(api_version, kind)
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        return f"{prefix}/{plural}" + (f"/{name}" if name else "")

    def served_kinds(self, api_version: str, max_age: float | None = None) -> set[str]:
        """Kinds served in `api_version`, at most `max_age` seconds old (default DISCOVERY_TTL):
        CRDs come and go while the operator runs, but asking on every reconcile pass costs a
        request per pass. A caller missing a kind asks again with a shorter `max_age`."""
        if max_age is None:
            max_age = DISCOVERY_TTL
        return set(self._kinds(api_version, refresh=self._age(api_version) >= max_age))

    # -- verbs -------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        raw = self.transport.call(method, path, query or [], headers, body)
        # orjson: decoding API answers was the operator's largest CPU cost after the watches
        return orjson.loads(raw) if raw else {}  # type: ignore[no-any-return]

    def apply(
        self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER, subresource: str = ""
    ) -> dict[str, Any]:
        """Server-side apply (force: the operator owns what it builds)."""
        meta = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", field_manager), ("force", "true")]
        return self.request(
            "PATCH",
            path + (f"/{subresource}" if subresource else ""),
            # JSON is YAML: the API server takes it as an apply patch, and json.dumps costs a
            # hundredth of yaml.safe_dump (~10 ms per endpoint pass of CPU otherwise).
            body=json.dumps(obj),
            content_type="application/apply-patch+yaml",
            query=query,
        )

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        meta = obj["metadata"]
        query = [("fieldManager", field_manager)] if field_manager else []
        return self.request(
            "POST",
            self.path(obj["apiVersion"], obj["kind"], meta.get("namespace")),
            body=obj,
            query=query,
        )

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        path = self.path(api_version, kind, namespace, name)  # a missing kind is an error
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        doc = self.request("GET", self.path(api_version, kind, namespace), query=query)
        items: list[dict[str, Any]] = doc.get("items", [])
        return items

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        path = self.path(api_version, kind, namespace, name)
        return self.request(
            "PATCH",
            path + (f"/{subresource}" if subresource else ""),
            query=[("fieldManager", field_manager)] if field_manager else None,
            body=patch,
            content_type="application/merge-patch+json",
        )

    def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int = 0) -> str:
        """A container's log as text (`pods/log`, served by the node's kubelet); the last
        `tail_lines` lines when set."""
        query = [("container", container)] + (
            [("tailLines", str(tail_lines))] if tail_lines else []
        )
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        return self.transport.call("GET", path, query, {"Accept": "*/*"}).decode(errors="replace")

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        """Delete; False if it was already gone. With `uid`, only that very object (409 when
        the name now holds another one)."""
        path = self.path(api_version, kind, namespace, name)  # a missing kind is an error
        body: dict[str, Any] = {"propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", path, body=body)
        except ApiError as err:
            if err.status == 404:
                return False
            raise
        return True


def _official_client(
    kubeconfig: str | None, context: str | None, pool_size: int | None
) -> tuple[Any, str]:
    """The official client's ApiClient from a kubeconfig or the pod's service account, and
    the namespace to default to."""
    from kubernetes import client, config

    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg)  # type: ignore[no-untyped-call]
        namespace = _context_namespace(path, context)
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        namespace = connection.read_text(connection.SA_DIR / "namespace") or "default"
    if pool_size:
        cfg.connection_pool_maxsize = max(pool_size, cfg.connection_pool_maxsize)
    return client.ApiClient(cfg), namespace


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the chosen (or current) kubeconfig context, else "default"."""
    chosen = kubeconfig_context(kubeconfig, context)
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def kubeconfig_context(kubeconfig: str | None, context: str | None) -> dict[str, Any] | None:
    """The chosen (or current) context as written in the kubeconfig ($KUBECONFIG's files
    merged), extensions included: the CLI reads its default artifact store from there."""
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
    return dict(chosen) if chosen else None
