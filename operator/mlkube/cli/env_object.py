"""Pure pieces of `mlkube env create`: references, names, requirement and file inputs, and the
Environment object (docs/environments.md §1, §7).

No I/O besides reading the local files the flags name, so tests compare literal dicts and the
integration tests build their expected objects with the same functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from pydantic import ValidationError

from mlkube.api.environment import EnvironmentSpec
from mlkube.cli.errors import CliError
from mlkube.contract import (
    API_VERSION,
    CURATED_ENVIRONMENT_PREFIX,
    KIND_ENVIRONMENT,
    LABEL_ENVIRONMENT,
    LABEL_VERSION,
)
from mlkube.environments.curated import is_curated as is_curated  # the verbs import it here

KIND: Final = KIND_ENVIRONMENT
CURATED_PREFIX: Final = CURATED_ENVIRONMENT_PREFIX
MAX_PIP_LINES: Final = 256
MAX_FILES_BYTES: Final = 64 * 1024
DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A label value, as the API's (and Model's) version: it becomes the mlkube.dev/version label.
VERSION_PATTERN: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# pip options a requirements file may carry that the build cannot honour: the index and
# find-links come from the operator's configuration (§2.3), includes are not uploaded.
_UNSUPPORTED_OPTIONS: Final = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable",
                               "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                               "--no-index", "--trusted-host")  # fmt: skip


def check_name(name: str) -> str:
    """spec.environmentName: a DNS label, `mlkube-` reserved for the curated environments."""
    if not (len(name) <= 63 and DNS_LABEL.match(name)):
        raise CliError(f"environment name {name!r} is not a DNS label (lowercase letters, "
                       "digits and '-', at most 63 characters)")  # fmt: skip
    if name.startswith(CURATED_PREFIX):
        raise CliError(f"environment names starting with {CURATED_PREFIX!r} are reserved for "
                       "the curated environments (see `mlkube env list --curated`)")  # fmt: skip
    return name


def check_version(version: str) -> str:
    if VERSION_PATTERN.match(version):
        return version
    raise CliError(f"version {version!r} must start and end with a letter or digit and hold "
                   "only letters, digits, '.', '_' and '-' (at most 63 characters)")  # fmt: skip


def parse_ref(text: str) -> tuple[str, str | None]:
    """`name:version` (or `name@latest`: version None) into its parts, checked for shape."""
    name, sep, version = text.partition(":")
    if text.endswith("@latest"):
        name, sep, version = text.removesuffix("@latest"), "@", ""
    if not (sep and name and (version or sep == "@")):
        raise CliError(f"environment reference {text!r} must look like NAME:VERSION "
                       "(or NAME@latest)")  # fmt: skip
    if not (len(name) <= 63 and DNS_LABEL.match(name)):
        raise CliError(f"environment name {name!r} in {text!r} is not a DNS label")
    return name, check_version(version) if version else None


def object_name(name: str, version: str) -> str:
    """`<name>-<version>` as a valid object name (lowercase, '_' → '-'); the spec keeps the
    version as written (a DNS label + a label value always fit in 253 characters)."""
    return re.sub(r"[^a-z0-9.-]+", "-", f"{name}-{version}".lower()).strip("-.")


def requirement_lines(text: str, source: str) -> list[str]:
    """The requirement lines of a requirements.txt: comments and blank lines dropped, options
    the build cannot honour refused with the reason."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = line.split()[0].split("=", 1)[0]
        if option in _UNSUPPORTED_OPTIONS:
            raise CliError(
                f"{source}:{number}: {option!r} is not supported in an environment's "
                "requirements (the package index and find-links come from the operator's "
                "build configuration; inline included files)"
            )
        lines.append(line)
    if len(lines) > MAX_PIP_LINES:
        raise CliError(f"{source} holds {len(lines)} requirements, at most {MAX_PIP_LINES}")
    if not lines:
        raise CliError(f"{source} holds no requirements")
    return lines


