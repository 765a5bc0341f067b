"""Pure builders: spec (+ config) -> child manifests and status. No client, clock, env or I/O."""
