"""`python -m mlkube_serving <command> ...`: the one entrypoint of the serving image.

To add a command, add one line to COMMANDS: name -> "module:function", where the function takes
the remaining argv (a list of str) and returns an exit code. Modules are imported only when their
command runs, so one command's heavy dependencies never slow down another's start.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

COMMANDS: dict[str, str] = {
    "serve": "mlkube_serving.server:main",
    "storage-initializer": "mlkube_serving.storage_initializer:main",
    "drift-sidecar": "mlkube_serving.drift.sidecar:main",
    "router": "mlkube_serving.router.main:main",
    "batch": "mlkube_serving.batch.main:main",
    "step": "mlkube_serving.step.main:main",
}


def dispatch(argv: Sequence[str]) -> int:
    """Run the command named by argv[0] with the rest of argv."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m mlkube_serving <command> [options]\n\ncommands:")
        for name in COMMANDS:
            print(f"  {name}")
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    target = COMMANDS.get(name)
    if target is None:
        print(f"unknown command {name!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, _, function_name = target.partition(":")
    function: Callable[[list[str]], int | None] = getattr(
        importlib.import_module(module_name), function_name
    )
    return function(rest) or 0


if __name__ == "__main__":
    sys.exit(dispatch(sys.argv[1:]))
