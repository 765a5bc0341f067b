"""The batch verbs' API access: BatchEndpoints, BatchJobs and the score pods, with API errors
turned into one-line CliErrors (the API server's schema and CEL messages shown as they are)."""

from __future__ import annotations

from typing import Any, Final

from mlkube.cli.errors import CliError
from mlkube.contract import (
    API_VERSION,
    GROUP,
    KIND_BATCH_ENDPOINT,
    KIND_BATCH_JOB,
    LABEL_BATCH_JOB,
    LABEL_BATCH_STEP,
)
from mlkube.k8s import ApiError, Kube

# Set by the Job controller on the pods of an Indexed Job (Kubernetes ≥ 1.28).
LABEL_COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
LABEL_JOB_NAME: Final = "batch.kubernetes.io/job-name"
SCORER: Final = "scorer"


def api_error(err: ApiError, action: str, kind: str = KIND_BATCH_JOB) -> CliError:
    if err.status == 404 and err.reason == "KindNotServed":
        return CliError(
            f"cannot {action}: the {kind} CRD ({kind.lower()}s.{GROUP}) is not installed "
            "(install the mlkube chart or apply crds/)"
        )
    if err.status == 409 and err.reason == "AlreadyExists":
        return CliError(f"cannot {action}: it already exists (pick another name)")
    return CliError(f"cannot {action}: {err}")


def get_object(
    kube: Kube, kind: str, namespace: str, name: str, hint: str | None = None
) -> dict[str, Any]:
    """The object, or a CliError saying it is missing and where to look (`hint`; the batch
    verbs' by default; the pipeline verbs pass theirs)."""
    try:
        obj = kube.get(API_VERSION, kind, name, namespace)
    except ApiError as err:
        raise api_error(err, f"get {kind} {namespace}/{name}", kind) from err
    if obj is None:
        if hint is None:
            hint = "see `mlkube batch jobs list`" if kind == KIND_BATCH_JOB else ""
        raise CliError(f"{kind} {namespace}/{name} not found" + (f" ({hint})" if hint else ""))
    return obj


def get_job(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return get_object(kube, KIND_BATCH_JOB, namespace, name)


def get_endpoint(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return get_object(kube, KIND_BATCH_ENDPOINT, namespace, name)


def find_endpoint(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The endpoint if it still exists (a job outlives its endpoint)."""
    try:
        return kube.get(API_VERSION, KIND_BATCH_ENDPOINT, name, namespace)
    except ApiError:
        return None


def create(kube: Kube, body: dict[str, Any], field_manager: str) -> dict[str, Any]:
    meta = body["metadata"]
    name = meta.get("name") or f"{meta.get('generateName')}*"
    try:
        return kube.create(body, field_manager=field_manager)
    except ApiError as err:
        action = f"create {body['kind']} {meta.get('namespace')}/{name}"
        raise api_error(err, action, body["kind"]) from err


def list_jobs(kube: Kube, namespace: str | None) -> list[dict[str, Any]]:
    where = f"in {namespace}" if namespace else "in all namespaces"
    try:
        return kube.list(API_VERSION, KIND_BATCH_JOB, namespace)
    except ApiError as err:
        raise api_error(err, f"list BatchJobs {where}") from err


def patch_job(
    kube: Kube, namespace: str, name: str, patch: dict[str, Any], field_manager: str
) -> None:
    try:
        kube.patch(API_VERSION, KIND_BATCH_JOB, name, patch, namespace, field_manager=field_manager)
    except ApiError as err:
        raise api_error(err, f"change BatchJob {namespace}/{name}") from err


def score_pods(kube: Kube, namespace: str, job: str, step: str) -> list[dict[str, Any]]:
    selector = f"{LABEL_BATCH_JOB}={job},{LABEL_BATCH_STEP}={step}"
    try:
        return kube.list("v1", "Pod", namespace, selector)
    except ApiError as err:
        raise api_error(err, f"list the {step} pods of BatchJob {namespace}/{job}", "Pod") from err


def pod_logs(kube: Kube, namespace: str, pod: str, container: str = SCORER) -> str:
    """The container's log through the API server (the kubelet serves it)."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    method, url, headers, body, _ = kube.api.param_serialize(
        "GET",
        path,
        query_params=[("container", container)],
        header_params={"Accept": "application/json, */*"},
        auth_settings=["BearerToken"],
    )
    try:
        resp = kube.api.call_api(method, url, header_params=headers, body=body, _request_timeout=30)
        raw: bytes = resp.read()  # type: ignore[no-untyped-call]
    except Exception as exc:  # the client's ApiException (only mlkube.k8s imports it), urllib3
        body_text = getattr(exc, "body", None)
        message = _status_message(body_text) if body_text else str(exc)
        raise CliError(f"cannot read the log of pod {namespace}/{pod}: {message}") from exc
    if not 200 <= resp.status < 300:
        message = _status_message(raw) or str(resp.reason)
        raise CliError(f"cannot read the log of pod {namespace}/{pod}: {message}")
    return raw.decode(errors="replace")


def _status_message(body: Any) -> str:
    import json

    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        return str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        return text.strip()
