"""The content-addressed key of an Environment build (docs/environments.md §3).

Two builds with the same key make the same image, so the operator reuses instead of
rebuilding: another Ready Environment with the key, the registry tag `build-<key32>`, or the
running Job `envbuild-<key20>`. The key therefore covers exactly what changes the result
(base digest, normalised requirements, parsed conda file, apt packages, file contents, ENV,
the packaged model's digest, the pip/apt sources that resolve them, the build tools'
version) and nothing that does not (comments, whitespace, order, the Environment's name).
Pure: the same inputs give the same key on every operator.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from mlkube.envbuild import contract as tools

# The build tools' version (bumped when they change what they put in an image): part of
# every key, so a new version rebuilds instead of reusing.
ENVBUILD_VERSION: Final = tools.ENVBUILD_VERSION
DEFAULT_FILE_MODE: Final = 0o644
_COMMENT: Final = re.compile(r"(^|\s+)#.*$")
_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_SEPARATORS: Final = re.compile(r"[-_.]+")
_DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_CONDA_NAME: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$")
# Conda packages the base brings anyway (the tools skip them too: mlkube.envbuild.conda).
_CONDA_IGNORED: Final = frozenset({"pip", "setuptools", "wheel"})


class EnvironmentKeyError(ValueError):
    """A build input that cannot be normalised (its message names the input)."""


@dataclass(frozen=True)
class PipSettings:
    """The operator's pip configuration (MLKUBE_BUILD_PIP_*)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    trusted_hosts: tuple[str, ...] = ()

    def result_changing(self) -> dict[str, Any]:
        """What decides which distributions pip picks (trusted hosts only relax TLS)."""
        return {
            "indexUrl": self.index_url,
            "extraIndexUrls": list(self.extra_index_urls),
            "findLinks": list(self.find_links),
            "noIndex": self.no_index,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.result_changing(), "trustedHosts": list(self.trusted_hosts)}


@dataclass(frozen=True)
class CondaSpec:
    """What mlkube honours of an environment.yml (§2.4): the Python pin, other conda packages
    (which fail the build, by name), the pip list (installed like `pip`)."""

    python: str | None = None
    packages: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "packages": list(self.packages), "pip": list(self.pip)}

    def document(self) -> dict[str, Any]:
        """The normalised environment.yml as the build tools read it (`dependencies` only)."""
        deps: list[Any] = []
        if self.python:
            pin = self.python
            deps.append("python" + (pin if pin[0] in "<>=!~" else "=" + pin))
        deps.extend(self.packages)
        if self.pip:
            deps.append({"pip": list(self.pip)})
        return {"dependencies": deps}


@dataclass(frozen=True)
class BuildFile:
    path: str
    content: str
    mode: int = DEFAULT_FILE_MODE


