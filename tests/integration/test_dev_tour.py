"""The commands `make dev` prints, and the README tour's, work as printed (issue 9 A2).

`mlkube dev up` (what `make dev` runs) starts its own cluster here; the test reads the `mlkube`
lines from its output and from README.md's tour instead of copying them, so a changed line is
tested as changed. Only the local port is swapped for a free one (another process on this
machine may hold 8081): `run-local` goes to the background, `invoke` must answer 200 with the
model's V2 outputs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlkube.devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[2]
MLKUBE = [sys.executable, "-m", "mlkube"]


def printed_commands(text: str) -> list[list[str]]:
    """`mlkube ...` command lines (backslash continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", "", text)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("mlkube "):
            commands.append(shlex.split(line, comments=True))
    return commands


def readme_tour() -> str:
    readme = (REPO / "README.md").read_text()
    tour = readme.split("## A tour", 1)[1]
    return tour.split("```sh", 1)[1].split("```", 1)[0]


def pick(commands: list[list[str]], verb: str) -> list[str]:
    found = [c for c in commands if c[1:3] == ["endpoint", verb]]
    assert len(found) == 1, f"expected one `mlkube endpoint {verb}` line in {commands}"
    return found[0]


def local_port(run_local: list[str], invoke: list[str]) -> tuple[list[str], list[str]]:
    """Both lines with the printed port swapped for a free one (it must be the same port)."""
    port = run_local[run_local.index("--port") + 1]
    url = invoke[invoke.index("--url") + 1]
    assert url == f"http://127.0.0.1:{port}", "invoke must target the port run-local serves"
    free = str(free_port())
    return (
        [free if a == port else a for a in run_local],
        [a.replace(f":{port}", f":{free}") for a in invoke],
    )


def run_pair(run_local: list[str], invoke: list[str], env: dict[str, str]) -> dict[str, object]:
    run_local, invoke = local_port(run_local, invoke)
    server = subprocess.Popen([*MLKUBE, *run_local[1:]], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 180
        output = []
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            output.append(line)
            if "running locally at" in line or not line:
                break
        assert "running locally at" in output[-1], "".join(output)
        answer = subprocess.run([*MLKUBE, *invoke[1:]], cwd=REPO, env=env, text=True,
                                capture_output=True, timeout=120)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        body: dict[str, object] = json.loads(answer.stdout)
        return body
    finally:
        server.send_signal(signal.SIGTERM)  # run-local stops its servers on SIGTERM
        server.wait(timeout=60)


def test_the_commands_make_dev_and_the_readme_print_work(tmp_path: Path) -> None:
    workdir = tmp_path / "dev"
    env = {**os.environ, "MLKUBE_DEV_DIR": str(workdir)}
    env.pop("KUBECONFIG", None)
    up = subprocess.run([*MLKUBE, "dev", "up", "--workdir", str(workdir)], cwd=REPO, env=env,
                        text=True, capture_output=True, timeout=600)  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        (kubeconfig,) = re.findall(r"export KUBECONFIG=(\S+)", up.stdout)
        env["KUBECONFIG"] = kubeconfig
        printed = printed_commands(up.stdout)
        readme = printed_commands(readme_tour())
        pairs = {
            tuple(map(tuple, (pick(cmds, "run-local"), pick(cmds, "invoke"))))
            for cmds in (printed, readme)
        }
        for run_local, invoke in pairs:
            answer = run_pair(list(run_local), list(invoke), env)
            assert answer["model_name"] == "credit-risk", answer
            outputs = {o["name"]: o for o in answer["outputs"]}  # type: ignore[attr-defined]
            assert set(outputs) == {"label", "probabilities"}
        # The read-only lines `make dev` prints work too.
        for command in printed:
            if command[1:3] in (["model", "list"], ["endpoint", "show"]):
                run = subprocess.run([*MLKUBE, *command[1:]], cwd=REPO, env=env, text=True,
                                     capture_output=True, timeout=120)  # fmt: skip
                assert run.returncode == 0, (command, run.stderr)
                assert "credit" in run.stdout
    finally:
        subprocess.run([*MLKUBE, "dev", "down", "--workdir", str(workdir)], cwd=REPO, env=env,
                       capture_output=True, timeout=120)  # fmt: skip
