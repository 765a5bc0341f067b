"""`mlkube serve --model PATH [--port P]`: run a model locally for debugging, the way Azure ML
local endpoints do but without Docker. The server is data-plane code, imported only here."""

from __future__ import annotations

import argparse
import logging
import os

from mlkube.cli.errors import CliError


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("serve", help="serve a local model file or folder on 127.0.0.1")
    p.add_argument("--model", required=True, help="model file (.pkl, .joblib, .onnx) or folder")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--name", help="model name in URLs (default: from the path)")
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    if not os.path.exists(args.model):
        raise CliError(f"model path {args.model!r} does not exist")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from mlkube_serving.server import run_local

    print(f"serving {args.model} on http://127.0.0.1:{args.port} (V2, KServe V1, Seldon)")
    run_local(args.model, args.port, workers=args.workers, name=args.name)
    return 0
