"""The one error the step programs raise: its message names the input or output at fault and
becomes the step's status message, so it must read well on its own."""


class StepError(Exception):
    """An input or output that breaks the step contract (missing, unsafe, malformed)."""
