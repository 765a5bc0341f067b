"""The model server's load error as the container's termination message.

A server that cannot load its model (a scoring script importing a module the image lacks)
exits; its log's last line is uvicorn's "Application startup failed", not the cause. Writing
the cause to the termination log lets the operator show it in the endpoint's status (the pod
problem names the missing module) without reading logs.
"""

from __future__ import annotations

import os
from typing import Final

TERMINATION_LOG: Final = "/dev/termination-log"
# Where a pod has no /dev/termination-log (the dev pod executor names a file per container).
TERMINATION_ENV: Final = "MLKUBE_TERMINATION_LOG"
MAX_MESSAGE: Final = 4096  # the kubelet keeps at most 4 KiB


def write_termination_message(text: str) -> None:
    """Best effort: outside a container (no such file) nothing is written."""
    path = os.environ.get(TERMINATION_ENV) or TERMINATION_LOG
    if not (os.path.exists(path) or path == os.environ.get(TERMINATION_ENV)):
        return
    data = text.encode("utf-8", "replace")[:MAX_MESSAGE]
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError:
        pass  # a read-only or vanished file must not hide the original error
