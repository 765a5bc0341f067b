"""The `mlkube` CLI (a regular package, so import-linter checks it like the rest)."""
