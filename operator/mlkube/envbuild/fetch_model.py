"""The build pod's `fetch-model` init step (packaging, docs/environments.md §5).

    python -m mlkube.envbuild.fetch_model --uri URI --digest sha256:… --name MODEL
        --layer /layer --work /work

Downloads the Model's artifact into `<layer>/opt/mlkube/model` with the storage initializer's
code (mlkube.storage: same schemes, same digest), refuses bytes whose digest differs from the
registered one, and writes `<work>/model.json` for the push step. Unlike install/push this
runs in the tools image (mlkube installed), not copied alone: it needs fsspec and friends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from mlkube.envbuild.contract import (
    MODEL_DIR,
    MODEL_REPORT_FILE,
    TERMINATION_LOG,
    write_termination,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlkube.envbuild.fetch_model")
    parser.add_argument("--uri", required=True)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--name", default="", help="the Model object (recorded)")
    parser.add_argument("--layer", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument(
        "--termination-log", default=os.environ.get("MLKUBE_TERMINATION_LOG", TERMINATION_LOG)
    )
    args = parser.parse_args(argv)
    from mlkube.storage import StorageError, download_and_verify
    from mlkube.storage.digest import check_digest

    dest = os.path.join(args.layer, MODEL_DIR.lstrip("/"))
    try:
        check_digest(args.digest)
        os.makedirs(dest, exist_ok=True)
        facts = download_and_verify(args.uri, dest, args.digest)
    except (StorageError, OSError, ValueError) as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        message = json.dumps({"error": f"{exc}{cause}"[-3000:], "reason": "ModelFetchFailed"})
        print(f"error: ModelFetchFailed: {exc}{cause}", file=sys.stderr, flush=True)
        write_termination(args.termination_log, message)
        return 1
    record = {
        "name": args.name,
        "uri": args.uri,
        "digest": facts.digest,
        "size": facts.size,
        "fileCount": facts.file_count,
        "path": MODEL_DIR,
    }
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, MODEL_REPORT_FILE), "w") as handle:
        json.dump(record, handle)
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
