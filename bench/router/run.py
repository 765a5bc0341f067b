"""Benchmark the router against nginx and against calling an upstream directly, in one run.

Every case sits in front of the same two upstream servers (bench/router/upstream.py: raw ASGI
under uvicorn answering a fixed small V2 response, so the proxies are what is measured) and
is driven by the same load generator, wrk with a Lua POST script, on loopback:

  direct      wrk -> upstream blue
  nginx-Nw    wrk -> nginx (N workers, split_clients 70/30, keep-alive upstreams) -> blue|green
  router-Nw   wrk -> mlkube router (N workers, traffic 70/30) -> blue|green

Each case runs a throughput phase (many connections: req/s at saturation) and a latency
phase (one connection: the per-request cost a proxy adds). The best of `--rounds` rounds is
kept per case, since the machine may be shared. Needs `wrk` and `nginx`: when missing they are
installed from Debian (as root), as `make bench-serving` installs its peer MLServer itself.
Usage: python bench/router/run.py [--duration 4] [--rounds 2] [--workers 1,2] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import requests

from mlkube.devcluster.procs import free_port

HERE = Path(__file__).resolve().parent
INFER_PATH = "/v2/models/bench/infer"
LUA = """wrk.method = "POST"
wrk.body = '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1.0,2.0,3.0,4.0]}]}'
wrk.headers["Content-Type"] = "application/json"
"""
NGINX_CONF = """worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream blue {{ server 127.0.0.1:{blue}; keepalive 128; }}
  upstream green {{ server 127.0.0.1:{green}; keepalive 128; }}
  split_clients "${{request_id}}" $deployment {{ 70% blue; * green; }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{
      proxy_pass http://$deployment;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


TOOLS = ("wrk", "nginx")


def find_tool(name: str) -> str | None:
    # nginx lives in /usr/sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def ensure_tools() -> None:
    """wrk and nginx from Debian when missing: a benchmark brings its own peer."""
    missing = [tool for tool in TOOLS if find_tool(tool) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} from Debian ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        missing = [tool for tool in TOOLS if find_tool(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y {' '.join(missing)} (as root)")


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class CaseResult:
    name: str
    load: Sample
    single: Sample


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> Sample:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+)"):
        for match in re.finditer(pattern, output):
            errors += int(match.group(1))
    return Sample(rps, p50, p99, errors)


def run_wrk(url: str, lua: Path, connections: int, seconds: float) -> Sample:
    cmd = [
        find_tool("wrk") or "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 30)
    return parse_wrk(out.stdout)


def wait_ok(url: str, proc: subprocess.Popen[bytes], method: str = "GET") -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if requests.request(method, url, data=b"{}", timeout=0.5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Bench:
    def __init__(self, tmp: Path, seconds: float, log: Path) -> None:
        self.tmp = tmp
        self.seconds = seconds
        self.lua = tmp / "post.lua"
        self.lua.write_text(LUA)
        self.log = open(log, "ab")  # noqa: SIM115
        self.blue, self.green = free_port(), free_port()
        upstream = str(HERE / "upstream.py")
        self.upstreams = [
            self.spawn([sys.executable, upstream, str(port), name])
            for port, name in ((self.blue, "blue"), (self.green, "green"))
        ]
        for port, proc in zip((self.blue, self.green), self.upstreams, strict=True):
            wait_ok(f"http://127.0.0.1:{port}{INFER_PATH}", proc, "POST")

    def spawn(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def measure(self, name: str, url: str) -> CaseResult:
        run_wrk(url, self.lua, 32, 1)  # warm-up: fill keep-alive pools, JIT nothing, settle
        load = run_wrk(url, self.lua, 32, self.seconds)
        single = run_wrk(url, self.lua, 1, max(2.0, self.seconds * 0.75))
        return CaseResult(name, load, single)

    def direct(self) -> CaseResult:
        return self.measure("direct", f"http://127.0.0.1:{self.blue}{INFER_PATH}")

    def nginx(self, workers: int) -> CaseResult:
        port = free_port()
        conf = self.tmp / f"nginx-{workers}.conf"
        conf.write_text(
            NGINX_CONF.format(
                workers=workers, tmp=self.tmp, blue=self.blue, green=self.green, port=port
            )
        )
        proc = self.spawn(
            [find_tool("nginx") or "nginx", "-p", str(self.tmp), "-c", str(conf), "-e", "stderr"]
        )
        try:
            wait_ok(f"http://127.0.0.1:{port}{INFER_PATH}", proc, "POST")
            return self.measure(f"nginx-{workers}w", f"http://127.0.0.1:{port}{INFER_PATH}")
        finally:
            stop(proc)

    def router(self, workers: int) -> CaseResult:
        port, metrics_port = free_port(), free_port()
        config = self.tmp / "router.json"
        config.write_bytes(
            orjson.dumps(
                {
                    "version": 1,
                    "endpoint": "bench",
                    "deployments": {
                        "blue": {"url": f"http://127.0.0.1:{self.blue}"},
                        "green": {"url": f"http://127.0.0.1:{self.green}"},
                    },
                    "traffic": {"blue": 70, "green": 30},
                }
            )
        )
        proc = self.spawn(
            [sys.executable, "-m", "mlkube_serving", "router", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
             "--workers", str(workers), "--log-level", "warning"]
        )  # fmt: skip
        try:
            wait_ok(f"http://127.0.0.1:{port}{INFER_PATH}", proc, "POST")
            return self.measure(f"router-{workers}w", f"http://127.0.0.1:{port}{INFER_PATH}")
        finally:
            stop(proc)

    def close(self) -> None:
        for proc in self.upstreams:
            stop(proc)
        self.log.close()


def best(results: list[CaseResult]) -> CaseResult:
    """Best of the rounds: highest throughput, lowest single-connection latency."""
    load = max((r.load for r in results), key=lambda s: s.rps)
    single = min((r.single for r in results), key=lambda s: s.p50_ms)
    return CaseResult(results[0].name, load, single)


def render(results: dict[str, CaseResult], markdown: bool) -> str:
    head = ["case", "req/s c=32", "p50 ms", "p99 ms", "req/s c=1", "p50 ms c=1", "p99 ms c=1"]
    rows = [
        [r.name, f"{r.load.rps:,.0f}", f"{r.load.p50_ms:.3f}", f"{r.load.p99_ms:.3f}",
         f"{r.single.rps:,.0f}", f"{r.single.p50_ms:.3f}", f"{r.single.p99_ms:.3f}"]
        for r in results.values()
    ]  # fmt: skip
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in [head, *rows]
    )


def summarize(results: dict[str, CaseResult], workers: list[int]) -> list[str]:
    direct = results["direct"]
    lines = []
    for n in workers:
        router, nginx = results[f"router-{n}w"], results[f"nginx-{n}w"]
        lines.append(
            f"router-{n}w / nginx-{n}w throughput: {router.load.rps / nginx.load.rps:.2f}x "
            f"(target >= 0.60x)"
        )
    for name in [f"router-{n}w" for n in workers] + [f"nginx-{n}w" for n in workers]:
        case = results[name]
        added_single = case.single.p50_ms - direct.single.p50_ms
        added_load = case.load.p50_ms - direct.load.p50_ms
        lines.append(
            f"{name} added p50 vs direct: {added_single:.3f} ms at c=1 (target <= 0.300 ms), "
            f"{added_load:.3f} ms at c=32"
        )
    errors = sum(r.load.errors + r.single.errors for r in results.values())
    lines.append(f"non-2xx responses or socket errors across all runs: {errors}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    ensure_tools()
    workers = [int(w) for w in args.workers.split(",")]
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    rounds: dict[str, list[CaseResult]] = {}
    with tempfile.TemporaryDirectory(prefix="mlkube-bench-router-") as tmp_name:
        tmp = Path(tmp_name)
        bench = Bench(tmp, args.duration, tmp / "processes.log")
        try:
            for round_no in range(args.rounds):
                print(f"round {round_no + 1}/{args.rounds} ...", file=sys.stderr)
                cases = [bench.direct()]
                for n in workers:
                    cases += [bench.nginx(n), bench.router(n)]
                for case in cases:
                    rounds.setdefault(case.name, []).append(case)
        finally:
            bench.close()
    results = {name: best(runs) for name, runs in rounds.items()}
    load_after = os.getloadavg()[0]
    print(f"mlkube router benchmark: {cores} cores, wrk -t1, POST {INFER_PATH} (small V2 body),")
    print(f"upstreams: 2x raw-ASGI uvicorn (bench/router/upstream.py), best of {args.rounds}")
    print(render(results, args.markdown))
    for line in summarize(results, workers):
        print(line)
    print(f"load average before/after: {load_before:.2f}/{load_after:.2f} on {cores} cores")
    if load_before >= 1.0:
        # Before the run none of the benchmark's processes existed: this load is someone else's.
        print("NOTE: the machine was shared (load >= 1 before the run): numbers are noisy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
