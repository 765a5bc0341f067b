"""Small Pipeline specs for the pure pipeline tests: a step is a dict, a spec a list of them."""

from __future__ import annotations

from typing import Any

from mlkube.api.pipeline import PipelineSpec

IMAGE = "registry.example/train@sha256:" + "ab" * 32


def container(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    """A container step depending on `deps` (dependsOn)."""
    return {"name": name, "image": IMAGE, "dependsOn": list(deps), **fields}


def consumer(name: str, source: str, output: str = "out", **fields: Any) -> dict[str, Any]:
    """A container step reading `source`'s artifact output (a reference, not just ordering)."""
    return {
        "name": name,
        "image": IMAGE,
        "inputs": [{"name": "data", "fromStep": {"step": source, "output": output}}],
        **fields,
    }


def pipeline(*steps: dict[str, Any], **fields: Any) -> PipelineSpec:
    return PipelineSpec.model_validate({"steps": list(steps), **fields})
