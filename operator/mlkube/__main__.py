"""`python -m mlkube ...` is the `mlkube` CLI (e.g. `python -m mlkube operator`)."""

from mlkube.cli.main import main

raise SystemExit(main())
