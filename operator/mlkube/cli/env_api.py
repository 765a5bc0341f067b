"""The env verbs' API access: Environment objects found by `name:version` or object name, and
the build Job's pods whose logs `env build-logs` reads (through the API server, never the
registry or the node).

API errors become one-line CliErrors through the batch verbs' `api_error` (a missing CRD says
what to install; the API server's CEL messages are shown as they are).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.environment import version_key
from mlkube.cli.batch_api import LABEL_JOB_NAME, api_error
from mlkube.cli.batch_api import create as create  # re-exported for the verbs
from mlkube.cli.env_object import DNS_LABEL, KIND, VERSION_PATTERN, is_curated, parse_ref, reference
from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION, LABEL_ARCHIVED
from mlkube.k8s import ApiError, Kube

FIELD_MANAGER: Final = "mlkube-cli"
# Older Job controllers label pods `job-name` only.
LEGACY_JOB_NAME: Final = "job-name"


def list_environments(kube: Kube, namespace: str | None) -> list[dict[str, Any]]:
    where = f"in {namespace}" if namespace else "in all namespaces"
    try:
        return kube.list(API_VERSION, KIND, namespace)
    except ApiError as err:
        raise api_error(err, f"list Environments {where}", KIND) from err


def find_environment(kube: Kube, namespace: str, ref: str) -> dict[str, Any] | None:
    """The Environment `name:version` or `name@latest` (by its spec: objects created from YAML
    may have any object name; of two claiming it, the older wins, as in the operator) or by
    object name."""
    if ":" not in ref and not ref.endswith("@latest"):
        try:
            return kube.get(API_VERSION, KIND, ref, namespace)
        except ApiError as err:
            raise api_error(err, f"get Environment {namespace}/{ref}", KIND) from err
    name, version = parse_ref(ref)
    items = list_environments(kube, namespace)
    if version is None:  # name@latest: the highest version, as the operator resolves it
        versions = [str((o.get("spec") or {}).get("version", "")) for o in items
                    if (o.get("spec") or {}).get("environmentName") == name]  # fmt: skip
        if not versions:
            return None
        version = max(versions, key=version_key)
    matches = [o for o in items if reference(o) == f"{name}:{version}"]
    matches.sort(key=lambda o: (o["metadata"].get("creationTimestamp") or "",
                                o["metadata"]["name"]))  # fmt: skip
    return matches[0] if matches else None


def get_environment(kube: Kube, namespace: str, ref: str) -> dict[str, Any]:
    obj = find_environment(kube, namespace, ref)
    if obj is None:
        raise CliError(f"Environment {ref} not found in namespace {namespace} "
                       "(see `mlkube env list --all`)")  # fmt: skip
    return obj


def environment_base(kube: Kube, namespace: str, base: str) -> str | None:
    """The image digest to build on when `--base` names one of the namespace's Environments
    (`name:version`, Ready); None when it names a curated environment or an image."""
    name, sep, version = base.partition(":")
    if is_curated(base) or not sep or "/" in base or "@" in base:
        return None
    if not (DNS_LABEL.match(name) and VERSION_PATTERN.match(version)):
        return None
    found = find_environment(kube, namespace, base)
    if found is None:
        return None  # an image such as python:3.11
    refuse_archived(found, "--base")
    status = found.get("status") or {}
    if status.get("phase") != "Ready" or not status.get("image"):
        phase = status.get("phase") or "Pending"
        raise CliError(f"--base {base} is an Environment that is not Ready (phase {phase}): "
                       "wait for it, then build on it")  # fmt: skip
    return str(status["image"])


def refuse_archived(obj: Mapping[str, Any], what: str) -> None:
    """Archived environments take no new users (the webhook refuses new references too)."""
    if (obj["metadata"].get("labels") or {}).get(LABEL_ARCHIVED) == "true":
        raise CliError(f"{what} {reference(obj)} is archived: it takes no new users (see "
                       "`mlkube env list` for current versions)")  # fmt: skip


def archive(kube: Kube, obj: Mapping[str, Any]) -> None:
    meta = obj["metadata"]
    try:
        kube.patch(API_VERSION, KIND, meta["name"], {"metadata": {"labels": {LABEL_ARCHIVED:
                   "true"}}}, meta["namespace"], field_manager=FIELD_MANAGER)  # fmt: skip
    except ApiError as err:
        raise api_error(err, f"label Environment {meta['namespace']}/{meta['name']}", KIND) from err


def build_job(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the build Job from `status.build.job` ("ns/name")."""
    job = str(((obj.get("status") or {}).get("build") or {}).get("job") or "")
    namespace, sep, name = job.partition("/")
    return (namespace, name) if sep and namespace and name else None


def build_pods(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    """The Job's pods, newest last (a retried build has two)."""
    pods: list[dict[str, Any]] = []
    for label in (LABEL_JOB_NAME, LEGACY_JOB_NAME):
        try:
            pods = kube.list("v1", "Pod", namespace, f"{label}={job}")
        except ApiError as err:
            if err.status == 403:
                raise CliError(
                    f"cannot list the pods of build Job {namespace}/{job}: you may not read "
                    f"pods in the build namespace {namespace} (ask an operator admin for `get "
                    "pods, pods/log` there, or run the `logs` command from `mlkube env show`)"
                ) from err
            raise api_error(err, f"list the pods of build Job {namespace}/{job}", "Pod") from err
        if pods:
            break
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
