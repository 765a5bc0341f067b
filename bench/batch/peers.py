"""The batch benchmark's peers, each run as its own process by bench/batch/run.py.

    python peers.py floor --input F --format parquet|csv --model M.onnx --output DIR
    python peers.py ray   --input F --format ... --model M.onnx --output DIR --cpus 2
    python peers.py azure --input F --format ... --model DIR/model.joblib --output DIR

`floor`: what the hardware does — one process streams the input with pyarrow (single-threaded
reads, as the scorer's), predicts with a one-thread onnxruntime session in 100,000-row chunks
and writes one CSV with pyarrow's writer. `ray`: Ray Data `map_batches` with the same ONNX
model, one actor per core, `write_csv` (Ray runs local-only: loopback, no dashboard, no usage
stats, and the process checks its own sockets). `azure`: Azure ML's batch contract as users
write it — `init()` loads the scikit-learn model, `run(mini_batch)` gets a pandas DataFrame and
returns predictions, the driver appends them to the output with pandas.
Each prints one JSON line: rows, seconds (inside the process, after imports) and extras.
Stand-alone on purpose (no mlkube imports): the Ray peer runs in its own venv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 100_000


def batches(path: str, fmt: str, rows: int) -> Iterator[Any]:
    """pyarrow RecordBatches of about `rows` rows, read on the calling thread."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=rows, use_threads=False)
        return
    import pyarrow.csv as pacsv

    # block_size in bytes: ~20 bytes per value is close enough to give `rows`-row blocks.
    options = pacsv.ReadOptions(use_threads=False, block_size=rows * 200)
    yield from pacsv.open_csv(path, read_options=options)


def to_matrix(batch: Any) -> Any:
    import numpy as np

    return np.stack([c.to_numpy(zero_copy_only=False) for c in batch.columns], axis=1).astype(
        np.float32
    )


def session(model: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def floor(args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    started = time.perf_counter()
    sess = session(args.model)
    name = sess.get_inputs()[0].name
    label = sess.get_outputs()[0].name
    rows = 0
    out = Path(args.output) / "predictions.csv"
    schema = pa.schema([("prediction", pa.int64())])
    with pacsv.CSVWriter(out, schema) as writer:
        for batch in batches(args.input, args.format, CHUNK):
            pred = sess.run([label], {name: to_matrix(batch)})[0].reshape(-1)
            writer.write_table(pa.table({"prediction": pa.array(pred, pa.int64())}))
            rows += len(pred)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def azure(args: argparse.Namespace) -> dict[str, Any]:
    """init()/run(mini_batch) as Azure ML's tabular batch scoring scripts are written."""
    import joblib
    import pandas as pd

    started = time.perf_counter()
    state: dict[str, Any] = {}

    def init() -> None:
        state["model"] = joblib.load(args.model)

    def run(mini_batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"prediction": state["model"].predict(mini_batch)})

    init()
    rows = 0
    out = Path(args.output) / "predictions.csv"
    reader: Any
    if args.format == "csv":
        reader = pd.read_csv(args.input, chunksize=args.mini_batch)
    else:
        reader = (b.to_pandas() for b in batches(args.input, "parquet", args.mini_batch))
    with open(out, "w") as handle:
        for i, frame in enumerate(reader):
            result = run(frame)
            result.to_csv(handle, index=False, header=i == 0)
            rows += len(result)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def loopback_only() -> dict[str, Any]:
    """Every TCP/UDP socket of this process tree (Ray's GCS, raylet, workers): listening
    addresses and peers. Anything but loopback, listening or connected, is reported."""
    mine = ray_pids()
    inodes = {}
    for pid in mine:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    listening, remotes, detail = set(), set(), []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            local, remote, state = decode(fields[1]), decode(fields[2]), fields[3]
            if state == "0A":  # LISTEN
                listening.add(local.rsplit(":", 1)[0])
            elif not remote.startswith(("0.0.0.0", "::")):
                remotes.add(remote.rsplit(":", 1)[0])
                if not remote.startswith("127."):
                    detail.append(f"{table} {local} -> {remote} (pid {inodes[fields[9]]})")
    off = sorted(r for r in remotes | listening if not r.startswith("127.") and r != "::1")
    return {"processes": len(mine), "listen": sorted(listening), "peers": sorted(remotes),
            "offMachine": off, "detail": detail}  # fmt: skip


def ray_pids() -> list[int]:
    """This process and its descendants (Ray's GCS, raylet and workers are started by it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def decode(raw: str) -> str:
    """/proc/net/tcp's hex address (little-endian IPv4, or IPv6 words) as text."""
    import ipaddress

    host, port = raw.split(":")
    data = bytes.fromhex(host)
    if len(data) == 4:
        addr: Any = ipaddress.IPv4Address(data[::-1])
    else:
        words = b"".join(data[i : i + 4][::-1] for i in range(0, 16, 4))
        addr = ipaddress.IPv6Address(words)
        if addr.ipv4_mapped:
            addr = addr.ipv4_mapped
    return f"{addr}:{int(port, 16)}"


def ray(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report to the internet
    # Without this, Ray takes the address of the default route's interface as the node's IP
    # even when told 127.0.0.1 (it "resolves" loopback to a reachable address); single-node
    # mode (Ray's own switch for laptops) keeps every component on 127.0.0.1.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import numpy as np
    import ray as ray_lib

    started = time.perf_counter()
    ray_lib.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    ready = time.perf_counter()
    model = args.model

    class Predict:
        def __init__(self) -> None:
            self.sess = session(model)
            self.name = self.sess.get_inputs()[0].name
            self.label = self.sess.get_outputs()[0].name

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            x = np.stack([batch[k] for k in sorted(batch, key=lambda c: int(c[1:]))], axis=1)
            pred = self.sess.run([self.label], {self.name: x.astype(np.float32)})[0]
            return {"prediction": pred.reshape(-1)}

    reader = ray_lib.data.read_parquet if args.format == "parquet" else ray_lib.data.read_csv
    # One actor per core. Each reserves half a CPU: with num_cpus=1, two actors hold both
    # CPUs of a 2-CPU Ray and the listing/read tasks never schedule (observed: stuck forever).
    dataset = reader(args.input).map_batches(
        Predict, batch_size=CHUNK, batch_format="numpy", concurrency=args.cpus, num_cpus=0.5
    )
    dataset.write_csv(str(Path(args.output) / "ray"))
    done = time.perf_counter()
    sockets = loopback_only()
    rows = 0  # the files Ray wrote, counted after the clock stopped
    for path in (Path(args.output) / "ray").glob("*.csv"):
        with open(path) as handle:
            rows += sum(1 for _ in handle) - 1
    ray_lib.shutdown()
    return {
        "rows": rows,
        "seconds": done - started,
        "initSeconds": ready - started,
        "sockets": sockets,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=["floor", "ray", "azure"])
    parser.add_argument("--input", required=True)
    parser.add_argument("--format", required=True, choices=["csv", "parquet"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--mini-batch", type=int, default=50_000)
    args = parser.parse_args()
    body = {"floor": floor, "ray": ray, "azure": azure}[args.peer](args)
    print(json.dumps(body), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
