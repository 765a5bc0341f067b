"""The YAML manifests `create -f` reads, checked one way for every kind the CLI creates.

Each verb names the kinds it takes and how a spec is checked locally (the operator's pydantic
kinds); the document checks and their messages are shared, so a bad file gets the same answer
from `endpoint`, `batch` and `pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import yaml

from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION


def read_manifests(
    text: str,
    namespace: str,
    kinds: Sequence[str],
    check: Callable[[str, Mapping[str, Any], str], object],
    generate_name: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The documents of `text`, each of one of `kinds` and placed in `namespace` when it names
    none; `check(kind, spec, name)` raises CliError for a bad spec. Kinds in `generate_name`
    may use metadata.generateName instead of a name."""
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise CliError(f"not valid YAML: {exc}") from exc
    if not docs:
        raise CliError("the file holds no objects")
    for doc in docs:
        kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        if not isinstance(doc, dict) or kind not in kinds:
            raise CliError(f"expected kind {' or '.join(kinds)}, got {kind!r}")
        if doc.get("apiVersion") != API_VERSION:
            raise CliError(f"expected apiVersion {API_VERSION}, got {doc.get('apiVersion')!r}")
        meta = doc.setdefault("metadata", {})
        if not (meta.get("name") or (kind in generate_name and meta.get("generateName"))):
            raise CliError(f"every {kind} needs metadata.name")
        meta.setdefault("namespace", namespace)
        check(str(kind), doc.get("spec") or {}, meta.get("name") or meta["generateName"])
    return docs
