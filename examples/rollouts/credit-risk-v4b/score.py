"""A broken credit-risk candidate (the rollout demo, docs/rollouts.md §8): it loads, passes its
health probe, and fails every prediction, as a model whose code does not match its input would.
The model server answers HTTP 500; the router counts it against the candidate."""


def init() -> None:
    pass


def run(raw_data: str) -> object:
    raise RuntimeError("feature 'income_ratio' missing: this build expects 21 features")
