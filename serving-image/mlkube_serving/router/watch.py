"""Notice when a mounted file was replaced, the way Kubernetes replaces ConfigMaps and Secrets.

The kubelet writes a new timestamped directory and swaps the `..data` symlink, so the path a pod
reads resolves to a new inode; editors and `cp` rewrite in place and change mtime and size.
`os.stat` follows symlinks, so comparing (device, inode, mtime, size) catches both.
"""

from __future__ import annotations

import os

from mlkube_serving.router.config import RouterConfig, load_config

FileStamp = tuple[int, int, int, int]


def file_stamp(path: str) -> FileStamp | None:
    """Identity of the file `path` resolves to now, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigWatcher:
    """`poll()` returns the parsed config when the file changed since the last poll."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: FileStamp | None = None
        self._seen = False

    def poll(self) -> RouterConfig | None:
        """New config, or None if unchanged; raises `ConfigError` for a bad or missing file.

        A file that stays bad raises once per change, not on every poll.
        """
        stamp = file_stamp(self.path)
        if self._seen and stamp == self._stamp:
            return None
        self._seen = True
        self._stamp = stamp
        return load_config(self.path)
