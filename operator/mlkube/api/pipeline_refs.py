"""Whole-pipeline checks of a `Pipeline` spec: names, references, cycles and templates.

The API server's CEL rules catch what CEL can (references exist, no self-dependency); a cycle
or an unknown template placeholder needs a walk over the whole step list, so they are checked
here, by pydantic, for the CLI, the operator (Pipeline Ready/Stalled) and the run snapshot.
Every function returns the problems it found as messages (empty when fine).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from mlkube.api.pipeline_step import OutputType, Step, StepOutputRef

# {{parameters.NAME}}, {{inputs.NAME}}, {{outputs.NAME}}, {{run.name}}, {{run.uid}}; spaces
# inside the braces are allowed. reconcile renders with the same pattern.
PLACEHOLDER_PATTERN = r"\{\{\s*([^{}]*?)\s*\}\}"
PLACEHOLDER_NAME_PATTERN = r"^(parameters|inputs|outputs)\.([A-Za-z_][-A-Za-z0-9_]*)$"
RUN_PLACEHOLDERS = ("run.name", "run.uid")

# The output types each kind of reference accepts (None: any).
_WANTED: Mapping[str, OutputType | None] = {
    "inputs": None,
    "registerModel.artifact": "artifact",
    "registerModel.metricsFrom": "metrics",
    "registerModel.baseline": "artifact",
    "evaluate.metrics": "metrics",
    "evaluate.compareWith.from": "metrics",
    "batch.input.fromStep": "artifact",
}


def placeholders(text: str) -> list[str]:
    """The placeholder bodies in `text`, e.g. ['parameters.lr', 'run.name']."""
    return re.findall(PLACEHOLDER_PATTERN, text)


def unknown_placeholders(
    text: str, parameters: Iterable[str], inputs: Iterable[str], outputs: Iterable[str]
) -> list[str]:
    """The placeholders of `text` that name nothing known, as written ({{...}})."""
    known = {"parameters": set(parameters), "inputs": set(inputs), "outputs": set(outputs)}
    bad = []
    for body in placeholders(text):
        match = re.fullmatch(PLACEHOLDER_NAME_PATTERN, body)
        ok = body in RUN_PLACEHOLDERS or (
            match is not None and match.group(2) in known[match.group(1)]
        )
        if not ok:
            bad.append("{{" + body + "}}")
    return bad


def template_errors(steps: Sequence[Step], parameters: Iterable[str]) -> list[str]:
    """Unknown placeholders in args, env values and registerModel.version, per step."""
    params = set(parameters)
    errors = []
    for step in steps:
        inputs, outputs = [i.name for i in step.inputs], [o.name for o in step.outputs]
        texts = [*step.args, *(e.value for e in step.env)]
        if step.register_model:
            texts.append(step.register_model.version)
        bad = [b for t in texts for b in unknown_placeholders(t, params, inputs, outputs)]
        if bad:
            errors.append(
                f"step {step.name}: unknown template placeholders {', '.join(dict.fromkeys(bad))}"
                " (known: {{parameters.NAME}}, {{inputs.NAME}}, {{outputs.NAME}} of the step's"
                " own inputs and outputs, {{run.name}}, {{run.uid}})"
            )
    return errors


def reference_errors(steps: Sequence[Step], parameters: Iterable[str]) -> list[str]:
    """Missing steps, outputs and parameters, wrong output types, self-references."""
    by_name = {s.name: s for s in steps}
    params = set(parameters)
    errors = []
    for step in steps:
        where = f"step {step.name}"
        for dep in step.depends_on:
            if dep == step.name:
                errors.append(f"{where}: dependsOn names the step itself")
            elif dep not in by_name:
                errors.append(f"{where}: dependsOn names unknown step {dep}")
        for inp in step.inputs:
            if inp.from_parameter is not None and inp.from_parameter not in params:
                errors.append(
                    f"{where}: input {inp.name} names unknown parameter {inp.from_parameter}"
                )
        for field, ref in step.references():
            target = by_name.get(ref.step)
            if ref.step == step.name:
                errors.append(f"{where}: {field} refers to the step itself")
            elif target is None:
                errors.append(f"{where}: {field} names unknown step {ref.step}")
            elif isinstance(ref, StepOutputRef):
                errors += _output_errors(where, field, target, ref)
            elif field == "deploy.model" and target.type != "registerModel":
                errors.append(f"{where}: deploy.model.step {ref.step} is not a registerModel step")
    return errors


def _output_errors(where: str, field: str, target: Step, ref: StepOutputRef) -> list[str]:
    output = target.output(ref.output)
    if output is None:
        return [f"{where}: {field} names output {ref.output} that step {ref.step} does not declare"]
    wanted = next((t for k, t in _WANTED.items() if field.startswith(k)), None)
    if wanted is not None and output.type != wanted:
        return [
            f"{where}: {field} needs a {wanted} output; {ref.step}.{ref.output} is {output.type}"
        ]
    return []


def find_cycle(steps: Sequence[Step]) -> list[str] | None:
    """A dependency cycle as step names (first repeated last), or None; unknown names ignored."""
    graph = {s.name: [d for d in s.dependencies() if d != s.name] for s in steps}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in graph.get(name, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep in graph and dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def duplicates(names: Iterable[str]) -> list[str]:
    """Names that occur more than once, in first-seen order."""
    seen: set[str] = set()
    dup: dict[str, None] = {}
    for name in names:
        if name in seen:
            dup[name] = None
        seen.add(name)
    return list(dup)
