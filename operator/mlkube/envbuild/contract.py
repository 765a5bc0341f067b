"""What the build pod and the operator agree on: versions, names, labels, report fields.

The operator (build key, reuse by tag, reading results) and the build tools import this; keep
it stdlib-only and free of logic beyond encoding.
"""

from __future__ import annotations

import base64
import gzip
import json
import os

# Bump when the tools change what an identical input produces (part of the build key).
ENVBUILD_VERSION = "1"
TAG_PREFIX = "build-"
LABEL_BUILD_KEY = "dev.mlkube.build-key"
LABEL_ENVIRONMENT = "dev.mlkube.environment"
LABEL_PACKAGES = "dev.mlkube.packages"
LABEL_PYTHON = "dev.mlkube.python"
LABEL_SERVING = "dev.mlkube.serving"  # compact JSON {compatible, version, message}
LABEL_PACKAGED_MODEL = "dev.mlkube.packaged-model"  # compact JSON {name, artifactDigest}
ENV_ENVIRONMENT = "MLKUBE_ENVIRONMENT"
MODEL_DIR = "/opt/mlkube/model"
REPORT_FILE = "report.json"  # in the work volume: install.py -> push.py
MODEL_REPORT_FILE = "model.json"  # in the work volume: fetch_model -> push.py
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # the kubelet truncates termination messages beyond 4 KiB
PACKAGES_KEY = "mlkubePackages"  # the stdout line {"mlkubePackages": [...]} of the push step


def write_termination(path: str, message: str) -> None:
    """The container's verdict for the operator (best effort: the line is in the log too);
    outside a pod (no /dev/termination-log) only an explicitly given path is written."""
    if os.path.exists(path) or path != TERMINATION_LOG:
        try:
            with open(path, "w") as handle:
                handle.write(message)
        except OSError:
            pass


def build_tag(build_key: str) -> str:
    """`build-<first 32 hex>` of a `sha256:<hex>` build key."""
    return TAG_PREFIX + build_key.removeprefix("sha256:")[:32]


def encode_packages(packages: list[str]) -> str:
    """The image label value: gzip (mtime 0, reproducible) + base64 of the JSON list."""
    raw = json.dumps(list(packages), separators=(",", ":")).encode()  # order as reported
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_packages(label: str) -> list[str]:
    return [str(p) for p in json.loads(gzip.decompress(base64.b64decode(label)))]


def packages_line(packages: list[str]) -> str:
    return json.dumps({PACKAGES_KEY: packages}, separators=(",", ":"))


def find_packages(log: str) -> list[str] | None:
    """The package list from the push step's log (its last packages line), or None."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line.startswith("{") and PACKAGES_KEY in line:
            try:
                packages = json.loads(line)[PACKAGES_KEY]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(packages, list) and all(isinstance(p, str) for p in packages):
                return packages
    return None
