"""A small OCI distribution client: manifests (tag -> digest), blobs, uploads, mounts, pushes.

Shared by the operator (resolving tags, finding a reusable build by its tag) and the build
pod's push step. stdlib only. Plain HTTP is used only for registries listed `insecure`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterable
from typing import IO, Any

from mlkube.oci import mediatypes as mt
from mlkube.oci.auth import Credentials
from mlkube.oci.descriptors import Descriptor, Image, Manifest, sha256_digest
from mlkube.oci.errors import DigestMismatch, NoMatchingPlatform, NotFound, OciError
from mlkube.oci.reference import Reference, check_digest
from mlkube.oci.transport import Transport

CHUNK_SIZE = 64 << 20  # blobs larger than this are uploaded in PATCH chunks of this size


def _pull(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull",)


def _push(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull,push",)


class Client:
    def __init__(
        self,
        *,
        credentials: dict[str, Credentials] | None = None,
        insecure: Iterable[str] = (),
        timeout: float = 60.0,
        platform: tuple[str, str] = ("linux", "amd64"),
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.http = Transport(
            credentials=credentials or {}, insecure=frozenset(insecure), timeout=timeout
        )
        self.platform = platform
        self.chunk_size = chunk_size

    # -- manifests ---------------------------------------------------------------------------

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        """The manifest's descriptor (tag -> digest), or None when the tag/digest is unknown."""
        path = f"/v2/{ref.repository}/manifests/{ref.ref}"
        try:
            answer = self.http.request(
                "HEAD",
                ref.api_host,
                path,
                scopes=_pull(ref.repository),
                headers={"Accept": mt.ACCEPT},
            )
        except NotFound:
            return None
        digest = answer.header("docker-content-digest")
        media_type = answer.header("content-type").split(";")[0].strip()
        if not digest:  # some registries omit it on HEAD: hash the body instead
            manifest = self.get_manifest(ref)
            return Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))
        return Descriptor(
            media_type, check_digest(digest), int(answer.header("content-length") or 0)
        )

    def resolve(self, ref: Reference) -> Reference:
        """The reference pinned by digest (of the index when the tag names one)."""
        found = self.head_manifest(ref)
        if found is None:
            raise NotFound(f"image {ref} not found", status=404, code="MANIFEST_UNKNOWN")
        return ref.with_digest(found.digest)

    def get_manifest(self, ref: Reference) -> Manifest:
        answer = self.http.request(
            "GET",
            ref.api_host,
            f"/v2/{ref.repository}/manifests/{ref.ref}",
            scopes=_pull(ref.repository),
            headers={"Accept": mt.ACCEPT},
        )
        digest = sha256_digest(answer.body)
        if ref.digest and digest != ref.digest:
            raise DigestMismatch(f"manifest {ref} has digest {digest}")
        media_type = answer.header("content-type").split(";")[0].strip()
        if media_type not in mt.INDEXES | mt.IMAGES:
            media_type = str(json.loads(answer.body).get("mediaType", media_type))
        return Manifest(answer.body, media_type, digest)

    def get_image(self, ref: Reference) -> Image:
        """The image manifest for our platform, following an index."""
        manifest = self.get_manifest(ref)
        index_digest = None
        if manifest.media_type in mt.INDEXES:
            index_digest = manifest.digest
            want_os, want_arch = self.platform
            for entry in manifest.json().get("manifests", []):
                plat = entry.get("platform") or {}
                if plat.get("os") == want_os and plat.get("architecture") == want_arch:
                    pinned = ref.with_digest(str(entry["digest"]))
                    manifest = self.get_manifest(pinned)
                    break
            else:
                raise NoMatchingPlatform(f"image {ref} has no {want_os}/{want_arch} manifest")
        if manifest.media_type not in mt.IMAGES:
            raise OciError(f"image {ref}: unsupported manifest type {manifest.media_type!r}")
        return Image(ref.with_digest(manifest.digest), manifest, index_digest)

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        """PUT under `ref.ref` (a tag or the digest); returns the manifest digest."""
        digest = sha256_digest(raw)
        answer = self.http.request(
            "PUT",
            ref.api_host,
            f"/v2/{ref.repository}/manifests/{ref.ref}",
            scopes=_push(ref.repository),
            headers={"Content-Type": media_type},
            body=raw,
            expect=(201, 200),
        )
        stored = answer.header("docker-content-digest")
        if stored and stored != digest:
            raise DigestMismatch(f"registry stored manifest {ref} as {stored}, we sent {digest}")
        return digest

    # -- blobs -------------------------------------------------------------------------------

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        try:
            self.http.request(
                "HEAD",
                ref.api_host,
                f"/v2/{ref.repository}/blobs/{digest}",
                scopes=_pull(ref.repository),
            )
        except NotFound:
            return False
        return True

    def get_blob(self, ref: Reference, digest: str) -> bytes:
        answer = self.http.request(
            "GET",
            ref.api_host,
            f"/v2/{ref.repository}/blobs/{digest}",
            scopes=_pull(ref.repository),
        )
        if sha256_digest(answer.body) != digest:
            raise DigestMismatch(f"blob {digest} of {ref.name} has different content")
        return answer.body

    def download_blob(self, ref: Reference, digest: str, sink: IO[bytes]) -> None:
        """Stream a blob into `sink` (a file opened w+b) and verify it."""
        self.http.request(
            "GET",
            ref.api_host,
            f"/v2/{ref.repository}/blobs/{digest}",
            scopes=_pull(ref.repository),
            sink=sink,
        )
        sink.flush()
        sink.seek(0)
        hasher = hashlib.sha256()
        while chunk := sink.read(1 << 20):
            hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatch(f"blob {digest} of {ref.name} has different content")
        sink.seek(0)

    def mount_blob(self, ref: Reference, digest: str, from_repository: str) -> bool:
        """Cross-repository mount within one registry; False when the registry would rather
        start an upload (then the caller copies the blob)."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        answer = self.http.request(
            "POST",
            ref.api_host,
            f"/v2/{ref.repository}/blobs/uploads/?{query}",
            scopes=(*_push(ref.repository), *_pull(from_repository)),
            expect=(201, 202),
        )
        if answer.status == 202 and answer.header("location"):
            self._cancel(ref, answer)
        return answer.status == 201

    def _cancel(self, ref: Reference, started: Any) -> None:
        location = urllib.parse.urljoin(started.url, started.header("location"))
        # An abandoned upload session is garbage-collected by the registry anyway.
        with contextlib.suppress(OciError):
            self.http.request(
                "DELETE",
                ref.api_host,
                location,
                scopes=_push(ref.repository),
                expect=(204, 200, 202, 404),
            )

    def upload_blob(self, ref: Reference, digest: str, source: bytes | str) -> None:
        """Upload bytes or a file path, unless the repository already has the blob:
        monolithic (POST then PUT) up to `chunk_size`, else PATCH chunks then PUT."""
        check_digest(digest)
        if self.blob_exists(ref, digest):
            return
        scopes = _push(ref.repository)
        started = self.http.request(
            "POST",
            ref.api_host,
            f"/v2/{ref.repository}/blobs/uploads/",
            scopes=scopes,
            expect=(202,),
        )
        location = urllib.parse.urljoin(started.url, started.header("location"))
        size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
        octet = {"Content-Type": "application/octet-stream"}
        if size <= self.chunk_size:
            body: Any = source if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
            try:
                self.http.request(
                    "PUT",
                    ref.api_host,
                    _with_digest(location, digest),
                    scopes=scopes,
                    headers={**octet, "Content-Length": str(size)},
                    body=body,
                    expect=(201,),
                )
            finally:
                if not isinstance(body, bytes):
                    body.close()
            return
        stream = _open(source)
        try:
            offset = 0
            while chunk := stream.read(self.chunk_size):
                end = offset + len(chunk) - 1
                answer = self.http.request(
                    "PATCH",
                    ref.api_host,
                    location,
                    scopes=scopes,
                    body=chunk,
                    expect=(202,),
                    headers={
                        **octet,
                        "Content-Length": str(len(chunk)),
                        "Content-Range": f"{offset}-{end}",
                    },
                )
                location = urllib.parse.urljoin(answer.url, answer.header("location"))
                offset = end + 1
        finally:
            stream.close()
        self.http.request(
            "PUT", ref.api_host, _with_digest(location, digest), scopes=scopes, expect=(201,)
        )

    def copy_blob(self, source: Reference, target: Reference, digest: str) -> None:
        """Copy a blob between registries (or repositories where mounting is refused)."""
        if self.blob_exists(target, digest):
            return
        with tempfile.NamedTemporaryFile(prefix="mlkube-blob-") as spool:
            self.download_blob(source, digest, spool)
            self.upload_blob(target, digest, spool.name)


def _open(source: bytes | str) -> IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
