#!/usr/bin/env bash
# Creates or refreshes .venv with mlkube[dev] installed in editable mode.
# Reinstalls only when pyproject.toml changes (stamp keyed by its hash), so warm runs are instant.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "venv: installing mlkube[dev] into .venv (first run downloads packages)..." >&2
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip wheel
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
rm -f .venv/.installed-*
touch "$stamp"
echo "venv: ready" >&2
