"""Teardown of what the real node leaves on the host besides its network: pod sandboxes,
containerd shims, mounts under the node's directory and the kubelet's cgroups.

Each step is best effort and returns the problems it met, so `dev down` always runs them all
and reports what is left instead of stopping halfway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def remove_pods(crictl: Path, socket: str, timeout: float = 90.0) -> list[str]:
    """Stop and remove every pod sandbox through the CRI (tears down netns, CNI, mounts)."""
    argv = [str(crictl), "--runtime-endpoint", f"unix://{socket}", "--timeout", "30s"]
    try:
        result = subprocess.run(
            [*argv, "rmp", "--force", "--all"], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return ["crictl rmp timed out"]
    if result.returncode != 0:
        return [f"crictl rmp: {result.stderr.strip()[-300:]}"]
    return []


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def kill_shims(socket: str) -> list[str]:
    """Kill the containerd shims (and their containers) left by our containerd."""
    pids = _pids_mentioning(socket)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [f"killed {len(pids)} leftover containerd shim(s)"] if pids else []


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            # Field 5 is the mount point; spaces in it are octal-escaped.
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return points


def unmount_under(root: Path) -> list[str]:
    """Unmount (deepest first) everything mounted below `root`: volumes, overlays, netns."""
    problems = []
    for _ in range(3):  # stacked mounts: repeat until nothing is left
        points = sorted(set(_mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            return []
        for point in points:
            result = subprocess.run(["umount", point], capture_output=True, text=True)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mounts_under(root)
    if left:
        problems.append(f"{len(left)} mount(s) left under {root}: {left[:3]}")
    return problems


def remove_kubepods_cgroups() -> list[str]:
    """Remove the (empty, once pods are gone) cgroups the kubelet made: kubepods in every
    v1 hierarchy; the kubelet's own cgroups are removed with it."""
    problems = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
        for d in [*dirs, top]:
            try:
                d.rmdir()
            except OSError as err:
                problems.append(f"cgroup {d}: {err.strerror}")
                break
    return problems


# Fixed paths the kubelet (device plugins), containerd (runc state, shim sockets) and libcni
# (result cache) use whatever their configured roots are.
FIXED_DIRS = ("/var/lib/kubelet", "/run/containerd", "/var/lib/cni")


def absent_fixed_dirs() -> list[str]:
    """The fixed directories that do not exist yet (so the node may remove them later)."""
    return [d for d in FIXED_DIRS if not os.path.lexists(d)]


def remove_created_dirs(created: list[str]) -> list[str]:
    """Remove directories the node created, when only directories and sockets are left in them
    (a regular file means someone else uses it now: leave it and say so)."""
    problems = []
    for top in created:
        root = Path(top)
        if not root.exists():
            continue
        entries = sorted(root.rglob("*"), key=lambda p: -len(p.parts))
        if any(p.is_file() and not p.is_socket() for p in entries):
            problems.append(f"{top} holds files now; left in place")
            continue
        for entry in [*entries, root]:
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    entry.rmdir()
                else:
                    entry.unlink()
        if root.exists():
            problems.append(f"could not remove {top}")
    return problems
