"""Pure decisions: conditions, diffs, rollout steps, DAG scheduling. No I/O, no clock."""
