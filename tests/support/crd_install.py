"""Installing and removing a CustomResourceDefinition in an integration test, waiting until
the API server (and this client's discovery) agrees."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml

from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import established
from support.waiting import wait_for

CRD_API = "apiextensions.k8s.io/v1"


def install_crd(kube: Kube, file: Path, name: str, group_version: str) -> None:
    """Apply the CRD in `file` and wait until it is Established and discovery serves it."""
    crd = yaml.safe_load(file.read_text())
    kube.apply(crd, field_manager="mlkube-tests")
    wait_for(lambda: established(kube, name), timeout=10, interval=0.05, what=f"{name} Established")
    kind = crd["spec"]["names"]["kind"]
    # Discovery serves it too (and this client's cache knows: a GET of an unknown kind raises).
    wait_for(
        lambda: kind in kube.served_kinds(group_version, max_age=0),
        timeout=10,
        interval=0.05,
        what=f"{kind} discovered",
    )


def remove_crd(kube: Kube, name: str) -> None:
    """Delete the CRD `name` (if there) and wait until it is gone."""
    with contextlib.suppress(ApiError):
        kube.delete(CRD_API, "CustomResourceDefinition", name)
    wait_for(
        lambda: kube.get(CRD_API, "CustomResourceDefinition", name) is None,
        timeout=20,
        interval=0.05,
        what=f"{name} removed",
    )
