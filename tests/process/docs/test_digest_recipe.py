"""docs/artifact-digest.md's shell recipe, run as written on its worked example, prints the
digest the docs show and `compute_digest` computes (issue 18: every printed command is run).
The block is a pipeline spanning lines, so it runs as one script rather than line by line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from mlkube.storage import compute_digest
from support.shell_blocks import clean_env, fenced_block

REPO = Path(__file__).resolve().parents[3]


def test_the_documented_recipe_prints_the_documented_digest(tmp_path: Path) -> None:
    block = fenced_block((REPO / "docs" / "artifact-digest.md").read_text(), "# ")
    documented = re.search(r"^# ([0-9a-f]{64})  -$", block, re.M)
    assert documented, "the block shows the digest it prints"
    model = tmp_path / "model"  # the worked example the docs describe
    (model / "data").mkdir(parents=True)
    (model / "MLmodel").write_bytes(b"flavors: {}\n")
    (model / "data" / "model.pkl").write_bytes(b"abc")
    run = subprocess.run(["bash", "-c", block], cwd=tmp_path, env=clean_env(), text=True,
                         capture_output=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == documented.group(1)
    assert compute_digest(model.as_uri()).digest == f"sha256:{documented.group(1)}"
