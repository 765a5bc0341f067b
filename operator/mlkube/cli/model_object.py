"""Pure pieces of `mlkube model register`: names, tags, framework inference, the Model object.

No I/O besides looking at a local path (framework inference, the entrypoint check), so tests
compare literal dicts and the same builder can produce expected objects in integration tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.model import FRAMEWORKS, ModelSpec
from mlkube.builders.pipeline_register import model_object_name
from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION, GROUP, LABEL_MODEL, LABEL_VERSION

KIND: Final = "Model"
PLURAL: Final = "models"
SKLEARN_SUFFIXES: Final = (".pkl", ".pickle", ".joblib")
ONNX_SUFFIXES: Final = (".onnx",)
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
MAX_LABEL: Final = 63


def check_model_name(name: str) -> str:
    """spec.modelName must be a DNS label; suggest the closest valid name otherwise."""
    if len(name) <= MAX_LABEL and _DNS_LABEL.match(name):
        return name
    suggestion = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_LABEL].strip("-")
    hint = f"; try {suggestion!r}" if suggestion else ""
    raise CliError(
        f"model name {name!r} is not a DNS label (lowercase letters, digits and '-', "
        f"at most {MAX_LABEL} characters){hint}"
    )


def check_version(version: str) -> str:
    """Versions become the mlkube.dev/version label, so they follow label-value rules."""
    if version and len(version) <= MAX_LABEL and _LABEL_VALUE.match(version):
        return version
    raise CliError(
        f"version {version!r} is not a valid label value (letters, digits, '-', '_', '.', "
        f"starting and ending with a letter or digit, at most {MAX_LABEL} characters)"
    )


def object_name(model_name: str, version: str) -> str:
    """`<name>-v<version>` as a DNS label (the operator's pipelines name Models the same way)."""
    return model_object_name(model_name, version)


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """`k=v` pairs into labels; mlkube.dev/ keys are reserved for the registry itself."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"tag {pair!r} must look like key=value")
        _check_label_key(key)
        if key.startswith(GROUP + "/") or key.split("/")[0].endswith("." + GROUP):
            raise CliError(f"tag key {key!r} uses the reserved prefix {GROUP}/")
        if len(value) > MAX_LABEL or not _LABEL_VALUE.match(value):
            raise CliError(f"tag value {value!r} for {key!r} is not a valid label value")
        if key in tags and tags[key] != value:
            raise CliError(f"tag {key!r} given twice with different values")
        tags[key] = value
    return tags


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    valid_prefix = not prefix or (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix))
    if not (valid_prefix and len(name) <= MAX_LABEL and _LABEL_NAME.match(name)):
        raise CliError(f"tag key {key!r} is not a valid label key ([prefix/]name)")


def infer_framework(path: str) -> str | None:
    """sklearn for .pkl/.joblib, onnx for .onnx, mlflow for a folder with MLmodel; a folder
    whose top-level model files are all of one kind gets that kind; None when unsure."""
    if not os.path.isdir(path):
        return _framework_of_file(path.split("?")[0].rstrip("/"))
    names = os.listdir(path)
    if "MLmodel" in names:
        return "mlflow"
    kinds = {_framework_of_file(name) for name in names} - {None}
    return kinds.pop() if len(kinds) == 1 else None


def check_entrypoint(path: str, entrypoint: str) -> None:
    """The scoring script must be inside the uploaded folder, or the server cannot load it."""
    if not os.path.isdir(path):
        raise CliError("--entrypoint needs a folder artifact that contains the script")
    if ".." in entrypoint.split("/") or entrypoint.startswith("/"):
        raise CliError(f"--entrypoint {entrypoint!r} must be a relative path inside {path!r}")
    if not os.path.isfile(os.path.join(path, *entrypoint.split("/"))):
        raise CliError(f"--entrypoint {entrypoint!r} not found inside {path!r}")


def _framework_of_file(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(SKLEARN_SUFFIXES):
        return "sklearn"
    if lowered.endswith(ONNX_SUFFIXES):
        return "onnx"
    return None


def build_model_object(
    *,
    model_name: str,
    version: str,
    framework: str,
    artifact_uri: str,
    digest: str,
    namespace: str,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    entrypoint: str | None = None,
    baseline: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The Model manifest the CLI creates (pure); baseline is (profile uri, digest)."""
    spec: dict[str, Any] = {
        "modelName": model_name,
        "version": version,
        "framework": framework,
        "artifact": {"uri": artifact_uri, "digest": digest},
    }
    if entrypoint is not None:
        spec["entrypoint"] = {"path": entrypoint}
    if description:
        spec["description"] = description
    if baseline is not None:
        spec["baseline"] = {"uri": baseline[0], "digest": baseline[1]}
    labels = {**(tags or {}), LABEL_MODEL: model_name, LABEL_VERSION: version}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": object_name(model_name, version),
            "namespace": namespace,
            "labels": labels,
        },
        "spec": spec,
    }


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Check the spec with the API's pydantic model so errors show before any API call."""
    if spec.get("framework") not in FRAMEWORKS:
        raise CliError(
            f"unknown framework {spec.get('framework')!r}: choose one of {', '.join(FRAMEWORKS)}"
        )
    try:
        ModelSpec.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(part) for part in err['loc'])}: {_message(err['msg'])}"
            if err["loc"]
            else _message(err["msg"])
            for err in exc.errors()
        )
        raise CliError(f"invalid Model: {problems}") from exc


def _message(text: str) -> str:
    # pydantic prefixes validator messages with "Value error, "; users need only the reason.
    return text.removeprefix("Value error, ")
