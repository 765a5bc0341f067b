"""The environment build tools that run inside the build pod (docs/environments.md §2.1).

stdlib only and importable when the package directory (with `mlkube.oci`) is copied as-is into
another image: `install.py` runs in the user's base image, which has Python and nothing of
ours. Nothing here imports at package import time.
"""
