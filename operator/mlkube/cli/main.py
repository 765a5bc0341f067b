"""`mlkube <group> <verb>`: a small dispatcher; each command group lives in its own module.

A group module exposes `add_commands(subparsers)` and sets `func` on its verb parsers; adding a
group is one entry in `GROUPS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from mlkube.cli import operator_cmd
from mlkube.cli.errors import describe
from mlkube.storage import StorageError


def _groups() -> tuple[ModuleType, ...]:
    # Imported on use: the user-facing groups pull in every API model, view and builder
    # (~800 modules, ~13 MiB RSS) that `mlkube operator` never needs (docs/benchmarks/
    # operator-scale.md, "Memory").
    from mlkube.cli import batch, dev, endpoint, env, events, model, pipeline, serve

    return (model, env, endpoint, batch, pipeline, events, serve, dev, operator_cmd)


def build_parser(*, operator_only: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlkube", description="Model management for any Kubernetes cluster."
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="<group>")
    for group in (operator_cmd,) if operator_only else _groups():
        group.add_commands(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["model", "profile"]:
        # The profiler is data-plane code (numpy, pandas): imported only when asked for, and it
        # parses its own arguments.
        from mlkube_serving.drift.cli import profile_main

        return profile_main(argv[2:])
    # The operator process (the chart's `mlkube operator`) parses only its own group.
    args = build_parser(operator_only=argv[:1] == ["operator"]).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = describe(exc)
        if message is None:
            raise  # a bug: the traceback is what a maintainer needs
        print(f"error: {message}", file=sys.stderr)
        return 1
