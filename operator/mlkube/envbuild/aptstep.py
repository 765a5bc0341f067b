"""Debian packages into the layer without root: download with a private apt state, unpack.

`apt-get install --download-only` with its lists, cache and sources in the work directory
resolves against the base's dpkg status (read-only), so dependencies the base has are skipped
and missing ones fetched; `dpkg-deb -x` unpacks each .deb into the layer. Maintainer scripts
never run (documented: packages that need them do not work this way).
"""

from __future__ import annotations

import glob
import os
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


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
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
    state = os.path.join(work, "apt")
    for sub in ("lists/partial", "cache", "archives/partial", "sources.list.d"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    with open(os.path.join(state, "sources.list"), "w") as handle:
        handle.write("\n".join(sources) + "\n")
    opts = _apt_options(state)
    _run(["apt-get", *opts, "update"])
    _run(["apt-get", *opts, "-y", "install", "--download-only", *packages])
    unpacked: list[str] = []
    for deb in sorted(glob.glob(os.path.join(state, "archives", "*.deb"))):
        _run(["dpkg-deb", "-x", deb, layer])
        fields = subprocess.run(
            ["dpkg-deb", "-f", deb, "Package", "Version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        name = fields[0].split(":", 1)[-1].strip()
        version = fields[1].split(":", 1)[-1].strip() if len(fields) > 1 else ""
        unpacked.append(f"{name}={version}")
    return unpacked
