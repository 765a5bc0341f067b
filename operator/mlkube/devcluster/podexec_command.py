"""Which program a container of the dev pod executor runs, decided without I/O (podexec.py).

Images are ignored, so a container must say which program it runs, and the only programs this
machine can stand in for are python ones (the executor's interpreter, with the working tree's
`mlkube_serving`). Two shapes are accepted:
- `python …` / `python3 …`: run under the executor's interpreter directly;
- `/bin/sh -c SCRIPT NAME python …`: the pipeline step wrapper (docs/pipelines.md §2), which
  records the shell's pid and the wrapped command's exit code around `"$@"`. The real /bin/sh
  runs it, with a per-pod directory of `python`/`python3` shims first on PATH so the wrapped
  command resolves to the executor's interpreter too.
Anything else is refused with one message.

`$(VAR)` references are expanded in every argument — the script included — exactly as the
kubelet does, so `$$` in a pod spec reaches the shell as `$` (a builder writes the shell's
`$$` as `$$$$`; doubling every `$` is always safe).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PYTHONS = ("python", "python3")
SHELLS = ("/bin/sh", "sh")
SHELL = "/bin/sh"  # the real one: the wrapper is shell text
SHIM_DIR = ".bin"  # under the pod's directory; a dot, so never a container's name (DNS label)

_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known variables replaced, unknown ones left as written,
    `$$` is a literal `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, value)


def is_shell_wrapped(full: list[str]) -> bool:
    """`/bin/sh -c SCRIPT $0 python …`: a shell script around a python command."""
    return len(full) >= 5 and full[0] in SHELLS and full[1] == "-c" and full[4] in PYTHONS


def build_argv(container: Mapping[str, Any], env: Mapping[str, str], python: str) -> list[str]:
    """command + args with `$(VAR)` expanded; a leading `python` becomes this interpreter, a
    shell wrapper runs under the real /bin/sh (its `python` found through the shims)."""
    command = list(container.get("command") or [])
    full = [expand(a, env) for a in command + list(container.get("args") or [])]
    if command and command[0] in PYTHONS:
        return [python, *full[1:]]
    if command and is_shell_wrapped(full):
        return [SHELL, *full[1:]]
    shown = " ".join(command) if command else "(image entrypoint)"
    raise Refused(
        f"container {container['name']!r}: the dev pod executor runs only `python` commands "
        f"(or `/bin/sh -c SCRIPT NAME python ...`), not {shown!r}"
    )


def shim_dir(root: Path) -> Path:
    return root / SHIM_DIR


def shims(python: str) -> dict[str, str]:
    """File name -> text of the executables that make `python` on PATH this interpreter. A
    script that execs it, not a symlink: a venv's interpreter finds its venv (pyvenv.cfg) from
    the path it was started by, which a symlink elsewhere would lose."""
    text = f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n'
    return dict.fromkeys(PYTHONS, text)


def search_path(root: Path, path: str) -> str:
    """PATH for a container: the shims first, then the container's own (or the executor's)."""
    return f"{shim_dir(root)}:{path}" if path else str(shim_dir(root))


class Refused(Exception):
    """The pod cannot run here, ever (a command that is not python, a volume type we do not
    map): the executor fails the pod with this message."""
