"""`mlkube endpoint create|list|show|update|invoke|get-credentials|delete|rollout`.

Argument handling and I/O only: parsing, patches and rendering live in `endpoint_view`; the API
is the shared `mlkube.k8s.Kube` client. Traffic rules are checked by the API server's CEL rules,
whose messages are shown as they are.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mlkube.cli import endpoint_rollout, stores
from mlkube.cli import endpoint_view as view
from mlkube.cli.endpoint_api import KIND, api_error, connect, endpoint_keys, get_endpoint
from mlkube.cli.endpoint_invoke import PROTOCOLS, invoke_endpoint
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_view import as_list, dump, without_managed_fields
from mlkube.contract import API_VERSION, GROUP, HEADER_DEPLOYMENT
from mlkube.k8s import ApiError, Kube

FIELD_MANAGER: Final = "mlkube-cli"
UPDATE_ATTEMPTS: Final = 5  # conflicts from the operator's own status and annotation writes


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
    show.add_argument(
        "--watch", action="store_true",
        help="live view: print again on every rollout or split change until the rollout ends",
    )  # fmt: skip
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
    invoke.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="auto",
        help="route by protocol: v2 /v2/models/M/infer, v1 /v1/models/M:predict, seldon "
        "/api/v1.0/predictions, azureml /score (default auto: from the body's keys)",
    )
    invoke.add_argument("--path", help="request path (overrides --protocol)")
    invoke.add_argument("--key", help="API key (default: read from the endpoint's Secret)")
    invoke.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    invoke.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="retry this long while nothing listens at the URL yet (e.g. a background run-local)",
    )  # fmt: skip
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
    endpoint_rollout.add_commands(verbs)


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
    if args.output == "text" and args.watch:
        return endpoint_rollout.follow(args, view.render_details)
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
    for attempt in range(UPDATE_ATTEMPTS):
        # resourceVersion makes the patch fail instead of racing a concurrent change.
        meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
        try:
            kube.patch(API_VERSION, KIND, args.name, {"metadata": meta, "spec": patch_spec},
                       namespace)  # fmt: skip
            break
        except ApiError as err:
            # The operator's status and annotation writes move the resourceVersion too: only
            # a change of the spec the patch was computed from voids it.
            if err.status != 409 or attempt + 1 == UPDATE_ATTEMPTS:
                raise api_error(err, f"update OnlineEndpoint {namespace}/{args.name}") from err
            obj = get_endpoint(kube, namespace, args.name)
            if (obj.get("spec") or {}) != spec:
                raise api_error(err, f"update OnlineEndpoint {namespace}/{args.name}") from err
    for change in changes:
        print(f"onlineendpoint.{GROUP}/{args.name}: {change}")
    return 0


def get_credentials(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    keys = endpoint_keys(kube, namespace, obj)
    if not keys:
        raise CliError(f"OnlineEndpoint {namespace}/{args.name} uses auth mode none: no keys")
    for key in keys:
        print(key)
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
    """Rebuild the endpoint's data plane from its spec and verified Models, and run it here:
    artifacts downloaded and digest-checked, one model server per deployment, the router in
    front. Nothing is copied from live Deployments (anyone may label one)."""
    import signal
    import tempfile

    from mlkube.localrun.plan import PlanError
    from mlkube.localrun.runner import LocalEndpoint, LocalRunError
    from mlkube.localrun.source import plan_from_cluster

    kube, namespace = connect(args)
    get_endpoint(kube, namespace, args.name)  # not found / CRD missing: the usual messages
    try:
        plan = plan_from_cluster(kube, namespace, args.name)
    except ApiError as err:
        raise api_error(err, f"read OnlineEndpoint {namespace}/{args.name}") from err
    except PlanError as exc:
        raise CliError(f"cannot run {args.name} locally: {exc}") from exc
    # Artifacts in the context's default store (the dev cluster's MinIO) are read with its
    # credentials, by this process's storage initializers.
    uris = [s.artifact_uri for s in plan.servers]
    uris += [s.drift.baseline_uri for s in plan.servers if s.drift is not None]
    stores.use_credentials(stores.context_store(args.kubeconfig, args.context), uris)
    for server in plan.servers:
        if server.dropped_env:
            print(f"deployment {server.deployment}: env not passed to local processes "
                  f"(not on the allow-list): {', '.join(server.dropped_env)}",
                  file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f"mlkube-{args.name}-") as workdir:
        local = LocalEndpoint(plan, Path(workdir), router_port=args.port)
        try:
            local.start()
        except LocalRunError as exc:
            raise CliError(str(exc)) from exc
        deployments = ", ".join(s.deployment for s in plan.servers)
        print(f"endpoint {args.name} running locally at {local.url} (deployments: {deployments})")
        print(f"try: mlkube endpoint invoke {args.name} --url {local.url} --request-file FILE",
              flush=True)  # fmt: skip
        # The servers run in their own sessions: stop them on SIGTERM too, not only on Ctrl-C.
        signal.signal(signal.SIGTERM, _exit_once)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            # A second SIGTERM/Ctrl-C while stopping (a shell ending its jobs right after
            # `kill %1`) would abort stop() and leave the servers running: ignore them now.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            local.stop()
    return 0


def _exit_once(*_: object) -> None:
    """SIGTERM: leave the wait loop; a second SIGTERM/Ctrl-C (a shell ending its jobs right
    after `kill %1`) must not interrupt the stop that follows, so both are ignored first."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(0)
