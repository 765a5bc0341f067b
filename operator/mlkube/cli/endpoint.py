"""`mlkube endpoint create|list|show|update|invoke|get-credentials|delete`.

Argument handling and I/O only: parsing, patches and rendering live in `endpoint_view`; the API
is the shared `mlkube.k8s.Kube` client. Traffic rules are checked by the API server's CEL rules,
whose messages are shown as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.names import keys_secret_name
from mlkube.cli import endpoint_view as view
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_view import as_list, dump, without_managed_fields
from mlkube.contract import API_VERSION, GROUP, HEADER_DEPLOYMENT
from mlkube.k8s import ApiError, Kube

KIND: Final = "OnlineEndpoint"
FIELD_MANAGER: Final = "mlkube-cli"
_DNS_HINT: Final = (
    "cluster DNS names only resolve inside the cluster; from a workstation run "
    "`kubectl port-forward svc/NAME 8080:80` and pass --url http://127.0.0.1:8080"
)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("endpoint", help="create, roll out, invoke and delete endpoints")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="<verb>")

    create = verbs.add_parser("create", help="create OnlineEndpoints from a YAML file")
    create.add_argument("-f", "--file", required=True, help="YAML file ('-' for stdin)")
    create.add_argument("--wait", action="store_true", help="wait until every endpoint is Ready")
    create.add_argument("--timeout", type=float, default=300.0, help="seconds for --wait")
    create.set_defaults(func=create_endpoints)

    list_cmd = verbs.add_parser("list", help="list endpoints")
    list_cmd.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    list_cmd.set_defaults(func=list_endpoints)

    show = verbs.add_parser("show", help="show an endpoint: URL, traffic, deployments")
    show.add_argument("name")
    show.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    show.set_defaults(func=show_endpoint)

    update = verbs.add_parser("update", help="change the traffic split or mirroring")
    update.add_argument("name")
    update.add_argument("--traffic", help="live split, e.g. blue=70,green=30 (sums to 100)")
    update.add_argument("--mirror", help="mirrored share, e.g. green=10 ('none' to stop)")
    update.set_defaults(func=update_endpoint)

    invoke = verbs.add_parser("invoke", help="POST a request to the endpoint")
    invoke.add_argument("name")
    invoke.add_argument("--request-file", required=True, help="request body (JSON) file")
    invoke.add_argument("--deployment", help=f"target one deployment ({HEADER_DEPLOYMENT})")
    invoke.add_argument("--url", help="endpoint base URL (default: status.url)")
    invoke.add_argument("--path", default="/score", help="request path (default /score)")
    invoke.add_argument("--key", help="API key (default: read from the endpoint's Secret)")
    invoke.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    invoke.set_defaults(func=invoke_endpoint)

    creds = verbs.add_parser("get-credentials", help="print the endpoint's API keys")
    creds.add_argument("name")
    creds.set_defaults(func=get_credentials)

    delete = verbs.add_parser("delete", help="delete an endpoint and everything it runs")
    delete.add_argument("name")
    delete.set_defaults(func=delete_endpoint)

    run_local = verbs.add_parser(
        "run-local", help="run the endpoint's router and model servers as local processes"
    )
    run_local.add_argument("name")
    run_local.add_argument("--port", type=int, default=8080, help="local router port")
    run_local.set_defaults(func=run_local_endpoint)

    for verb in (create, list_cmd, show, update, invoke, creds, delete, run_local):
        add_kube_options(verb)


def connect(args: argparse.Namespace) -> tuple[Kube, str]:
    """The shared API client (honouring --kubeconfig/--context) and the namespace to use."""
    try:
        kube = Kube(args.kubeconfig, context=args.context)
    except Exception as exc:  # the client raises ConfigException and OSError variants
        raise CliError(f"cannot load Kubernetes configuration: {exc}") from exc
    return kube, args.namespace or kube.default_namespace


def api_error(err: ApiError, action: str) -> CliError:
    if err.status == 404 and err.reason == "KindNotServed":
        return CliError(
            f"cannot {action}: the OnlineEndpoint CRD (onlineendpoints.{GROUP}) is not installed"
        )
    return CliError(f"cannot {action}: {err}")


def get_endpoint(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        obj = kube.get(API_VERSION, KIND, name, namespace)
    except ApiError as err:
        raise api_error(err, f"get OnlineEndpoint {namespace}/{name}") from err
    if obj is None:
        raise CliError(f"OnlineEndpoint {namespace}/{name} not found")
    return obj


def create_endpoints(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else _read_text(args.file)
    kube, namespace = connect(args)
    docs = view.read_manifests(text, namespace)
    for doc in docs:
        meta = doc["metadata"]
        try:
            kube.create(doc)
        except ApiError as err:
            action = f"create OnlineEndpoint {meta['namespace']}/{meta['name']}"
            raise api_error(err, action) from err
        print(f"onlineendpoint.{GROUP}/{meta['name']} created in namespace {meta['namespace']}")
    if args.wait:
        for doc in docs:
            wait_ready(kube, doc["metadata"]["namespace"], doc["metadata"]["name"], args.timeout)
    return 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def wait_ready(kube: Kube, namespace: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        obj = get_endpoint(kube, namespace, name)
        status = obj.get("status") or {}
        ready = view.ready_condition(obj)
        current = status.get("observedGeneration") == obj["metadata"].get("generation")
        if current and ready.get("status") == "True":
            print(f"onlineendpoint.{GROUP}/{name} is Ready at {status.get('url') or '-'}")
            return
        if time.monotonic() > deadline:
            raise CliError(
                f"OnlineEndpoint {namespace}/{name} not Ready after {timeout:.0f}s: "
                f"{status.get('message') or 'no status yet (is the operator running?)'}"
            )
        time.sleep(1.0)


def list_endpoints(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    try:
        items = kube.list(API_VERSION, KIND, namespace)
    except ApiError as err:
        raise api_error(err, f"list OnlineEndpoints in {namespace}") from err
    if args.output == "table":
        print(view.render_table(items, datetime.now(UTC)))
    else:
        print(dump(as_list([without_managed_fields(o) for o in items]), args.output))
    return 0


def show_endpoint(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    if args.output == "text":
        print(view.render_details(obj, datetime.now(UTC)))
    else:
        print(dump(without_managed_fields(obj), args.output))
    return 0


def update_endpoint(args: argparse.Namespace) -> int:
    if args.traffic is None and args.mirror is None:
        raise CliError("nothing to change: pass --traffic and/or --mirror")
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    spec = obj.get("spec") or {}
    patch_spec: dict[str, Any] = {}
    changes = []
    for flag, key, raw in (
        ("--traffic", "traffic", args.traffic),
        ("--mirror", "mirror", args.mirror),
    ):
        if raw is None:
            continue
        current, desired = spec.get(key) or {}, view.parse_split(raw, flag)
        patch_spec[key] = view.split_patch(current, desired)
        changes.append(f"{key} {view.format_split(current)} \u2192 {view.format_split(desired)}")
    # resourceVersion makes the patch fail instead of racing a concurrent change.
    body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": patch_spec}
    try:
        kube.patch(API_VERSION, KIND, args.name, body, namespace)
    except ApiError as err:
        raise api_error(err, f"update OnlineEndpoint {namespace}/{args.name}") from err
    for change in changes:
        print(f"onlineendpoint.{GROUP}/{args.name}: {change}")
    return 0


def endpoint_keys(kube: Kube, namespace: str, obj: dict[str, Any]) -> list[str]:
    name = obj["metadata"]["name"]
    if ((obj.get("spec") or {}).get("auth") or {}).get("mode", "none") != "key":
        return []
    try:
        secret = kube.get("v1", "Secret", keys_secret_name(name), namespace)
    except ApiError as err:
        raise api_error(err, f"read the keys of OnlineEndpoint {namespace}/{name}") from err
    keys = read_keys(secret)
    if not keys:
        raise CliError(
            f"OnlineEndpoint {namespace}/{name} has no keys yet (the operator creates them)"
        )
    return keys


def get_credentials(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    keys = endpoint_keys(kube, namespace, obj)
    if not keys:
        raise CliError(f"OnlineEndpoint {namespace}/{args.name} uses auth mode none: no keys")
    for key in keys:
        print(key)
    return 0


def invoke_endpoint(args: argparse.Namespace) -> int:
    body = Path(args.request_file).read_bytes() if os.path.exists(args.request_file) else None
    if body is None:
        raise CliError(f"request file {args.request_file!r} does not exist")
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    base = args.url or (obj.get("status") or {}).get("url")
    if not base:
        raise CliError(f"OnlineEndpoint {namespace}/{args.name} has no URL yet; pass --url")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if args.deployment:
        headers[HEADER_DEPLOYMENT] = args.deployment
    key = args.key or next(iter(endpoint_keys(kube, namespace, obj)), None)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    target = base.rstrip("/") + "/" + args.path.lstrip("/")
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            sys.stdout.write(response.read().decode(errors="replace").rstrip("\n") + "\n")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace").strip()
        raise CliError(f"{target} answered {err.code}: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        hint = f" ({_DNS_HINT})" if ".svc." in target else ""
        raise CliError(f"cannot reach {target}: {reason}{hint}") from err
    return 0


def delete_endpoint(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    try:
        deleted = kube.delete(API_VERSION, KIND, args.name, namespace)
    except ApiError as err:
        raise api_error(err, f"delete OnlineEndpoint {namespace}/{args.name}") from err
    if not deleted:
        raise CliError(f"OnlineEndpoint {namespace}/{args.name} not found")
    print(f"onlineendpoint.{GROUP}/{args.name} deleted (its deployments and router go with it)")
    return 0


def run_local_endpoint(args: argparse.Namespace) -> int:
    """Read the endpoint's live children and run them here: artifacts downloaded and verified by
    the storage initializer, one model server per deployment, the router in front."""
    import signal
    import tempfile
    import time

    from mlkube.contract import LABEL_ENDPOINT
    from mlkube.localrun.plan import PlanError, plan_local
    from mlkube.localrun.runner import LocalEndpoint, LocalRunError

    kube, namespace = connect(args)
    get_endpoint(kube, namespace, args.name)
    selector = f"{LABEL_ENDPOINT}={args.name}"
    children = [
        {"apiVersion": api_version, "kind": kind, **obj}
        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "ConfigMap"), ("v1", "Secret"))
        for obj in kube.list(api_version, kind, namespace, selector)
    ]
    try:
        plan = plan_local(children)
    except PlanError as exc:
        raise CliError(f"cannot run {args.name} locally: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix=f"mlkube-{args.name}-") as workdir:
        local = LocalEndpoint(plan, Path(workdir), router_port=args.port)
        try:
            local.start()
        except LocalRunError as exc:
            raise CliError(str(exc)) from exc
        deployments = ", ".join(s.deployment for s in plan.servers)
        print(f"endpoint {args.name} running locally at {local.url} (deployments: {deployments})")
        print(f"try: mlkube endpoint invoke {args.name} --url {local.url} --request-file FILE")
        # The servers run in their own sessions: stop them on SIGTERM too, not only on Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            local.stop()
    return 0
