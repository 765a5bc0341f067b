"""pip into the new layer, with the base image's packages satisfying what they can.

Two passes of the base image's own pip: `install --dry-run --report` resolves the
requirements against everything the base has (so nothing already there is installed again),
then `install --prefix <layer><sys.prefix> --no-deps --ignore-installed` installs exactly the
resolved list into the layer. The second pass never uninstalls anything from the (read-only)
base; a distribution it replaces is hidden by whiteouts (whiteouts.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any


class BuildError(Exception):
    """The build cannot go on; the message is shown on the Environment (`reason` says which)."""

    def __init__(self, message: str, reason: str = "BuildFailed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PipSettings:
    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    trusted_hosts: tuple[str, ...] = ()

    def args(self) -> list[str]:
        out: list[str] = []
        if self.index_url:
            out += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        for link in self.find_links:
            out += ["--find-links", link]
        if self.no_index:
            out.append("--no-index")
        for host in self.trusted_hosts:
            out += ["--trusted-host", host]
        return out


@dataclass
class Resolved:
    name: str
    version: str
    spec: str  # what to hand the install pass
    replaces: bool = False  # the base has another version of it


@dataclass
class PipResult:
    installed: list[Resolved] = field(default_factory=list)
    output: str = ""


_COMMON = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]


def _pip(args: list[str], work: str) -> str:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        *args,
        *_COMMON,
        "--cache-dir",
        os.path.join(work, "pip-cache"),
    ]
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}  # unknown to old pips: ignored
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    out = proc.stdout + proc.stderr
    print(out, end="", flush=True)  # the build log is the pod log
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-15:])
        if "No module named pip" in out:
            tail = "the base image has no pip (python3 -m pip): use a base with pip installed"
        elif "no such option: --report" in out or "no such option: --dry-run" in out:
            tail = "the base image's pip is older than 22.2 (no --dry-run --report): upgrade it"
        raise BuildError(f"pip {args[0]} failed (exit {proc.returncode}):\n{tail}")
    return out


def _spec(item: dict[str, Any]) -> str:
    meta = item["metadata"]
    name, version = str(meta["name"]), str(meta["version"])
    info = item.get("download_info") or {}
    if not item.get("is_direct"):
        return f"{name}=={version}"
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info")
    if vcs:
        return f"{name} @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    return f"{name} @ {url}"


def resolve(requirements: list[str], settings: PipSettings, work: str) -> list[Resolved]:
    """What the base still needs: pip's resolution against the installed distributions."""
    req_file = os.path.join(work, "requirements.txt")
    with open(req_file, "w") as handle:
        handle.write("\n".join(requirements) + "\n")
    report = os.path.join(work, "pip-report.json")
    _pip(["install", "--dry-run", "--report", report, "-r", req_file, *settings.args()], work)
    with open(report) as handle:
        doc = json.load(handle)
    return [
        Resolved(str(i["metadata"]["name"]), str(i["metadata"]["version"]), _spec(i))
        for i in doc.get("install", [])
    ]


def site_dirs(prefix: str) -> list[str]:
    """The directories under `prefix` that received distributions (found, not predicted:
    distro Pythons patch pip's install schemes)."""
    found = set()
    for base, dirs, _files in os.walk(prefix):
        if any(d.endswith(".dist-info") for d in dirs):
            found.add(base)
            dirs.clear()
    return sorted(found)


def install(resolved: list[Resolved], settings: PipSettings, layer: str, work: str) -> str:
    """Install the resolved list into the layer; returns the prefix inside the layer."""
    prefix = os.path.join(layer, sys.prefix.lstrip("/"))
    if resolved:
        args = [
            "install",
            "--prefix",
            prefix,
            "--no-deps",
            "--ignore-installed",
            "--no-compile",
            "--no-warn-script-location",
            "--no-warn-conflicts",
            *settings.args(),
        ]
        _pip([*args, *(r.spec for r in resolved)], work)
    return prefix
