"""Pure decisions: conditions, admission stamps, endpoint changes, drift, the diff-base.

No I/O, no clock.
"""
