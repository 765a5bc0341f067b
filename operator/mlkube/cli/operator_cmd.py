"""`mlkube operator`: run the operator (what the Helm chart's Deployment runs)."""

from __future__ import annotations

import argparse
import os
import sys

from mlkube.k8s import connection


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("operator", help="run the mlkube operator")
    p.add_argument("--kubeconfig", help="kubeconfig to use (default: in-cluster service account)")
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        dest="namespaces",
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    p.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL (fails after a long time without API contact)",
    )
    p.add_argument("--standalone", action="store_true", help="no peering (one replica, or tests)")
    p.add_argument(
        "--leader-election",
        action="store_true",
        help="several replicas: all serve webhooks, the holder of a Lease in the operator's "
        "namespace reconciles (MLKUBE_LEASE_* settings; docs/install.md)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    skip_official_client()
    # Imported here so other CLI commands never pay for Kopf's import.
    from mlkube.handlers.main import run as run_operator

    return run_operator(
        namespaces=args.namespaces,
        liveness=args.liveness or None,
        standalone=args.standalone,
        leader_election=args.leader_election,
    )


def skip_official_client() -> None:
    """Keep the `kubernetes` package out of the operator process when its login does not need
    it: Kopf imports the package whenever it is installed (to recognise its model objects,
    which mlkube never passes), and its 260 modules cost ~9 MiB of RSS. A kubeconfig with an
    exec plugin or auth provider keeps it (Kube.light falls back to the official client)."""
    if "kubernetes" in sys.modules:
        return
    try:
        found = connection.find()
    except Exception:  # unreadable: the client reports it where the operator makes one
        return
    if found is not None:
        sys.modules["kubernetes"] = None  # type: ignore[assignment]  # import raises ImportError
