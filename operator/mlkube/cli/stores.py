"""Which store `mlkube model register` copies a local model into, and the credentials of the
kubeconfig context's default store (mlkube.storage.default_store) for the commands that read
from it (`model register`, `endpoint run-local`).

Order: --store, then $MLKUBE_STORE, then the context's default store. A local path is never
registered where it lies unless --in-place asks for it: moving or editing the file would break
the Model, and no pod can read a path on this machine.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from typing import Final

from mlkube.cli.errors import CliError
from mlkube.contract import ENV_STORE
from mlkube.storage.default_store import DefaultStore, DefaultStoreError, find_default_store

NO_STORE: Final = (
    "no artifact store to copy {path!r} into: pass --store (e.g. s3://bucket/models) or set "
    f"${ENV_STORE}, use a cluster with a default store (`make dev` sets one; "
    "docs/artifact-storage.md), or pass --in-place to register it where it lies (only this "
    "machine can read it, and moving or editing it breaks the Model)"
)


def context_store(kubeconfig: str | None, context: str | None) -> DefaultStore | None:
    """The default store of the chosen kubeconfig context, if it names one."""
    from mlkube.k8s import kubeconfig_context

    try:
        chosen = kubeconfig_context(kubeconfig, context)
    except Exception:  # no usable kubeconfig: the API call that follows says so clearly
        return None
    try:
        return find_default_store(chosen)
    except DefaultStoreError as exc:
        raise CliError(str(exc)) from exc


def use_credentials(store: DefaultStore | None, uris: Iterable[str]) -> None:
    """Give this process (and the processes it starts) the store's S3 settings when one of
    `uris` lies in it; other stores keep the caller's own environment."""
    if store is not None and any(store.holds(uri) for uri in uris):
        os.environ.update(store.client_env())


def choose_store(args: argparse.Namespace, local_path: str | None) -> str | None:
    """The store prefix `register` uploads to; None: register in place (only --in-place, or
    nothing local to upload). `local_path`: the first local file to upload, if any."""
    if args.in_place:
        if args.store:
            raise CliError("--in-place and --store exclude each other")
        return None
    default = context_store(args.kubeconfig, args.context)
    chosen = args.store or os.environ.get(ENV_STORE) or (default.uri if default else None)
    if chosen is None and local_path is not None:
        raise CliError(NO_STORE.format(path=local_path))
    if chosen is not None:
        use_credentials(default, [chosen])
    return chosen