@dataclass(frozen=True)
class BuildInputs:
    """Everything a build depends on, resolved (base and model by digest)."""

    base_digest: str
    pip: tuple[str, ...] = ()  # normalised (normalise_requirements)
    conda: CondaSpec | None = None
    apt: tuple[str, ...] = ()
    files: tuple[BuildFile, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    model_digest: str | None = None
    pip_settings: PipSettings = field(default_factory=PipSettings)
    apt_sources: tuple[str, ...] = ()


def canonical_name(name: str) -> str:
    """PEP 503: lower case, runs of `-`, `_`, `.` become one `-`."""
    return _SEPARATORS.sub("-", name).lower()


def _join_continuations(lines: Iterable[str]) -> list[str]:
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def normalise_requirement(line: str) -> str | None:
    """One requirement line as a canonical string, or None for a blank/comment line.

    `Foo_Bar [X, y] >= 1.0 , <2 ; python_version < "3.12"  # why` →
    `foo-bar[x,y]<2,>=1.0; python_version < "3.12"`. Option lines (`--find-links …`) keep
    their words with single spaces; URL requirements (`name @ url`) keep the URL as is.
    """
    text = _COMMENT.sub("", line).strip()
    if not text:
        return None
    if text.startswith("-"):
        return " ".join(text.split())
    match = _NAME.match(text)
    if match is None:
        raise EnvironmentKeyError(f"pip requirement {line.strip()!r} does not start with a name")
    name, extras, rest = match.groups()
    out = canonical_name(name)
    if extras:
        names = {canonical_name(e.strip()) for e in extras[1:-1].split(",") if e.strip()}
        out += "[" + ",".join(sorted(names)) + "]" if names else ""
    rest = rest.strip()
    if rest.startswith("@"):
        url, _, marker = rest[1:].partition(" ;")
        out += " @ " + url.strip()
        return out + ("; " + " ".join(marker.split()) if marker.strip() else "")
    specifier, _, marker = rest.partition(";")
    parts = sorted(p for p in ("".join(s.split()) for s in specifier.split(",")) if p)
    out += ",".join(parts)
    if marker.strip():
        out += "; " + " ".join(marker.split())
    return out


def normalise_requirements(lines: Iterable[str]) -> tuple[str, ...]:
    """Requirement lines (a list or a requirements.txt split into lines), normalised, without
    duplicates, sorted: order and comments do not change what pip installs."""
    pieces = [piece for line in lines for piece in str(line).splitlines()]
    found = {normalise_requirement(line) for line in _join_continuations(pieces)}
    return tuple(sorted(line for line in found if line is not None))


def parse_conda(text: str) -> CondaSpec:
    """An environment.yml's dependencies: `python=3.11` → the pin, pip/setuptools/wheel dropped, the
    `pip:` list normalised, other packages kept (canonical, sorted) for the build to refuse."""
    try:
        document = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise EnvironmentKeyError(f"conda: not valid YAML: {exc}") from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise EnvironmentKeyError("conda: the environment file must be a mapping")
    deps = document.get("dependencies") or []
    if not isinstance(deps, list):
        raise EnvironmentKeyError("conda: dependencies must be a list")
    python: str | None = None
    packages: set[str] = set()
    pip: list[str] = []
    for dep in deps:
        if isinstance(dep, dict):
            if set(dep) != {"pip"} or not isinstance(dep["pip"], list):
                raise EnvironmentKeyError(
                    f"conda: dependency {dep!r} is not a package or a {{pip: [...]}} list"
                )
            pip.extend(str(line) for line in dep["pip"])
            continue
        spec = "".join(str(dep).split())
        match = _CONDA_NAME.match(spec.split("::")[-1])
        if match is None:
            raise EnvironmentKeyError(f"conda: dependency {dep!r} is not a package spec")
        name, version = canonical_name(match.group(1)), match.group(2)
        if name == "python":
            python = version.lstrip("=") or None
        elif name not in _CONDA_IGNORED:
            packages.add(name + version)
    return CondaSpec(
        python=python, packages=tuple(sorted(packages)), pip=normalise_requirements(pip)
    )


def _digest(value: str, what: str) -> str:
    if not _DIGEST.match(value):
        raise EnvironmentKeyError(f"{what} {value!r} is not a sha256:<64 hex> digest")
    return value


def key_document(inputs: BuildInputs) -> dict[str, Any]:
    """The JSON the key hashes (pip/apt sources only when something uses them, so changing
    the mirror does not rebuild environments that install nothing from it)."""
    uses_pip = bool(inputs.pip or (inputs.conda and inputs.conda.pip))
    return {
        "builder": ENVBUILD_VERSION,
        "base": _digest(inputs.base_digest, "base digest"),
        "pip": sorted(set(inputs.pip)),
        "conda": inputs.conda.to_json() if inputs.conda else None,
        "apt": sorted({p.strip() for p in inputs.apt if p.strip()}),
        "files": sorted(
            [f.path, f.mode, "sha256:" + hashlib.sha256(f.content.encode()).hexdigest()]
            for f in inputs.files
        ),
        "env": sorted([name, value] for name, value in inputs.env),
        "model": _digest(inputs.model_digest, "model digest") if inputs.model_digest else None,
        "pipSettings": inputs.pip_settings.result_changing() if uses_pip else None,
        "aptSources": list(inputs.apt_sources) if inputs.apt else None,
    }


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_key(inputs: BuildInputs) -> str:
    """`sha256:<hex>` of the canonical JSON of `key_document`."""
    return "sha256:" + hashlib.sha256(canonical_json(key_document(inputs))).hexdigest()


def probe_key(image_digest: str) -> str:
    """The key of the probe of an `image:` environment: one probe per image and tools."""
    document = {"builder": ENVBUILD_VERSION, "probe": _digest(image_digest, "image digest")}
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()


def key_hex(key: str, length: int) -> str:
    """The first `length` hex characters of a key (names: 20, tags: 32, labels: 63)."""
    return _digest(key, "build key").removeprefix("sha256:")[:length]


def build_tag(key: str) -> str:
    """The registry tag a build pushes and reuse looks for: `build-<first 32 hex>`."""
    return tools.build_tag(_digest(key, "build key"))


def inputs_from_spec(
    build: Mapping[str, Any],
    *,
    base_digest: str,
    model_digest: str | None = None,
    pip_settings: PipSettings | None = None,
    apt_sources: tuple[str, ...] = (),
) -> BuildInputs:
    """BuildInputs from an Environment's `spec.build` (a mapping as the API stores it) and the
    digests the controller resolved."""
    conda = build.get("conda")
    files = tuple(
        BuildFile(
            path=str(f["path"]),
            content=str(f.get("content") or ""),
            mode=int(f["mode"]) if f.get("mode") is not None else DEFAULT_FILE_MODE,
        )
        for f in build.get("files") or []
    )
    return BuildInputs(
        base_digest=base_digest,
        pip=normalise_requirements(build.get("pip") or []),
        conda=parse_conda(str(conda)) if conda else None,
        apt=tuple(sorted({str(p).strip() for p in build.get("apt") or [] if str(p).strip()})),
        files=files,
        env=tuple((str(e["name"]), str(e.get("value") or "")) for e in build.get("env") or []),
        model_digest=model_digest,
        pip_settings=pip_settings or PipSettings(),
        apt_sources=apt_sources,
    )
