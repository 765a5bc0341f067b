"""mlkube's API: pydantic models per kind, the single source of truth for the CRDs.

- `common`, `markers`: shared building blocks and the CEL / list-map declarations.
- `model`, `endpoint`, `batch`, `batch_job`: the kinds; `kinds.KINDS` is the registry
  `hack/generate` publishes.
- `crdgen`, `structural`: pure CRD generation and structural-schema checks.
- `render`, `reference`, `samples`: generated files as text; `generate` writes and verifies them.

Pure on purpose (no Kubernetes client, no kopf): builders, the CLI and tests import it freely.
Nothing is re-exported here so importing one module does not import every kind.
"""
