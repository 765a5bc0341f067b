"""Small reads from a batch job's output folder (work list, progress files), for `jobs logs`
and `run-local`: through `mlkube.storage.locations` (same schemes and S3 settings as the pods),
with the kubeconfig context's default-store credentials when the output lies in it, and
bounded (these files are a few KiB; anything larger is not ours)."""

from __future__ import annotations

import argparse
import posixpath
from typing import Final

from mlkube.cli import stores
from mlkube.cli.errors import CliError
from mlkube.storage.bounded import TooLarge, read_stream_bounded
from mlkube.storage.locations import open_filesystem, resolve

MAX_SMALL_FILE: Final = 1024 * 1024


def use_store_credentials(args: argparse.Namespace, uris: list[str]) -> None:
    stores.use_credentials(stores.context_store(args.kubeconfig, args.context), uris)


def read_output_file(args: argparse.Namespace, folder: str, relpath: str) -> bytes:
    use_store_credentials(args, [folder])
    return read_small(folder, relpath)


def read_small(folder: str, relpath: str) -> bytes:
    uri = f"{folder.rstrip('/')}/{relpath}"
    location = resolve(folder)
    try:
        fs = open_filesystem(location)
        with fs.open(posixpath.join(location.path, relpath), "rb") as handle:
            return read_stream_bounded(handle, MAX_SMALL_FILE, uri)
    except FileNotFoundError as exc:
        raise CliError(f"{uri} does not exist") from exc
    except (OSError, TooLarge) as exc:
        raise CliError(f"cannot read {uri}: {exc}") from exc


def list_small(folder: str, relpath: str) -> list[bytes]:
    """Every file directly under `relpath` of `folder` (missing folder: none)."""
    location = resolve(folder)
    fs = open_filesystem(location)
    base = posixpath.join(location.path, relpath)
    try:
        names = sorted(str(p) for p in fs.ls(base, detail=False))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            with fs.open(name, "rb") as handle:
                found.append(read_stream_bounded(handle, MAX_SMALL_FILE, name))
        except (OSError, TooLarge):
            continue  # being replaced right now, or not ours: the next poll reads it
    return found
