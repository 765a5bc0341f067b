"""PLACEHOLDER until branch pstep lands its pipeline_contract (docs/pipelines.md §2): the names
the operator's step Job builder and `python -m mlkube_serving step` agree on."""

from typing import Final

WRAPPER: Final = (
    'echo $$ > /mlkube/run/main.pid; "$@"; code=$?; echo $code > /mlkube/run/exit-code; exit $code'
)
ENV_STEP: Final = "MLKUBE_STEP"
ENV_INPUTS: Final = "MLKUBE_INPUTS"
ENV_OUTPUTS: Final = "MLKUBE_OUTPUTS"
ENV_INPUT_PREFIX: Final = "MLKUBE_INPUT_"
ENV_OUTPUT_PREFIX: Final = "MLKUBE_OUTPUT_"
ENV_PARAM_PREFIX: Final = "MLKUBE_PARAM_"
INPUTS_DIR: Final = "/mlkube/inputs"
OUTPUTS_DIR: Final = "/mlkube/outputs"
RUN_DIR: Final = "/mlkube/run"
LABEL_PIPELINE_RUN: Final = "mlkube.dev/pipeline-run"
LABEL_PIPELINE_STEP: Final = "mlkube.dev/pipeline-step"
LABEL_CACHE_KEY: Final = "mlkube.dev/cache-key"
ANNOTATION_ATTEMPT: Final = "mlkube.dev/attempt"
KIND_PIPELINE_RUN: Final = "PipelineRun"
PLURAL_PIPELINE_RUNS: Final = "pipelineruns"
