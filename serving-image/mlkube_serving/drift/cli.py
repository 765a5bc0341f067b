"""`mlkube model profile`: build a drift baseline profile from a training data file.

The `mlkube` CLI (operator package, which must not import numpy at import time) imports this
module lazily and calls `profile_main(argv)` with the arguments after `model profile`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from mlkube_serving.drift.columns import read_frame
from mlkube_serving.drift.errors import DriftError
from mlkube_serving.drift.profile import (
    DEFAULT_BOOTSTRAP_WINDOWS,
    DEFAULT_PERCENTILE,
    build_profile,
    profile_to_bytes,
    write_profile,
)

DEFAULT_WINDOW_SIZE = 1000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlkube model profile",
        description="Build a drift baseline profile (JSON, formatVersion 1) from training data.",
    )
    p.add_argument("--data", required=True, help="training data: .csv, .parquet or .jsonl")
    p.add_argument("--model", help="model name recorded in the profile")
    p.add_argument("--out", help="output file (default: stdout)")
    p.add_argument("--window-size", type=int, default=DEFAULT_WINDOW_SIZE)
    p.add_argument("--prediction-column", help="column holding the model's predictions")
    p.add_argument(
        "--categorical", action="append", default=[], help="force a column categorical (repeat)"
    )
    p.add_argument("--exclude", action="append", default=[], help="drop a column (repeat)")
    p.add_argument("--importance", help="JSON file mapping feature name -> importance")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap-windows", type=int, default=DEFAULT_BOOTSTRAP_WINDOWS)
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    return p


def profile_main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 on bad input)."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        frame = read_frame(args.data)
        if args.exclude:
            frame = frame.drop(columns=args.exclude)
        importance = None
        if args.importance:
            importance = {
                str(k): float(v)
                for k, v in orjson.loads(Path(args.importance).read_bytes()).items()
            }
        profile = build_profile(
            frame,
            window_size=args.window_size,
            prediction_column=args.prediction_column,
            categorical=[c for arg in args.categorical for c in arg.split(",") if c],
            top_k=args.top_k,
            seed=args.seed,
            model=args.model,
            importance=importance,
            bootstrap_windows=args.bootstrap_windows,
            percentile=args.percentile,
        )
    except (DriftError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_profile(profile, args.out)
    else:
        sys.stdout.buffer.write(profile_to_bytes(profile))
        sys.stdout.flush()
    print(
        f"profiled {profile['rows']} rows, {len(profile['features'])} features "
        f"(window {profile['windowSize']}) in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(profile_main())
