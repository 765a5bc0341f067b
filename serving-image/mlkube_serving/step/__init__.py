"""`python -m mlkube_serving step inputs|outputs`: the two mlkube containers of a pipeline step pod.

`inputs` (init container) downloads and verifies the step's artifact inputs; `outputs` (beside
the user's `main` container) waits for it to end, then uploads and digests its outputs and
reports a summary. The contract with the operator is mlkube.builders.pipeline_contract and
pipeline_summary; docs/pipelines.md §2 describes the pod.
"""
