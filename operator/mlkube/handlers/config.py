"""The operator's configuration, read from the environment once per process.

Builders take the resulting frozen `OperatorConfig` as an argument; this is the only place that
looks at `os.environ` for it (the Helm chart sets the variables on the operator Deployment).
"""

from __future__ import annotations

import functools
import os

from mlkube.builders.operator_config import OperatorConfig, parse_operator_config


@functools.cache
def operator_config() -> OperatorConfig:
    return parse_operator_config(os.environ)
