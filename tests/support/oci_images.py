"""Small images and wheels made in tests: base images pushed with mlkube.oci, tiny wheels.

Nothing is downloaded: a base image is a few files in one or two layers, a wheel is a zip
with METADATA, WHEEL and RECORD written here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from mlkube.oci import Client, Reference, parse, sha256_digest
from mlkube.oci import mediatypes as mt


def tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip layer of `files` (path -> content); returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), sha256_digest(plain)


def layer_files(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {m.name: m for m in tar.getmembers()}


def layer_content(blob: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def push_image(
    client: Client,
    ref: str,
    layers: list[dict[str, bytes]],
    *,
    env: list[str] | None = None,
    docker: bool = False,
    architecture: str = "amd64",
) -> Reference:
    """Push a base image (OCI, or Docker v2 with `docker`) under `ref`; returns it pinned."""
    target = parse(ref)
    manifest_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    descriptors, diff_ids = [], []
    for files in layers:
        blob, diff_id = tar_gz(files)
        digest = sha256_digest(blob)
        client.upload_blob(target, digest, blob)
        descriptors.append(
            {"mediaType": mt.layer_type_for(manifest_type), "digest": digest, "size": len(blob)}
        )
        diff_ids.append(diff_id)
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin"], "Labels": {"base": "1"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "test"} for _ in layers],
    }
    config_raw = json.dumps(config).encode()
    config_digest = sha256_digest(config_raw)
    client.upload_blob(target, config_digest, config_raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
            "digest": config_digest,
            "size": len(config_raw),
        },
        "layers": descriptors,
    }
    digest = client.put_manifest(target, json.dumps(manifest).encode(), manifest_type)
    return target.with_digest(digest)


def push_index(client: Client, ref: str, images: dict[str, Reference]) -> Reference:
    """An OCI index under `ref` over per-architecture images already in the repository."""
    target = parse(ref)
    entries = []
    for arch, image in images.items():
        manifest = client.get_manifest(image)
        entries.append(
            {
                "mediaType": manifest.media_type,
                "digest": manifest.digest,
                "size": len(manifest.raw),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    return target.with_digest(client.put_manifest(target, raw.encode(), mt.OCI_INDEX))


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(
    dest: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()
) -> Path:
    """A pure-Python wheel `name-version-py3-none-any.whl` in `dest` holding `files`."""
    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    contents = {
        **{path: text.encode() for path, text in files.items()},
        f"{dist}.dist-info/METADATA": meta.encode(),
        f"{dist}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: mlkube-test\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in contents.items())
    record += f"{dist}.dist-info/RECORD,,\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist}.dist-info/RECORD", record)
    return wheel
