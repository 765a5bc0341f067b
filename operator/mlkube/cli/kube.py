"""The model CLI's Kubernetes access: Model objects through the shared `mlkube.k8s.Kube`,
with API errors turned into messages that say what to do. `mlkube.k8s` (and the kubernetes
package) is imported when a command connects, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Final, TypeVar

from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION, GROUP, KIND_MODEL, PLURAL_MODELS, VERSION

T = TypeVar("T")
KIND: Final = KIND_MODEL

PLURAL: Final = PLURAL_MODELS
# Shows in managedFields who wrote what (the operator uses its own manager name).
FIELD_MANAGER: Final = "mlkube-cli"


def add_kube_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current context)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's namespace)")


class ModelApi:
    """get/list/create/label Model objects, over the shared `mlkube.k8s.Kube` client."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from mlkube.k8s import Kube

        try:
            self._kube = Kube(kubeconfig, context=context)
        except Exception as exc:  # the client raises ConfigException and OSError variants
            raise CliError(f"cannot load Kubernetes configuration: {exc}") from exc
        self.default_namespace = self._kube.default_namespace
        self.kube = self._kube  # for verbs that reach other kinds (the model's Environment)

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        from mlkube.k8s import ApiError

        try:
            return fn()
        except ApiError as exc:
            raise _api_error(exc, action) from exc

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            f"get Model {namespace}/{name}",
            lambda: self._kube.get(API_VERSION, KIND, name, namespace),
        )

    def get_related(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """Another object a Model points at (its PipelineRun, the run's spec snapshot)."""
        from mlkube.k8s import ApiError

        try:
            return self._kube.get(api_version, kind, name, namespace)
        except ApiError as exc:
            if exc.status == 404 and exc.reason != "NotFound":
                raise CliError(f"cannot get {kind} {namespace}/{name}: the cluster does not "
                               f"serve {kind} ({api_version})") from exc  # fmt: skip
            raise CliError(f"cannot get {kind} {namespace}/{name}: {exc}") from exc

    def list_all_namespaces(self) -> list[dict[str, Any]]:
        """Every Model the caller may see cluster-wide (`--overwrite` checks who uses bytes)."""
        return self._call(
            "list Models in all namespaces (needed to check that no Model uses the bytes "
            "--overwrite would replace)",
            lambda: self._kube.list(API_VERSION, KIND, None),
        )

    def list(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        return self._call(
            f"list Models in {namespace}",
            lambda: self._kube.list(API_VERSION, KIND, namespace, label_selector or None),
        )

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        return self._call(
            f"create Model {namespace}/{body['metadata']['name']}",
            lambda: self._kube.create(body, field_manager=FIELD_MANAGER),
        )

    def set_labels(self, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return self._call(
            f"label Model {namespace}/{name}",
            lambda: self._kube.patch(
                API_VERSION,
                KIND,
                name,
                {"metadata": {"labels": labels}},
                namespace,
                field_manager=FIELD_MANAGER,
            ),
        )


def _api_error(exc: Any, action: str) -> CliError:
    if exc.status == 404 and exc.reason != "NotFound":
        return CliError(
            f"cannot {action}: the Model CRD ({PLURAL}.{GROUP}/{VERSION}) is not installed "
            "on this cluster (install the mlkube chart or apply crds/)"
        )
    return CliError(f"cannot {action}: {exc}")
