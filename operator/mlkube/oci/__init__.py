"""A stdlib-only OCI distribution client (docs/environments.md §2.2).

The operator resolves tags to digests and finds reusable builds with it; the build pod's push
step uploads layers, configs and manifests with it. Nothing here imports outside the standard
library: the build tools copy this package into images that have only Python.
"""

from mlkube.oci.auth import Credentials, load_docker_config, parse_docker_config
from mlkube.oci.client import Client
from mlkube.oci.descriptors import Descriptor, Image, Manifest, sha256_digest
from mlkube.oci.errors import (
    DigestMismatch,
    InvalidReference,
    NoMatchingPlatform,
    NotFound,
    OciError,
    RegistryError,
    RegistryUnreachable,
    Unauthorized,
)
from mlkube.oci.reference import Reference, parse

__all__ = [
    "Client",
    "Credentials",
    "Descriptor",
    "DigestMismatch",
    "Image",
    "InvalidReference",
    "Manifest",
    "NoMatchingPlatform",
    "NotFound",
    "OciError",
    "Reference",
    "RegistryError",
    "RegistryUnreachable",
    "Unauthorized",
    "load_docker_config",
    "parse",
    "parse_docker_config",
    "sha256_digest",
]
