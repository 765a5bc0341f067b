"""The dev cluster's local package mirror (docs/environments.md §8): build pods on the real
node have no route off this machine, so the packages environment builds install come from
here — a wheelhouse (`pip download` on the host) served as a find-links page and a flat
Debian repository (`apt-get download` + `dpkg-scanpackages`), both behind one small HTTP
server (`python -m http.server`) on the bridge address (loopback in the kwok mode).

The mirror is filled once per machine into a cache keyed by its contents (like the Go
builds of hack/), and the state dir links to it: a warm `make dev` downloads nothing.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# What the samples, docs and e2e tests install into environments (a build asking for anything
# else fails with pip's "no matching distribution", which names the package).
PIP_REQUIREMENTS: tuple[str, ...] = ("lightgbm==4.7.0",)
# The serving image's Python (Debian bookworm): wheels are chosen for it, not for the host.
PYTHON_VERSION = "3.11"
APT_PACKAGES: tuple[str, ...] = ("libgomp1",)
RECIPE_VERSION = "1"  # bump when the layout below changes


class MirrorError(RuntimeError):
    """The mirror could not be filled."""


def _platforms() -> list[str]:
    machine = platform.machine()
    return [f"manylinux_2_{minor}_{machine}" for minor in (28, 27, 17)] + [
        f"manylinux2014_{machine}"
    ]


def cache_key() -> str:
    recipe = {
        "pip": sorted(PIP_REQUIREMENTS), "apt": sorted(APT_PACKAGES), "python": PYTHON_VERSION,
        "platforms": _platforms(), "version": RECIPE_VERSION,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("MLKUBE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlkube"
    )
    return Path(base) / "mirror"


def build_find_links_page(wheels: list[Path]) -> str:
    """An index pip reads with --find-links: one anchor per file, with its sha256 (pip checks
    it), relative links so the page works at any address."""
    rows = []
    for wheel in sorted(wheels, key=lambda p: p.name):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        name = html.escape(wheel.name)
        rows.append(f'<a href="{name}#sha256={digest}">{name}</a><br>')
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(rows) + "\n</body></html>\n"


def ensure(log: bool = True) -> Path:
    """The filled mirror directory (wheels/, apt/); downloads only on a cold machine."""
    root = cache_root() / cache_key()
    if (root / "complete").exists():
        return root
    started = time.monotonic()
    partial = root.with_name(f"{root.name}.partial.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _fill_wheels(partial / "wheels")
        _fill_apt(partial / "apt")
        (partial / "complete").write_text("")
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if log:
        print(f"mirror: filled in {time.monotonic() - started:.0f}s ({root})", file=sys.stderr)
    return root


def _run(argv: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MirrorError(f"{' '.join(argv[:4])} …: {result.stderr.strip()[-800:]}")
    return result.stdout


def _fill_wheels(dest: Path) -> None:
    dest.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
            "--only-binary=:all:", "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "--abi", f"cp{PYTHON_VERSION.replace('.', '')}"]  # fmt: skip
    for plat in _platforms():
        argv += ["--platform", plat]
    _run([*argv, *PIP_REQUIREMENTS])
    (dest / "index.html").write_text(build_find_links_page(list(dest.glob("*.whl"))))


def _fill_apt(dest: Path) -> None:
    dest.mkdir(parents=True)
    if APT_PACKAGES:
        _run(["apt-get", "download", *APT_PACKAGES], cwd=dest)
    packages = _run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=dest)
    (dest / "Packages").write_text(packages)


def link_into(state_dir: Path, mirror: Path) -> Path:
    """`state_dir`/mirror → the cached mirror (what the server serves)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    link = state_dir / "mirror"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(mirror, target_is_directory=True)
    return link


def server_argv(served: Path, host: str, port: int) -> list[str]:
    """A threading static file server; its command line names the state dir (`dev down`)."""
    return [sys.executable, "-m", "http.server", "--bind", host,
            "--directory", str(served), str(port)]  # fmt: skip


def find_links_url(address: str) -> str:
    return f"http://{address}/wheels/index.html"


def apt_source(address: str) -> str:
    """A flat repository line; trusted because the dev mirror is unsigned (this machine's
    own downloads, served on the bridge only)."""
    return f"deb [trusted=yes] http://{address}/apt ./"
