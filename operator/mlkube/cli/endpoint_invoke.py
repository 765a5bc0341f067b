"""`mlkube endpoint invoke`: POST a request file to the route its payload speaks.

The model server answers several protocols on different paths; a V2 body posted to `/score`
is a 400. So the route follows the body (or `--protocol`), and the V1/V2 model name is the
one the target deployment's Model serves (`spec.modelName`). Pure helpers first, I/O last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final

from mlkube.cli.endpoint_api import api_error, connect, endpoint_keys, get_endpoint
from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION, HEADER_DEPLOYMENT
from mlkube.k8s import ApiError, Kube

PROTOCOLS: Final = ("auto", "v2", "v1", "seldon", "azureml")
_DNS_HINT: Final = (
    "cluster DNS names only resolve inside the cluster; from a workstation run "
    "`kubectl port-forward svc/NAME 8080:80` and pass --url http://127.0.0.1:8080"
)


def detect_protocol(payload: object) -> str:
    """Which protocol a JSON body speaks, from its top-level keys."""
    if not isinstance(payload, dict):
        raise CliError("cannot tell the protocol of a body that is not a JSON object: pass --path")
    inputs = payload.get("inputs")
    if (
        isinstance(inputs, list)
        and inputs
        and all(isinstance(i, dict) and "datatype" in i for i in inputs)
    ):
        return "v2"  # Open Inference Protocol: named, typed tensors
    if "instances" in payload or "inputs" in payload:
        return "v1"
    data = payload.get("data")
    if isinstance(data, dict) and ("ndarray" in data or "tensor" in data):
        return "seldon"
    if "data" in payload or "input_data" in payload:
        return "azureml"
    keys = ", ".join(sorted(payload)) or "none"
    raise CliError(
        f"cannot tell the protocol from the body's keys ({keys}): expected 'inputs' (V2), "
        "'instances' (V1), 'data' or 'input_data' (Azure ML); or pass --protocol/--path"
    )


def request_path(protocol: str, model_name: str | None) -> str:
    if protocol in ("v2", "v1"):
        if not model_name:
            raise CliError(f"a {protocol.upper()} request needs the model name: pass --path")
        quoted = urllib.parse.quote(model_name, safe="")
        return f"/v2/models/{quoted}/infer" if protocol == "v2" else f"/v1/models/{quoted}:predict"
    return "/api/v1.0/predictions" if protocol == "seldon" else "/score"


def target_models(spec: dict[str, Any], deployment: str | None) -> dict[str, str]:
    """Deployment name -> Model object name, for the deployments a request may reach:
    the one named by --deployment, else every deployment with live traffic."""
    deployments = {str(d.get("name")): str(d.get("model")) for d in spec.get("deployments") or []}
    if deployment is not None:
        if deployment not in deployments:
            known = ", ".join(sorted(deployments)) or "none"
            raise CliError(f"no deployment {deployment!r} in this endpoint (have: {known})")
        return {deployment: deployments[deployment]}
    live = {k for k, v in (spec.get("traffic") or {}).items() if int(v) > 0}
    return {d: m for d, m in deployments.items() if d in live} or deployments


def one_model_name(names: dict[str, str]) -> str:
    """The model name every reachable deployment serves (V1/V2 paths carry it)."""
    distinct = sorted(set(names.values()))
    if len(distinct) != 1:
        pairs = ", ".join(f"{d}={n}" for d, n in sorted(names.items()))
        raise CliError(f"the live deployments serve different models ({pairs}): pass --deployment")
    return distinct[0]


def read_request(path: str) -> bytes:
    file = Path(path)
    if file.is_dir():
        raise CliError(f"request file {path!r} is a directory: pass a JSON file")
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise CliError(f"request file {path!r} does not exist") from None
    except OSError as exc:
        raise CliError(f"cannot read request file {path!r}: {exc.strerror}") from exc


def choose_protocol(args: argparse.Namespace, body: bytes) -> str:
    if args.protocol != "auto":
        return str(args.protocol)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise CliError(
            f"{args.request_file} is not JSON ({exc}): pass --protocol azureml for a "
            "scoring script's raw body, or --path"
        ) from exc
    return detect_protocol(payload)


# -- I/O ---------------------------------------------------------------------------------
def open_when_listening(request: urllib.request.Request, timeout: float, wait: float) -> Any:
    """urlopen, retried for up to `wait` seconds while nothing listens yet (a `run-local` or
    `port-forward` started a moment ago in the background); other errors are not retried."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.URLError as err:
            refused = isinstance(err.reason, ConnectionRefusedError)
            if not refused or time.monotonic() >= deadline:
                raise
        time.sleep(0.5)


def model_name_of(kube: Kube, namespace: str, model: str) -> str:
    """spec.modelName of a Model object (what the server's V1/V2 routes are named after)."""
    try:
        obj = kube.get(API_VERSION, "Model", model, namespace)
    except ApiError as err:
        raise api_error(err, f"get Model {namespace}/{model}") from err
    if obj is None:
        raise CliError(f"Model {namespace}/{model} (used by the endpoint) not found")
    return str((obj.get("spec") or {}).get("modelName") or model)


def invoke_endpoint(args: argparse.Namespace) -> int:
    body = read_request(args.request_file)
    protocol = None if args.path else choose_protocol(args, body)  # a bad body fails before I/O
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    base = args.url or (obj.get("status") or {}).get("url")
    if not base:
        raise CliError(f"OnlineEndpoint {namespace}/{args.name} has no URL yet; pass --url")
    if protocol is None:
        path = str(args.path)
    else:
        model_name = None
        if protocol in ("v1", "v2"):
            targets = target_models(obj.get("spec") or {}, args.deployment)
            names = {d: model_name_of(kube, namespace, m) for d, m in targets.items()}
            model_name = one_model_name(names)
        path = request_path(protocol, model_name)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if args.deployment:
        headers[HEADER_DEPLOYMENT] = args.deployment
    key = args.key or next(iter(endpoint_keys(kube, namespace, obj)), None)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    target = base.rstrip("/") + "/" + path.lstrip("/")
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with open_when_listening(request, args.timeout, args.wait) as response:
            sys.stdout.write(response.read().decode(errors="replace").rstrip("\n") + "\n")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace").strip()
        raise CliError(f"{target} answered {err.code}: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        hint = f" ({_DNS_HINT})" if ".svc." in target else ""
        raise CliError(f"cannot reach {target}: {reason}{hint}") from err
    return 0
