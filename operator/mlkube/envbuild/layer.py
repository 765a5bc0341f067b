"""A directory as one reproducible image layer: tar (sorted, uid/gid 0, mtime 0) + gzip.

Equal trees give equal bytes, hence equal digests: a rebuild of the same inputs pushes
nothing new and the build key's image stays the same. Modes are kept (files written for the
server user to read), owners and times are not. Whiteouts (`.wh.<name>`) are plain empty
files here, as in any OCI layer.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class LayerBlob:
    path: str  # the .tar.gz file
    digest: str  # sha256 of the compressed bytes (the blob digest)
    diff_id: str  # sha256 of the uncompressed tar (the config's rootfs.diff_ids)
    size: int  # compressed bytes
    files: int


class _Hashing:
    """A write-only file that hashes what passes through to `target`."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def _entries(root: str) -> list[str]:
    """Every path under `root`, relative, sorted bytewise (parents before children)."""
    found: list[str] = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(base, root)
        for name in dirs + files:
            found.append(name if rel == "." else f"{rel}/{name}")
    return sorted(found, key=lambda p: p.encode())


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = stat.S_IMODE(info.mode)
    info.pax_headers = {}
    return info


def write_layer(root: str, dest: str, *, compresslevel: int = 6) -> LayerBlob:
    """Tar + gzip `root` into `dest`; returns its digests."""
    count = 0
    with open(dest, "wb") as raw:
        compressed = _Hashing(raw)
        gz = gzip.GzipFile(
            filename="",
            mode="wb",
            fileobj=compressed,  # type: ignore[arg-type]
            mtime=0,
            compresslevel=compresslevel,
        )
        plain = _Hashing(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for rel in _entries(root):
                full = os.path.join(root, rel)
                # gettarinfo makes later hard links to one inode LNKTYPE entries (dpkg-deb -x).
                info = _normalise(tar.gettarinfo(full, arcname=rel))
                if info.isreg():
                    with open(full, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
                count += 1
        gz.close()
    return LayerBlob(
        path=dest,
        digest="sha256:" + compressed.hash.hexdigest(),
        diff_id="sha256:" + plain.hash.hexdigest(),
        size=compressed.size,
        files=count,
    )
