"""Container paths to local paths for the dev pod executor, decided without I/O (podexec.py).

A container sees its volumes at mount paths; here they are per-pod directories. Wherever a
mount path appears as a whole path in a container's args, env values or working directory —
a `python -c` program and a `/bin/sh -c` script included — it is rewritten to the local
directory (`rewrite`). A parent of mount points that a container runtime would create
(`/mlkube` for `/mlkube/run`) becomes a directory of links to the mounts (`mount_parents`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Mount:
    path: str  # the path inside the "container"
    local: Path  # where it lives on this machine


def _ancestors(path: str) -> list[str]:
    """ "/a/b/c" -> ["/a/b", "/a"]."""
    found = []
    while (path := posixpath.dirname(path)) != "/":
        found.append(path)
    return found


# Top-level directories of every Linux machine (FHS): a mount point's parent under one of them
# is the image's, with other content (/mnt, /dev, /tmp), and the same path here is this
# machine's: never mapped.
HOST_DIRS = frozenset({
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt",
    "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var",
})  # fmt: skip


def mount_parents(mounts: list[Mount], fs: Path) -> tuple[list[Mount], dict[Path, Path]]:
    """The directories a container runtime creates to hold mount points (`/mlkube` for
    `/mlkube/run`), so a program given the parent (a pipeline step's MLKUBE_STEP_ROOT=/mlkube)
    finds the mounts under it: each is mapped to `fs/<dir>`, where every mount below it is a
    symlink to its local directory. Decided from the paths alone, not from what this machine
    has: a stray /mlkube here must not change what a pod sees."""
    paths = {m.path for m in mounts}
    parents: set[str] = set()
    for m in mounts:
        for p in _ancestors(m.path):
            inside = p in paths or any(p.startswith(q + "/") for q in paths)
            if inside or p.split("/")[1] in HOST_DIRS:
                break  # inside a mount, or a directory of the image
            parents.add(p)
    links = {
        fs / m.path.lstrip("/"): m.local
        for m in mounts
        if any(m.path.startswith(p + "/") for p in parents)
    }
    return [Mount(p, fs / p.lstrip("/")) for p in sorted(parents)], links


def rewrite(value: str, mounts: list[Mount]) -> str:
    """Replace each mount path that appears as a whole path (at the start of the value or after
    `=`, `:`, `,`, a quote, whitespace, a shell operator `<>;|&(` or the `-` of `${V:-/x}`,
    followed by `/` or such a separator, `)` or `}`) by its local directory; the longest mount
    first, so /mnt/models/x is not taken by a /mnt mount. Quotes and shell operators count, so
    paths inside a `python -c` program and a `/bin/sh -c` script (`echo $$ >/mlkube/run/pid`,
    `${ROOT:-/mlkube}/run`) are mapped too."""
    # One pass: a local directory may itself start with a mount path (/tmp/...).
    table = {m.path: str(m.local) for m in mounts if m.path != "/"}
    if not table:
        return value
    paths = "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True))
    pattern = rf"(?:^|(?<=[-=:,\s'\"<>;|&(`]))({paths})(?=/|[:,\s'\"<>;|&)}}`]|$)"
    return re.sub(pattern, lambda m: table[m.group(1)], value)
