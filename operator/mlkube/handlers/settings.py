"""Operator-wide Kopf settings (DESIGN.md §5.9) and login.

Timeouts are explicit so a silently dead watch is noticed; progress and diff-base are kept in
`mlkube.dev/` annotations (never in spec) so GitOps tools never see the operator touch their fields.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from mlkube.contract import GROUP


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.watching.connect_timeout = 5
    settings.networking.request_timeout = 10
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.execution.max_workers = int(os.environ.get("MLKUBE_MAX_WORKERS", "8"))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """An explicit kubeconfig when one is given, else the pod's service account."""
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.probe(id="watching")
def watching(**_: Any) -> bool:
    """Reported on the liveness endpoint: the operator's event loop is serving handlers."""
    return True
