"""`mlkube events listen|sinks|types`: see the operator's CloudEvents (docs/notifications.md).

`listen` runs a local receiver and registers it as an EventSink for as long as it runs;
`sinks` shows the delivery record the operator keeps in each sink's status; `types` prints the
event catalogue. Argument handling here; the receiver, the sink and the rendering live in
events_receiver, events_sink and events_view.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from mlkube.cli import events_view as view
from mlkube.cli.endpoint_api import connect
from mlkube.cli.errors import CliError
from mlkube.cli.events_sink import check_types, get_sink, list_sinks
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_view import dump, without_managed_fields
from mlkube.events.catalogue import CATALOGUE


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("events", help="listen to the operator's CloudEvents, see sinks")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="<verb>")

    listen = verbs.add_parser(
        "listen",
        help="receive events here: a local CloudEvents receiver registered as an EventSink",
    )
    listen.add_argument(
        "--types", nargs="+", action="extend", default=[], metavar="PATTERN",
        help="mlkube event types to receive (also with --format azureml): a type or a prefix "
        "ending in * (default: all; see `mlkube events types`)",
    )  # fmt: skip
    listen.add_argument("--port", type=int, default=0, help="local port (default 0: any free)")
    listen.add_argument(
        "--mode", choices=("binary", "structured"), default="binary",
        help="CloudEvents HTTP content mode the operator uses (default binary)",
    )  # fmt: skip
    listen.add_argument(
        "--format", choices=("cloudevents", "azureml"), default="cloudevents",
        help="cloudevents, or azureml: Azure Event Grid's Machine Learning events",
    )  # fmt: skip
    listen.add_argument("--json", action="store_true", help="print each whole event as JSON")
    listen.add_argument(
        "--count", type=int, help="exit after this many events (redeliveries not counted)"
    )
    listen.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds")
    listen.set_defaults(func=listen_events)

    sinks = verbs.add_parser("sinks", help="event sinks and their delivery state")
    sinks.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    sinks.add_argument("name", nargs="?", help="the EventSink (for show)")
    sinks.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    sinks.set_defaults(func=show_sinks)

    types = verbs.add_parser("types", help="the event types mlkube emits (the catalogue)")
    types.set_defaults(func=list_types)

    for verb in (listen, sinks):
        add_kube_options(verb)


def listen_events(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CliError("--count must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds")
    if not 0 <= args.port <= 65535:
        raise CliError("--port must be between 0 and 65535")
    types = check_types(args.types)
    from mlkube.cli.events_listen import Listener, Options

    kube, namespace = connect(args)
    options = Options(namespace, types, args.port, args.mode, args.format, args.json,
                      args.count, args.timeout)  # fmt: skip
    return Listener(kube, options).run()


def show_sinks(args: argparse.Namespace) -> int:
    if args.action == "show" and not args.name:
        raise CliError("sinks show needs the EventSink's name")
    if args.action == "list" and args.name:
        raise CliError(f"unexpected {args.name!r}: did you mean `events sinks show {args.name}`?")
    kube, namespace = connect(args)
    now = datetime.now(UTC)
    if args.action == "show":
        obj = get_sink(kube, namespace, args.name)
        text = view.render_sink(obj, now) if args.output == "text" else None
        print(text or dump(without_managed_fields(obj), args.output))
        return 0
    items = list_sinks(kube, namespace)
    if args.output == "text":
        print(view.render_sinks(items, now))
    else:
        print(dump({"apiVersion": "v1", "kind": "List",
                    "items": [without_managed_fields(o) for o in items]}, args.output))  # fmt: skip
    return 0


def list_types(args: argparse.Namespace) -> int:
    sys.stdout.write(view.render_catalogue(CATALOGUE) + "\n")
    return 0
