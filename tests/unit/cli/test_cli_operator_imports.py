"""`mlkube operator` parses only its own group: the user-facing groups (every API model, view
and builder they pull in) would cost the long-running operator process ~13 MiB of RSS."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from mlkube.cli.main import build_parser
args = build_parser(operator_only=True).parse_args(["operator", "--standalone"])
assert args.group == "operator" and args.standalone
loaded = [m for m in ("mlkube.cli.model", "mlkube.cli.endpoint", "mlkube.cli.batch",
                      "mlkube.cli.pipeline", "mlkube.cli.dev", "mlkube.api.endpoint")
          if m in sys.modules]
print(",".join(loaded))
"""


def test_operator_parser_imports_no_user_groups() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_full_parser_still_has_every_group() -> None:
    from mlkube.cli.main import build_parser

    parser = build_parser()
    for argv in (["model", "--help"], ["endpoint", "--help"], ["operator", "--help"]):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # --help exits 0 once the group parsed
            assert exc.code == 0
