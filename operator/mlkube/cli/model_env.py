"""The environment of a model registered by `mlkube model register` (docs/environments.md §7).

An MLflow model brings its own dependencies (`requirements.txt`, `conda.yaml` next to
`MLmodel`): as in Azure ML, where "MLflow models don't require an environment definition",
register derives an Environment `<model>-env:<version>` from them on the `mlkube-mlflow`
curated base, unless `--environment N:V` names one or `--no-environment` skips it. The Model
records the environment in `spec.properties.environment`. `derive` only reads the folder;
`check_existing` and `create_derived` are the API calls around the Model's creation.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from mlkube.cli import env_object
from mlkube.cli.env_api import FIELD_MANAGER, create, find_environment
from mlkube.cli.env_curated import MLFLOW_BASE
from mlkube.cli.errors import CliError
from mlkube.cli.kube import ModelApi
from mlkube.contract import GROUP
from mlkube.k8s import Kube

REQUIREMENTS: Final = "requirements.txt"
CONDA: Final = "conda.yaml"
MLMODEL: Final = "MLmodel"
PROPERTY: Final = "environment"
# The mlkube-mlflow base serves MLflow models without MLflow (mlkube_serving.runtimes.mlflow):
# installing it would add hundreds of MB and need its whole dependency tree in the mirror.
SERVED_WITHOUT: Final = frozenset({"mlflow", "mlflow-skinny"})


@dataclass(frozen=True)
class Derived:
    """The Environment register will create, and what it left out (said to the user)."""

    body: dict[str, Any]
    source: str
    dropped: tuple[str, ...]

    @property
    def ref(self) -> str:
        return env_object.reference(self.body)


def add_register_options(register: argparse.ArgumentParser) -> None:
    which = register.add_mutually_exclusive_group()
    which.add_argument("--environment", metavar="NAME:VERSION", help="the model's environment "
                       "(default for MLflow folders: derived from their requirements.txt or "
                       "conda.yaml as <name>-env:<version>)")  # fmt: skip
    which.add_argument("--no-environment", action="store_true",
                       help="do not derive an environment for an MLflow model")  # fmt: skip


def mlflow_dir(path: str) -> Path | None:
    """The folder holding `MLmodel` (the path itself or its one subfolder that has it)."""
    root = Path(path)
    if (root / MLMODEL).is_file():
        return root
    found = sorted(root.glob(f"*/{MLMODEL}")) if root.is_dir() else []
    return found[0].parent if len(found) == 1 else None


def requirement_name(line: str) -> str:
    """The distribution name of a requirement line, normalised (PEP 503)."""
    name = re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def derive(path: str, model_name: str, version: str, namespace: str) -> Derived | None:
    """The Environment an MLflow folder asks for; None when `path` is not a local MLflow
    folder, brings no dependency file, or needs nothing beyond the base."""
    folder = mlflow_dir(path) if "://" not in path else None
    if folder is None:
        return None
    if (folder / REQUIREMENTS).is_file():
        source = str(folder / REQUIREMENTS)
        lines = env_object.requirement_lines(_read(folder / REQUIREMENTS), source)
        kept = [line for line in lines if requirement_name(line) not in SERVED_WITHOUT]
        dropped = tuple(line for line in lines if line not in kept)
        build = env_object.BuildInputs(base=MLFLOW_BASE, pip=kept) if kept else None
    elif (folder / CONDA).is_file():
        source = str(folder / CONDA)
        conda, dropped = _without_mlflow(_read(folder / CONDA), source)
        build = env_object.BuildInputs(base=MLFLOW_BASE, conda=conda) if conda else None
    else:
        return None
    if build is None:
        return None  # only mlflow itself: the base serves the model as it is
    try:
        name = env_object.check_name(f"{model_name}-env")
    except CliError as exc:
        raise CliError(f"cannot derive an environment for this MLflow model: {exc}; pass "
                       "--environment NAME:VERSION or --no-environment") from exc  # fmt: skip
    body = env_object.build_environment(
        name=name, version=env_object.check_version(version), namespace=namespace, build=build,
        description=f"derived from {Path(source).name} of MLflow model {model_name}:{version}",
    )  # fmt: skip
    return Derived(body=body, source=source, dropped=dropped)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc


def _without_mlflow(text: str, source: str) -> tuple[str | None, tuple[str, ...]]:
    """The conda file without mlflow in its pip list (None when nothing else is asked for),
    after the checks the build would fail on."""
    try:
        env_object.check_conda(text, source)
    except CliError as exc:
        raise CliError(f"cannot derive an environment: {exc}; or pass --environment "
                       "NAME:VERSION or --no-environment") from exc  # fmt: skip
    doc = yaml.safe_load(text)
    dropped: list[str] = []
    deps: list[Any] = []
    for dep in doc["dependencies"]:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            kept = [p for p in dep["pip"] if requirement_name(str(p)) not in SERVED_WITHOUT]
            dropped += [str(p) for p in dep["pip"] if p not in kept]
            if kept:
                deps.append({**dep, "pip": kept})
        else:
            deps.append(dep)
    if not any(isinstance(dep, dict) for dep in deps):
        return None, tuple(dropped)
    if not dropped:
        return text, ()  # as the user wrote it
    return yaml.safe_dump({**doc, "dependencies": deps}, sort_keys=False), tuple(dropped)


@dataclass
class Plan:
    """What register does about the environment: record `named`, or create `derived`."""

    named: str | None
    derived: Derived | None

    def check(self, api: ModelApi, namespace: str) -> dict[str, Any]:
        """Before the upload: the spec fields to add to the Model ({} when none)."""
        if not (self.named or self.derived):
            return {}
        ref = check_existing(api.kube, namespace, self.named, self.derived)
        return {"properties": {PROPERTY: ref}} if ref else {}

    def finish(self, api: ModelApi, namespace: str) -> None:
        """After the Model is created: create the derived Environment, or name the one used."""
        if self.derived is not None:
            create_derived(api.kube, namespace, self.derived)
        elif self.named is not None:
            print(f"  environment: {self.named}")


def plan(args: argparse.Namespace, framework: str, name: str, version: str) -> Plan:
    """Checked before anything is uploaded: the derived Environment is built (and its inputs
    validated) from the folder now."""
    derived = None
    if framework == "mlflow" and not (args.environment or args.no_environment):
        derived = derive(args.path, name, version, "default")
    return Plan(args.environment, derived)


def check_existing(kube: Kube, namespace: str, named: str | None,
                   derived: Derived | None) -> str | None:  # fmt: skip
    """Before anything is uploaded: the `--environment` exists (or is curated), and a derived
    one does not clash with an existing different `<model>-env:<version>`. The reference to
    record on the Model, if any."""
    if named is not None:
        if env_object.is_curated(named):
            return named
        found = find_environment(kube, namespace, named)
        if found is None:
            raise CliError(f"--environment {named}: no such Environment in {namespace} (see "
                           "`mlkube env list`, or create it with `mlkube env create`)")  # fmt: skip
        return env_object.reference(found)  # name:version, also when given an object name
    if derived is None:
        return None
    existing = find_environment(kube, namespace, derived.ref)
    if existing is not None and existing.get("spec") != derived.body["spec"]:
        raise CliError(f"Environment {derived.ref} already exists in {namespace} with other "
                       "inputs; pass --environment NAME:VERSION or --no-environment")  # fmt: skip
    return derived.ref


def create_derived(kube: Kube, namespace: str, derived: Derived) -> None:
    """Create the derived Environment (kept if an identical one exists) and say so."""
    body = {**derived.body, "metadata": {**derived.body["metadata"], "namespace": namespace}}
    if find_environment(kube, namespace, derived.ref) is not None:
        print(f"  environment: {derived.ref} (exists with the same inputs)")
        return
    obj = create(kube, body, FIELD_MANAGER)
    build = derived.body["spec"]["build"]
    what = f"{len(build['pip'])} requirements" if build.get("pip") else "its conda file"
    print(f"  environment: {derived.ref} derived from {Path(derived.source).name} ({what} on "
          f"{build['base']}): environment.{GROUP}/{obj['metadata']['name']} is building "
          f"(`mlkube env show {derived.ref}`)")  # fmt: skip
    if derived.dropped:
        print(f"  left out {', '.join(derived.dropped)}: the base serves MLflow models "
              "without MLflow")  # fmt: skip
