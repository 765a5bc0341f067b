"""gRPC cases of bench-serving: ghz (hack/ghz/build.sh) drives ModelInfer on mlkube's and
MLServer's Open Inference Protocol gRPC servers with the same one-row request.

ghz reads the service from a protoset: the descriptor mlkube's server itself is built from
(`grpc_schema.file_descriptor`), so both servers are asked with one definition of the protocol.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2

from mlkube_serving.protocols.grpc_schema import SERVICE, file_descriptor

ROOT = Path(__file__).resolve().parents[2]
# (label, rows per request, concurrency)
GRPC_CASES = [("gRPC 1 row, c=1", 1, 1), ("gRPC 1 row, c=8", 1, 8)]


def ensure_ghz() -> str:
    done = subprocess.run(["bash", str(ROOT / "hack" / "ghz" / "build.sh")], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def write_protoset(path: Path) -> Path:
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[file_descriptor()]).SerializeToString())
    return path


def infer_request(model: str, rows: int) -> dict[str, Any]:
    data = np.random.default_rng(rows).normal(size=(rows, 20)).round(6)
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [rows, 20],
              "contents": {"fp64_contents": data.reshape(-1).tolist()}}  # fmt: skip
    return {"model_name": model, "inputs": [tensor]}


def run_ghz(
    ghz: str, protoset: Path, address: str, request: dict[str, Any], concurrency: int,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    command = [
        ghz, "--insecure", "--protoset", str(protoset), "--call", f"{SERVICE}/ModelInfer",
        "-d", json.dumps(request), "-c", str(concurrency), "--connections", str(concurrency),
        "-z", f"{seconds:g}s", "-O", "json", address,
    ]  # fmt: skip
    report = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_ghz(report)


CUT_OFF = "use of closed network connection"


def parse_ghz(report: str) -> dict[str, Any]:
    """req/s, p50 and p99 in ms, and failed calls, from ghz's JSON report."""
    doc = json.loads(report)
    latencies = {int(p["percentage"]): p["latency"] / 1e6 for p in doc["latencyDistribution"]}
    codes = doc.get("statusCodeDistribution") or {}
    errors = sum(n for code, n in codes.items() if code != "OK")
    # ghz closes its connections when the duration ends: the calls still in flight then fail
    # on its own side ("use of closed network connection"); those are not server errors.
    cut = sum(n for text, n in (doc.get("errorDistribution") or {}).items() if CUT_OFF in text)
    errors -= min(cut, errors)
    return {"rps": float(doc["rps"]), "p50": latencies[50], "p99": latencies[99], "errors": errors}
