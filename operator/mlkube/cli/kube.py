"""The CLI's only Kubernetes access: Model objects via the official client's CustomObjectsApi.

Kept to one small class so it can move into the shared `mlkube.k8s` module later; the
`kubernetes` package is imported when a command connects, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Final, cast

from mlkube.cli.errors import CliError
from mlkube.contract import GROUP, VERSION

PLURAL: Final = "models"
# Shows in managedFields who wrote what (the operator uses its own manager name).
FIELD_MANAGER: Final = "mlkube-cli"
_SA_NAMESPACE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def add_kube_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current context)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's namespace)")


class ModelApi:
    """get/list/create/label Model objects in one namespace-aware client."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config

        # The client is only partly typed; treat its config loaders as untyped.
        config: Any = kube_config
        configuration = client.Configuration()
        in_cluster = not (kubeconfig or os.environ.get("KUBECONFIG")) and (
            os.environ.get("KUBERNETES_SERVICE_HOST") is not None
            and not os.path.exists(os.path.expanduser("~/.kube/config"))
        )
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                self.default_namespace = _read_file(_SA_NAMESPACE) or "default"
            else:
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
                self.default_namespace = _context_namespace(config, kubeconfig, context)
        except (config.ConfigException, OSError) as exc:
            raise CliError(f"cannot load Kubernetes configuration: {exc}") from exc
        self._api = client.CustomObjectsApi(client.ApiClient(configuration))
        self._exception = client.ApiException

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self._api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except self._exception as exc:
            if _is_missing_object(exc):
                return None
            raise _api_error(exc, f"get Model {namespace}/{name}") from exc
        return cast(dict[str, Any], found)

    def list(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        try:
            found = self._api.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, label_selector=label_selector
            )
        except self._exception as exc:
            raise _api_error(exc, f"list Models in {namespace}") from exc
        return cast(list[dict[str, Any]], cast(dict[str, Any], found).get("items", []))

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            created = self._api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, field_manager=FIELD_MANAGER
            )
        except self._exception as exc:
            raise _api_error(exc, f"create Model {namespace}/{body['metadata']['name']}") from exc
        return cast(dict[str, Any], created)

    def set_labels(self, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Merge-patch labels (a dict body makes the client send merge-patch+json)."""
        try:
            patched = self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": {"labels": labels}},
                field_manager=FIELD_MANAGER,
            )
        except self._exception as exc:
            raise _api_error(exc, f"label Model {namespace}/{name}") from exc
        return cast(dict[str, Any], patched)


def _context_namespace(config: Any, kubeconfig: str | None, context: str | None) -> str:
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _status_body(exc: Any) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _is_missing_object(exc: Any) -> bool:
    # A missing object answers a Status with details; a missing CRD answers a bare 404 page.
    body = _status_body(exc)
    return exc.status == 404 and body.get("reason") == "NotFound" and "details" in body


def _api_error(exc: Any, action: str) -> CliError:
    body = _status_body(exc)
    if exc.status == 404 and not body.get("details"):
        return CliError(
            f"cannot {action}: the Model CRD ({PLURAL}.{GROUP}/{VERSION}) is not installed "
            "on this cluster (install the mlkube chart or apply crds/)"
        )
    reason = str(body.get("reason") or exc.reason or "Error")
    message = str(body.get("message") or "")
    return CliError(f"cannot {action}: {exc.status} {reason}" + (f": {message}" if message else ""))