def check_conda(text: str, source: str) -> str:
    """The conda file as written, after the checks the build would fail on (§2.4): a mapping
    whose dependencies are `python=…`, `pip` and a `pip:` list only."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"{source} is not valid YAML: {exc}") from exc
    deps = doc.get("dependencies") if isinstance(doc, dict) else None
    if not isinstance(deps, list):
        raise CliError(f"{source} has no `dependencies:` list")
    other = [str(dep) for dep in deps if isinstance(dep, str) and _conda_name(dep) not in
             ("python", "pip")]  # fmt: skip
    if other:
        raise CliError(
            f"{source}: conda packages {', '.join(other)} are not supported: only `python=X.Y` "
            "(it must match the base's Python) and the `pip:` list are installed; move them "
            "to the pip list or use --apt for system libraries"
        )
    return text


def _conda_name(dep: str) -> str:
    return re.split(r"[=<>!~ ]", dep.split("::")[-1], maxsplit=1)[0].strip()


def parse_file_flag(flag: str) -> tuple[str, str]:
    """`--file LOCAL:/path/in/image` into (local path, image path)."""
    local, sep, target = flag.rpartition(":")
    if not (sep and local and target.startswith("/")):
        raise CliError(f"--file {flag!r} must look like LOCAL_PATH:/absolute/path/in/image")
    if ".." in target.split("/"):
        raise CliError(f"--file {flag!r}: the image path must not contain '..'")
    return local, target


def read_files(flags: Sequence[str]) -> list[dict[str, Any]]:
    """`files` entries from --file flags: text content, mode 0755 for executables else 0644."""
    entries, total, seen = [], 0, set()
    for flag in flags:
        local, target = parse_file_flag(flag)
        if target in seen:
            raise CliError(f"--file: {target} is given twice")
        seen.add(target)
        try:
            data = open(local, "rb").read()  # noqa: SIM115 - read at once, closed by refcount
        except OSError as exc:
            raise CliError(f"cannot read {local}: {exc.strerror}") from exc
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(f"{local} is not UTF-8 text (files hold small text files; put "
                           "binaries in a package)") from exc  # fmt: skip
        total += len(data)
        mode = 0o755 if os.access(local, os.X_OK) else 0o644
        entries.append({"path": target, "content": content, "mode": mode})
    if total > MAX_FILES_BYTES:
        raise CliError(f"--file contents are {total} bytes in all, at most {MAX_FILES_BYTES}")
    return entries


@dataclass(frozen=True)
class BuildInputs:
    """What a build environment installs on its base (all optional but the base)."""

    base: str
    pip: Sequence[str] = ()
    conda: str | None = None
    apt: Sequence[str] = ()
    files: Sequence[Mapping[str, Any]] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        build: dict[str, Any] = {"base": self.base}
        if self.pip:
            build["pip"] = list(self.pip)
        if self.conda is not None:
            build["conda"] = self.conda
        if self.apt:
            build["apt"] = list(self.apt)
        if self.files:
            build["files"] = [dict(f) for f in self.files]
        if self.env:
            build["env"] = [{"name": k, "value": v} for k, v in self.env.items()]
        return build


def build_environment(
    *,
    name: str,
    version: str,
    namespace: str,
    image: str | None = None,
    build: BuildInputs | None = None,
    description: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The Environment manifest the CLI creates (pure): exactly one of `image` or `build`;
    `model` (a Model object name) packages that model into the build (§5)."""
    if (image is None) == (build is None):
        raise CliError("an environment takes exactly one of --image or a build "
                       "(--pip, --conda, --base, --apt, --file)")  # fmt: skip
    spec: dict[str, Any] = {"environmentName": name, "version": version}
    if description:
        spec["description"] = description
    if image is not None:
        spec["image"] = image
    if build is not None:
        spec["build"] = build.spec()
    if model is not None:
        spec["model"] = model
    validate_spec(spec)
    labels = {LABEL_ENVIRONMENT: name, LABEL_VERSION: version}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": object_name(name, version), "namespace": namespace,
                     "labels": labels},
        "spec": spec,
    }  # fmt: skip


def validate_spec(spec: Mapping[str, Any]) -> None:
    """The API's own checks (api/environment.py mirrors its CEL rules) before any API call."""
    try:
        EnvironmentSpec.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            (f"spec.{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "")
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise CliError(f"invalid Environment: {problems}") from exc


def reference(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec") or {}
    return f"{spec.get('environmentName', '')}:{spec.get('version', '')}"


def check_spec(kind: str, spec: Mapping[str, Any], name: str) -> None:
    """Local checks of an Environment from YAML, with the flags' messages (the API server's
    schema and CEL rules have the last word)."""
    where = f"{kind} {name}"
    for key in ("environmentName", "version"):
        if not isinstance(spec.get(key), str):
            raise CliError(f"{where}: spec.{key} must be a string (quote it: {key}: \"1\")"
                           if isinstance(spec.get(key), int | float) else
                           f"{where}: spec.{key} is required")  # fmt: skip
    try:
        check_name(spec["environmentName"])
        check_version(spec["version"])
        if bool(spec.get("image")) == (spec.get("build") is not None):
            raise CliError("set exactly one of spec.image or spec.build")
        build = spec.get("build") or {}
        if isinstance(build.get("conda"), str):
            check_conda(build["conda"], "spec.build.conda")
        if len(build.get("pip") or []) > MAX_PIP_LINES:
            raise CliError(f"spec.build.pip holds more than {MAX_PIP_LINES} requirements")
        validate_spec(spec)
    except CliError as exc:
        raise CliError(f"{where}: {exc}") from exc
