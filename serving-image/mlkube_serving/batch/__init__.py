"""The batch scorer (`python -m mlkube_serving batch ...`): plan, score, merge.

One package for the three steps of a BatchJob's pods (docs/batch-endpoints.md): `plan` lists
the input once, `score` runs one index's mini-batches with worker processes and writes one
verified part per mini-batch, `merge` concatenates the parts into the output file. It shares
with the operator only `mlkube.contract`, `mlkube.storage` and the pure planner modules.
"""
