"""Debian packages into the layer without root: download with a private apt state, unpack.

`apt-get -s install` with its lists, cache and sources in the work directory resolves against
the base's dpkg status (read-only), so dependencies the base has are skipped and missing ones
listed; `apt-get download` fetches exactly those (also from file: sources, which
`--download-only` would use in place) and `dpkg-deb -x` unpacks each into the layer.
Maintainer scripts never run (documented: packages that need them do not work this way).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from mlkube.envbuild.pipstep import BuildError


def _apt_options(state: str) -> list[str]:
    opts = {
        "Dir::State": state,
        "Dir::State::Lists": f"{state}/lists",
        "Dir::Cache": f"{state}/cache",
        "Dir::Cache::archives": f"{state}/archives",
        "Dir::Cache::pkgcache": "",
        "Dir::Cache::srcpkgcache": "",
        "Dir::Etc::SourceList": f"{state}/sources.list",
        "Dir::Etc::SourceParts": f"{state}/sources.list.d",
        "Dir::State::status": "/var/lib/dpkg/status",
        "Debug::NoLocking": "1",
        "APT::Sandbox::User": "",
        "APT::Install-Recommends": "0",
    }
    return [arg for key, value in opts.items() for arg in ("-o", f"{key}={value}")]


_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)", re.MULTILINE)


def _run(cmd: list[str]) -> str:
    return _run_in(cmd, None)


def _run_in(cmd: list[str], cwd: str | None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    out = proc.stdout + proc.stderr
    print(out, end="", flush=True)
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise BuildError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}):\n{tail}")
    return out


def install_apt(packages: list[str], sources: list[str], layer: str, work: str) -> list[str]:
    """Fetch `packages` (+ missing dependencies) and unpack them; returns name=version list."""
    if not packages:
        return []
    if not sources:
        raise BuildError(
            "apt packages requested but no apt sources are configured "
            "(operator config MLKUBE_BUILD_APT_SOURCES)"
        )
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise BuildError("apt packages requested but the base image has no apt-get/dpkg-deb")
    state = os.path.abspath(os.path.join(work, "apt"))  # apt resolves relative to Dir
    for sub in ("lists/partial", "cache", "archives/partial", "sources.list.d"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    with open(os.path.join(state, "sources.list"), "w") as handle:
        handle.write("\n".join(sources) + "\n")
    opts = _apt_options(state)
    _run(["apt-get", *opts, "update"])
    # Simulate against the base's dpkg status: the packages plus the dependencies it lacks.
    plan = _run(["apt-get", *opts, "-s", "-y", "install", *packages])
    wanted = [f"{m.group(1)}={m.group(2)}" for m in _INST.finditer(plan)]
    debs = os.path.join(state, "debs")
    os.makedirs(debs, exist_ok=True)
    if wanted:
        _run_in(["apt-get", *opts, "download", *wanted], debs)
    layer = os.path.abspath(layer)
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        _run(["dpkg-deb", "-x", deb, layer])
    return sorted(wanted)
