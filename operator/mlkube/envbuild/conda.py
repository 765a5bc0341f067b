"""An environment.yml as mlkube honours it (docs/environments.md §2.4), from its parsed form.

The operator parses the YAML (the build pod has no YAML parser) and uses this module twice:
to refuse unsupported conda packages before any Job (reason CondaPackagesUnsupported) and, in
the build pod, to check the Python version and get the pip list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NAME = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$")
IGNORED = frozenset({"pip", "setuptools", "wheel"})  # the base brings its own


@dataclass(frozen=True)
class CondaSpec:
    python: str | None = None  # the version constraint of `python`, e.g. "3.11" or "3.11.2"
    pip: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = field(default=())  # conda packages we cannot install


def _package(entry: str) -> tuple[str, str]:
    match = _NAME.match(entry.split("::")[-1])  # channel::name
    if not match:
        return entry.strip(), ""
    return match.group(1).lower(), match.group(2).strip().lstrip("=").strip()


def parse(doc: Any) -> CondaSpec:
    """`doc` is the parsed environment file (a mapping with `dependencies`)."""
    if not isinstance(doc, dict):
        raise ValueError("conda environment: expected a mapping with `dependencies`")
    python: str | None = None
    pip: list[str] = []
    unsupported: list[str] = []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict):
            for line in dep.get("pip") or []:
                pip.append(str(line))
            continue
        name, version = _package(str(dep))
        if name == "python":
            python = version or None
        elif name not in IGNORED:
            unsupported.append(str(dep).strip())
    return CondaSpec(python, tuple(pip), tuple(unsupported))


def python_matches(constraint: str | None, version: str) -> bool:
    """`python=3.11` matches 3.11.x; `3.11.2` only itself; `>=`-style constraints are not
    checked here (pip's Requires-Python checks the packages)."""
    if not constraint or not re.match(r"^[0-9.*]+$", constraint):
        return True
    want = [p for p in constraint.rstrip(".*").split(".") if p]
    return version.split(".")[: len(want)] == want
