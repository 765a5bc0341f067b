"""`python -m mlkube_serving storage-initializer`: fetch a model artifact and verify its digest.

Runs as the init container of every serving pod (download into the shared model volume, and the
drift baseline into the sidecar's) and as the Model verification Job (no `--dest`: only compute
the digest). A download needs `--digest`: an artifact whose digest differs from the registered
one is removed and the command fails, and one without a registered digest is never fetched, so a
pod never serves or judges against bytes nobody registered. On success the facts are printed as
one JSON line and, inside Kubernetes, written to the termination log where the operator can read
them from the pod status; on failure the error line is, so the endpoint can show why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from mlkube.contract import ENV_ARTIFACT_DIGEST, ENV_ARTIFACT_URI
from mlkube.storage import (
    ArtifactFacts,
    DigestMismatch,
    DigestRequired,
    StorageError,
    compute_digest,
    download_and_verify,
)
from mlkube.storage.digest import check_digest

TERMINATION_LOG = "/dev/termination-log"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_MISMATCH = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlkube_serving storage-initializer",
        description="Download an artifact URI into a directory and verify its sha256 digest.",
    )
    parser.add_argument(
        "--uri",
        default=os.environ.get(ENV_ARTIFACT_URI),
        help=f"artifact URI: s3, gs, http(s), pvc or file (env {ENV_ARTIFACT_URI})",
    )
    parser.add_argument(
        "--dest", default=None, help="directory to download into; omit to only compute the digest"
    )
    parser.add_argument(
        "--digest",
        default=os.environ.get(ENV_ARTIFACT_DIGEST) or None,
        help=f"expected digest sha256:<hex> (env {ENV_ARTIFACT_DIGEST})",
    )
    parser.add_argument(
        "--termination-log",
        # MLKUBE_TERMINATION_LOG: the dev pod executor's file for this container.
        default=os.environ.get("MLKUBE_TERMINATION_LOG") or TERMINATION_LOG,
        help="file to write the facts to when it exists (Kubernetes termination message)",
    )
    return parser


def fetch(uri: str, dest: str | None, digest: str | None) -> ArtifactFacts:
    """Download and verify, or only compute the digest (and compare) when `dest` is None."""
    if digest is not None:
        check_digest(digest)  # fail on a malformed digest before transferring anything
    if dest is not None and digest is None:
        raise DigestRequired(f"refusing to download {uri} without --digest to verify it against")
    if dest is not None:
        os.makedirs(dest, exist_ok=True)
        return download_and_verify(uri, dest, digest)
    facts = compute_digest(uri)
    if digest is not None and facts.digest != digest:
        raise DigestMismatch(uri, digest, facts.digest)
    return facts


def _terminate_with(line: str, termination_log: str) -> None:
    if os.path.exists(termination_log):
        try:
            with open(termination_log, "w") as handle:
                handle.write(line)
        except OSError:
            pass  # best effort: the line is on stdout/stderr as well


def report(uri: str, facts: ArtifactFacts, termination_log: str) -> None:
    line = json.dumps(
        {"uri": uri, "digest": facts.digest, "size": facts.size, "fileCount": facts.file_count}
    )
    print(line)
    _terminate_with(line, termination_log)


def fail(message: str, code: int, termination_log: str) -> int:
    """Print the error and make it the termination message: the operator shows it on the
    endpoint (and the verification Job's Model) without anyone reading pod logs."""
    line = f"error: {message}"
    print(line, file=sys.stderr)
    _terminate_with(line, termination_log)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = args.termination_log
    if not args.uri:
        return fail(f"--uri (or {ENV_ARTIFACT_URI}) is required", EXIT_USAGE, log)
    try:
        facts = fetch(args.uri, args.dest, args.digest)
    except DigestMismatch as exc:
        return fail(str(exc), EXIT_MISMATCH, log)
    except StorageError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return fail(f"{exc}{cause}", EXIT_ERROR, log)
    except OSError as exc:
        where = f"write to {args.dest}" if args.dest else f"read {args.uri}"
        return fail(f"cannot {where}: {exc}", EXIT_ERROR, log)
    report(args.uri, facts, log)
    return 0
