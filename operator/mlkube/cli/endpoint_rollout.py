"""`mlkube endpoint rollout status|promote|abort|retry NAME`.

Requests are the `mlkube.dev/rollout-request` annotation (docs/rollouts.md §5): metadata, not
spec, so GitOps tools leave it alone and the generation does not move; the operator acts once per
id and only for the revision it names. Argument handling and I/O only: the checks, the request
and the view are in `endpoint_rollout_view`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from mlkube.api.rollout_status import RolloutAction
from mlkube.cli import endpoint_rollout_view as view
from mlkube.cli.endpoint_api import KIND, api_error, connect, get_endpoint
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.contract import API_VERSION, GROUP
from mlkube.k8s import ApiError

WRITE_ATTEMPTS = 5  # conflicts from the operator's own status writes

HELP = {
    "promote": "continue a paused rollout (or skip the current step)",
    "abort": "roll back: the candidate's traffic goes to 0 at once",
    "retry": "start an aborted rollout again from step 1",
}


def add_commands(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = verbs.add_parser("rollout", help="follow and steer a progressive rollout")
    actions = group.add_subparsers(dest="rollout_verb", required=True, metavar="<action>")

    status = actions.add_parser("status", help="phase, step, traffic and metric verdicts")
    status.add_argument("name")
    status.add_argument(
        "--watch", action="store_true",
        help="print again on every change until the rollout ends (exit 1 if it aborts)",
    )  # fmt: skip
    status.add_argument("--interval", type=float, default=2.0, help="seconds between reads")
    status.add_argument("--timeout", type=float, default=0.0, help="stop watching after this")
    status.set_defaults(func=rollout_status)
    parsers = [status]
    for verb, text in HELP.items():
        parser = actions.add_parser(verb, help=text)
        parser.add_argument("name")
        if verb == "promote":
            parser.add_argument(
                "--full", action="store_true",
                help="skip the remaining steps: spec.traffic now (also after an abort)",
            )  # fmt: skip
        parser.add_argument(
            "--wait", action="store_true", help="wait until the operator has handled it"
        )
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds for --wait")
        parser.set_defaults(func=rollout_request, rollout_action=verb)
        parsers.append(parser)
    for parser in parsers:
        add_kube_options(parser)


def rollout_request(args: argparse.Namespace, sleep: Callable[[float], None] = time.sleep) -> int:
    full = getattr(args, "full", False)
    action = cast(RolloutAction, "promote-full" if full else args.rollout_action)
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    request = view.build_request(obj, action, str(uuid.uuid4()))
    pending = view.pending_request(obj)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            kube.patch(API_VERSION, KIND, args.name, view.request_patch(obj, request), namespace)
            break
        except ApiError as err:
            if err.status != 409:
                raise api_error(err, f"annotate OnlineEndpoint {namespace}/{args.name}") from err
        # The operator writes status often (measurements, conditions): each write moves the
        # resourceVersion. Only a change of the rollout itself voids the request.
        obj = get_endpoint(kube, namespace, args.name)
        again = view.build_request(obj, action, request.id)
        if again.revision != request.revision or attempt + 1 == WRITE_ATTEMPTS:
            raise CliError(
                f"OnlineEndpoint {namespace}/{args.name} changed while the request was written"
                f" (rollout revision {again.revision[:19]}); run the command again"
            )
        pending = view.pending_request(obj)
        sleep(0.05 * (attempt + 1))
    if pending:
        print(f"replaced the unhandled {pending} request")
    print(
        f"onlineendpoint.{GROUP}/{args.name}: rollout {action} requested (request {request.id},"
        f" revision {request.revision[:19]}); follow it with"
        f" `mlkube endpoint rollout status {args.name} --watch`",
        flush=True,
    )
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while (
        outcome := view.request_outcome(get_endpoint(kube, namespace, args.name), request)
    ) is None:
        if time.monotonic() > deadline:
            raise CliError(
                f"request {request.id} not handled after {args.timeout:.0f}s (is the operator"
                " running?); it stays in place and runs when the operator gets to it"
            )
        sleep(1.0)
    print(f"onlineendpoint.{GROUP}/{args.name}: {outcome}")
    return 0


def rollout_status(
    args: argparse.Namespace,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    return follow(args, view.render_status, sleep, clock)


def follow(
    args: argparse.Namespace,
    render: Callable[[dict[str, Any], datetime], str],
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Print the endpoint with `render`; with --watch again on every change of its rollout
    or split until the rollout ends (exit 1 if it aborted). `rollout status` and
    `endpoint show` share it."""
    kube, namespace = connect(args)
    obj = get_endpoint(kube, namespace, args.name)
    print(render(obj, clock()), flush=True)
    seen = view.watch_key(obj)
    if not args.watch:
        return 0
    interval, timeout = getattr(args, "interval", 2.0), getattr(args, "timeout", 0.0)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    while not view.is_finished(obj):
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"rollout of {namespace}/{args.name} still running after the timeout")
        (sleep or time.sleep)(interval)
        obj = get_endpoint(kube, namespace, args.name)
        # Ages and countdowns change on every read: print when the state itself changed.
        if view.watch_key(obj) != seen:
            now = clock()
            print(f"--- {now:%H:%M:%S}\n{render(obj, now)}", flush=True)
            seen = view.watch_key(obj)
    return 1 if (obj.get("status") or {}).get("rollout", {}).get("phase") == "Aborted" else 0
