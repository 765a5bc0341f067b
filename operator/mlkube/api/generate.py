"""Write or verify the generated files: the I/O half behind `hack/generate` and `hack/verify`.

`generate` writes what `render_files` returns and removes generated files that no kind produces
any more; `verify` renders into a temporary directory and diffs against the tree, so CI fails
when someone changed a model without regenerating.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlkube.api.render import GENERATED_MARKER, MANAGED_DIRS, render_files


def find_generated(root: Path) -> set[str]:
    """Repo-relative paths of files in managed directories that carry the generated marker."""
    found = set()
    for directory in MANAGED_DIRS:
        base = root / directory
        if not base.is_dir():
            continue
        for path in base.iterdir():
            if path.is_file() and _is_generated(path):
                found.add(path.relative_to(root).as_posix())
    return found


def write_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write changed files and delete stale generated ones; returns the paths touched."""
    touched = []
    for rel, text in files.items():
        path = root / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        touched.append(rel)
    for rel in sorted(find_generated(root) - set(files)):
        (root / rel).unlink()
        touched.append(rel)
    return touched


def find_differences(root: Path, files: Mapping[str, str]) -> list[str]:
    """Unified diffs between the tree and a fresh generation (empty when up to date)."""
    diffs = []
    with tempfile.TemporaryDirectory(prefix="mlkube-verify-") as tmp:
        fresh_root = Path(tmp)
        write_files(fresh_root, files)
        for rel in sorted(set(files) | find_generated(root)):
            fresh = fresh_root / rel
            current = root / rel
            want = fresh.read_text(encoding="utf-8").splitlines(True) if fresh.is_file() else []
            have = current.read_text(encoding="utf-8").splitlines(True) if current.is_file() else []
            if want != have:
                diffs.append("".join(difflib.unified_diff(have, want, f"a/{rel}", f"b/{rel}")))
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlkube.api.generate", description=__doc__)
    parser.add_argument("command", choices=("generate", "verify"))
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    args = parser.parse_args(argv)
    files = render_files()
    if args.command == "generate":
        for rel in write_files(args.root, files):
            print(f"wrote {rel}")
        return 0
    diffs = find_differences(args.root, files)
    if diffs:
        sys.stdout.write("".join(diffs))
        print(f"{len(diffs)} generated file(s) are stale: run hack/generate", file=sys.stderr)
        return 1
    print(f"{len(files)} generated files are up to date")
    return 0


def _is_generated(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return GENERATED_MARKER in handle.readline()
    except (OSError, UnicodeDecodeError):
        return False


if __name__ == "__main__":
    sys.exit(main())
