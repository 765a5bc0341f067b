"""Container logs of the dev pod executor in the CRI format kwok serves (`kubectl logs`).

A container's stdout and stderr go, raw, to `<container>/0.log` (podexec_spec.container_log:
what the executor reads back for termination messages and what tests read). kwok serves logs
through the CRI reader of the kubelet, which wants one `<RFC 3339 time> <stream> <F|P> <text>`
line per line of output, so on every tick the executor copies what was appended to the raw
file, as complete lines, to `<container>/0.cri.log` (`LogMirror`), which the pod's kwok `Logs`
object names (kwok.build_pod_logs). A line shows up within one poll; the pod's terminal status
is written only after the last copy, so a finished pod's log is whole.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mlkube.devcluster import kwok
from mlkube.k8s import ApiError, Kube

CRI_NAME: Final = "0.cri.log"
CHUNK: Final = 1 << 20  # at most this much is copied per tick and container
MAX_LINE: Final = 16 * 1024  # a longer line goes out in partial (P) pieces, like containerd's


def cri_log(raw: Path) -> Path:
    return raw.with_name(CRI_NAME)


def cri_lines(data: bytes, timestamp: str, final: bool = False) -> tuple[bytes, bytes]:
    """(CRI lines for the complete lines of `data`, the unfinished rest). Output is one
    stream here (stderr joins stdout, as the executor starts processes): all `stdout`."""
    out: list[bytes] = []
    stamp = timestamp.encode()
    lines = data.split(b"\n")
    rest = lines.pop()  # after the last newline: not a complete line yet
    if final and rest:
        lines.append(rest)
        rest = b""
    while len(rest) > MAX_LINE:  # a huge unfinished line still reaches the reader
        out.append(b"%s stdout P %s\n" % (stamp, rest[:MAX_LINE]))
        rest = rest[MAX_LINE:]
    for line in lines:
        while len(line) > MAX_LINE:
            out.append(b"%s stdout P %s\n" % (stamp, line[:MAX_LINE]))
            line = line[MAX_LINE:]
        out.append(b"%s stdout F %s\n" % (stamp, line))
    return b"".join(out), rest


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LogMirror:
    """Copies a raw container log to its CRI twin, a tick at a time."""

    def __init__(self, raw: Path) -> None:
        self.raw, self.cri = raw, cri_log(raw)
        self.offset = raw.stat().st_size if raw.exists() else 0
        self.pending = b""
        self.cri.touch()  # kwok opens it as soon as the pod is asked for its log

    def pump(self, final: bool = False) -> None:
        try:
            with open(self.raw, "rb") as src:
                src.seek(self.offset)
                data = src.read(CHUNK)
        except FileNotFoundError:
            return
        self.offset += len(data)
        more = len(data) == CHUNK
        lines, self.pending = cri_lines(self.pending + data, now_rfc3339(), final and not more)
        if lines:
            with open(self.cri, "ab") as dst:
                dst.write(lines)
        if final and more:
            self.pump(final=True)  # a burst larger than one chunk at the very end


def expose_logs(kube: Kube, pod: dict[str, Any], files: dict[str, str]) -> None:
    """Create the pod's kwok Logs object (kwok.build_pod_logs) so `kubectl logs` reads these
    files; raises ApiError (e.g. KindNotServed without kwok's Logs CRD)."""
    logs = kwok.build_pod_logs(pod, files)
    meta = logs["metadata"]
    try:
        kube.create(logs)
    except ApiError as err:
        if err.status != 409:
            raise
        # A pod of the same name ran before and its Logs is not garbage-collected yet.
        patch = {"metadata": {"ownerReferences": meta["ownerReferences"]}, "spec": logs["spec"]}
        kube.patch(kwok.KWOK_API_VERSION, "Logs", meta["name"], patch, meta["namespace"])
