"""Run a documentation block verbatim, line by line, in one fresh bash (issue 18): the way a
reader pastes it, so the variables `eval` sets and the `&` jobs persist from line to line. Each
line's exit status is recorded between markers; nothing of a line is rewritten."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_MARK = "@@line"


@dataclass(frozen=True)
class LineRun:
    line: str
    status: int | None  # None: the block stopped before this line finished
    output: str


def fenced_block(markdown: str, heading: str, fence: str = "```sh") -> str:
    """The first `fence` block after `heading` (e.g. "## A tour")."""
    section = markdown.split(heading, 1)[1]
    return section.split(fence, 1)[1].split("```", 1)[0]


def command_lines(block: str) -> list[str]:
    """Commands of a block: continuations joined, blank and comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    lines = (line.strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def clean_env(**extra: str) -> dict[str, str]:
    """A fresh login's environment: HOME (its caches), the system PATH plus Go (the README's
    prerequisite), and the machine's cache locations; nothing of this test process's venv."""
    go = shutil.which("go")
    system = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {
        "HOME": os.environ["HOME"],
        "PATH": f"{Path(go).parent}:{system}" if go else system,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
    for name in ("MLKUBE_CACHE_DIR", "XDG_CACHE_HOME", "GOPATH", "GOMODCACHE", "GOCACHE",
                 "GOPROXY", "GOFLAGS", "TMPDIR"):  # fmt: skip
        if name in os.environ:
            env[name] = os.environ[name]
    return {**env, **extra}


def run_lines(
    lines: list[str], cwd: Path, env: dict[str, str], timeout: float, script: Path
) -> list[LineRun]:
    """Run `lines` in one `bash` (not interactive, no rc files, stdin from /dev/null) from
    the file `script`; then end the jobs left running."""
    text = []
    for i, line in enumerate(lines):
        text += [f"printf '\\n{_MARK} begin {i}\\n'", line,
                 f"printf '\\n{_MARK} end {i} %d\\n' $?"]  # fmt: skip
    text.append("kill $(jobs -p) 2>/dev/null; wait")
    script.write_text("\n".join(text) + "\n")
    run = subprocess.run(["bash", "--noprofile", "--norc", str(script)], cwd=cwd, env=env,
                         text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=timeout, check=False)  # fmt: skip
    return parse(lines, run.stdout)


def parse(lines: list[str], output: str) -> list[LineRun]:
    runs = []
    for i, line in enumerate(lines):
        begin = f"\n{_MARK} begin {i}\n"
        if begin not in output:
            runs.append(LineRun(line, None, ""))
            continue
        after = output.split(begin, 1)[1]
        found = re.search(rf"\n{_MARK} end {i} (\d+)\n", after)
        body = after[: found.start()] if found else after.split(f"\n{_MARK} begin", 1)[0]
        runs.append(LineRun(line, int(found.group(1)) if found else None, body))
    return runs


def failures(runs: list[LineRun]) -> str:
    """Empty when every line exited 0; else each failing line with its output."""
    bad = [r for r in runs if r.status != 0]
    return "\n".join(f"$ {r.line}\n(exit {r.status})\n{r.output[-3000:]}" for r in bad)


def port_free(port: int) -> bool:
    """Whether a server could listen on the loopback port now (TIME-WAIT leftovers of closed
    connections do not count: servers bind with SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def versions(kubectl_version_output: str) -> dict[str, str]:
    """{"Client": "v1.36.3", "Server": "v1.36.3"} from `kubectl version`."""
    return dict(re.findall(r"^(Client|Server) Version: (\S+)$", kubectl_version_output, re.M))
