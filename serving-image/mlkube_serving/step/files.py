"""Reading what the user's `main` container left in the outputs volume, never through a link.

The `outputs` container holds the artifact store's credentials; `main` does not. A symbolic link
in an output (`model/x -> /proc/self/environ`) would make `outputs` upload its own secrets where
the next step can read them, and a background process of `main` may swap a file for a link
after a check. So every path is opened component by component relative to a directory fd with
O_NOFOLLOW, and only regular files are read (O_NONBLOCK: a FIFO cannot block the open).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Final

from mlkube.storage.digest import sort_key
from mlkube.storage.errors import InvalidArtifact
from mlkube_serving.step.errors import StepError

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_FILES: Final = 100_000  # per artifact output
MAX_DEPTH: Final = 64  # folder nesting: each level holds an fd while its children are read


def _refused(what: str, exc: OSError) -> StepError:
    if exc.errno == errno.ENOENT:
        return StepError(f"{what} is missing")
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return StepError(f"{what} is a symbolic link; outputs must be regular files and folders")
    if exc.errno == errno.ENOTDIR:
        return StepError(f"{what} is not a folder")
    return StepError(f"{what} cannot be read: {exc.strerror}")


def open_dir(path: str, what: str, dir_fd: int | None = None) -> int:
    try:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _refused(what, exc) from exc


def open_regular(path: str, what: str, dir_fd: int | None = None) -> int:
    """An fd of a regular file at `path` (a single component when `dir_fd` is given)."""
    try:
        fd = os.open(path, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _refused(what, exc) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StepError(f"{what} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def is_dir(path: str) -> bool:
    """Whether `path` itself (not a link's target) is a folder."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def list_tree(root_fd: int, what: str) -> list[tuple[str, int]]:
    """(relative POSIX path, size) of every file under the folder `root_fd`, in digest order;
    links, FIFOs, sockets, devices and names that are not UTF-8 are refused."""
    found: list[tuple[str, int]] = []
    _walk(root_fd, "", what, found)
    try:
        return sorted(found, key=lambda item: sort_key(item[0]))
    except InvalidArtifact as exc:
        raise StepError(f"{what}: {exc}") from exc


def _walk(dir_fd: int, prefix: str, what: str, found: list[tuple[str, int]]) -> None:
    if prefix.count("/") >= MAX_DEPTH:
        raise StepError(f"{what}: {prefix.rstrip('/')} is nested deeper than {MAX_DEPTH} folders")
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            relpath = prefix + entry.name
            try:
                relpath.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise StepError(f"{what}: file name {relpath!r} is not UTF-8") from exc
            if entry.is_symlink():
                raise StepError(
                    f"{what}: {relpath} is a symbolic link; outputs must be regular files"
                )
            if entry.is_dir(follow_symlinks=False):
                child = open_dir(entry.name, f"{what}: {relpath}", dir_fd=dir_fd)
                try:
                    _walk(child, relpath + "/", what, found)
                finally:
                    os.close(child)
            elif entry.is_file(follow_symlinks=False):
                found.append((relpath, entry.stat(follow_symlinks=False).st_size))
                if len(found) > MAX_FILES:
                    raise StepError(f"{what} has more than {MAX_FILES} files")
            else:
                raise StepError(f"{what}: {relpath} is not a regular file or folder")


def open_in_tree(root_fd: int, relpath: str, what: str) -> int:
    """Open `relpath` under `root_fd` one component at a time, refusing links on the way."""
    *folders, name = relpath.split("/")
    current = root_fd
    try:
        for folder in folders:
            parent = current
            current = open_dir(folder, f"{what}: {relpath}", dir_fd=parent)
            if parent != root_fd:
                os.close(parent)
        return open_regular(name, f"{what}: {relpath}", dir_fd=current)
    finally:
        if current != root_fd:
            os.close(current)


def read_small(path: str, limit: int, what: str) -> bytes:
    """The whole content of a regular file of at most `limit` bytes."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise StepError(f"{what} is larger than {limit} bytes")
    return data
