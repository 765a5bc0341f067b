"""Data drift for online deployments: baseline profiles, drift statistics and the sidecar.

`profile` builds a versioned baseline from training data, `methods` computes the statistics
over the profile's frozen bins, `engine` keeps count-based sliding windows of live samples and
`sidecar` serves them over HTTP next to the model server. See docs/drift.md.
"""
