"""The hook for built-in steps (registerModel, evaluate, deploy, batch): docs/pipelines.md §4.

Built-in steps run in the operator, not in pods. The controller calls a `BuiltinRunner` for
each ready built-in step on every pass until it answers done or failed; the runner is
level-based itself (deterministic object names, create → 409 → adopt). Without a runner the
step stays Pending with a message saying so.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol

from mlkube.api.pipeline_step import Step
from mlkube.controllers.kube import Kube
from mlkube.controllers.pipeline_steps import RunContext

NOT_IMPLEMENTED = "built-in step type {type} is not implemented in this operator"


class BuiltinRunner(Protocol):
    def __call__(
        self,
        kube: Kube,
        run: Mapping[str, Any],
        step: Mapping[str, Any],
        upstream: Mapping[str, Any],
        now: datetime.datetime,
    ) -> Any: ...


def run_builtin_step(
    ctx: RunContext, step: Step, obj: dict[str, Any], runner: BuiltinRunner | None
) -> None:
    st = ctx.steps[step.name]
    if runner is None:
        st["phase"] = "Pending"
        st["message"] = NOT_IMPLEMENTED.format(type=step.type)
        return
    raise NotImplementedError  # wired once the built-in steps land
