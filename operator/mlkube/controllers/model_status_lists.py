"""One guarded read-modify-write of a list in a Model's status (`deployedBy`, `environments`).

Several endpoints write the same Model: each write carries the resourceVersion it was computed
from, so a concurrent writer makes it conflict (then the Model is read again and the change
recomputed) instead of being lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from mlkube.contract import API_VERSION, KIND_MODEL
from mlkube.controllers.errors import EndpointSyncError
from mlkube.controllers.kube import ApiError, Kube

CONFLICT_RETRIES: Final = 5

Change = Callable[[list[Any]], list[Any] | None]  # current list -> new list, None: unchanged


def update_model_status_list(
    kube: Kube,
    namespace: str,
    name: str,
    field: str,
    change: Change,
    model: dict[str, Any] | None = None,
) -> None:
    """Set `status.<field>` of Model `name` to `change(current)`; `model`: an already read copy
    (saves the first GET). A Model that is gone needs nothing."""
    for _ in range(CONFLICT_RETRIES):
        if model is None:
            model = kube.get(API_VERSION, KIND_MODEL, name, namespace)
            if model is None:
                return
        new = change((model.get("status") or {}).get(field) or [])
        if new is None:
            return
        body = {
            "metadata": {"resourceVersion": model["metadata"]["resourceVersion"]},
            "status": {field: new},
        }
        try:
            kube.patch(API_VERSION, KIND_MODEL, name, body, namespace, subresource="status")
            return
        except ApiError as err:
            if err.status == 404:
                return
            if err.status != 409:
                raise
        model = None
    raise EndpointSyncError(f"Model {namespace}/{name}: {field} kept conflicting; will retry")
