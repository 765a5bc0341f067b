"""Whiteouts for base distributions that the layer replaces with another version.

An upper layer's files win over the base's, but files only the old version had would stay
visible — above all its `.dist-info`, so importlib.metadata (and pip freeze) would see two
versions. For every file in the old distribution's RECORD that the layer does not provide,
the layer gets `.wh.<name>` next to where it was (its `.dist-info` directory as a whole).
"""

from __future__ import annotations

import os
import re
from importlib import metadata


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _targets(dist: metadata.Distribution) -> set[str]:
    """Absolute image paths to hide for one installed distribution."""
    info_dir = getattr(dist, "_path", None)  # PathDistribution: the .dist-info directory
    if info_dir is None:
        return set()
    info_dir = os.path.abspath(str(info_dir))
    site = os.path.dirname(info_dir)
    hide = {info_dir}
    for entry in dist.files or []:
        path = os.path.normpath(os.path.join(site, str(entry)))
        if path.startswith(info_dir + os.sep) or "__pycache__" in path.split(os.sep):
            continue  # gone with the directory / never in an image built --no-compile
        hide.add(path)
    return hide


def add_whiteouts(layer: str, replaced: set[str], search_path: list[str]) -> list[str]:
    """Whiteout files in `layer` for the distributions named `replaced` (canonical names)
    found on `search_path` (the base's sys.path); returns the hidden image paths."""
    hidden: list[str] = []
    seen: set[str] = set()
    for dist in metadata.distributions(path=search_path):
        name = canonical(dist.metadata["Name"] or "")
        if name not in replaced:
            continue
        for target in sorted(_targets(dist)):
            if target in seen or os.path.lexists(os.path.join(layer, target.lstrip("/"))):
                continue  # the new version has the same path: it wins without a whiteout
            seen.add(target)
            parent, base = os.path.split(target)
            dest = os.path.join(layer, parent.lstrip("/"))
            os.makedirs(dest, exist_ok=True)
            with open(os.path.join(dest, ".wh." + base), "wb"):
                pass
            hidden.append(target)
    return hidden
